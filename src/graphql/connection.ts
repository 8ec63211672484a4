/** A page of rows as the services return it: the rows, whether more follow, and how to point at one. */
export interface Page<T> {
  rows: T[];
  hasNextPage: boolean;
  /** When the service knows (pages from the end); otherwise a page after a cursor has one. */
  hasPreviousPage?: boolean;
  encode: (row: T) => string;
}

/**
 * A Relay connection (edges with cursors, pageInfo) for a page fetched after `after`. A client
 * tailing a list keeps its cursor through an empty page when `keepCursorWhenEmpty` is set.
 */
export function toConnection<T>(
  page: Page<T>,
  after: string | null,
  options: { keepCursorWhenEmpty?: boolean } = {},
) {
  const edges = page.rows.map((row) => ({ cursor: page.encode(row), node: row }));
  return {
    edges,
    pageInfo: {
      hasNextPage: page.hasNextPage,
      hasPreviousPage: page.hasPreviousPage ?? after !== null,
      startCursor: edges[0]?.cursor ?? null,
      endCursor: edges.at(-1)?.cursor ?? (options.keepCursorWhenEmpty ? after : null),
    },
  };
}
