import { ValidationError } from '../errors/index.js';
import { isUuid } from './ids.js';

/** A position in a list ordered newest first by (createdAt, id): the rows after it are older. */
export interface TimeCursor {
  createdAt: Date;
  id: string;
}

/** The opaque cursor of a row in a (createdAt, id) ordered list. */
export function encodeTimeCursor(row: TimeCursor): string {
  return Buffer.from(`${row.createdAt.toISOString()}|${row.id}`).toString('base64url');
}

/**
 * Reads a cursor made by {@link encodeTimeCursor}.
 * @throws ValidationError naming the `after` argument when the text is not such a cursor.
 */
export function decodeTimeCursor(cursor: string): TimeCursor {
  const [at, id] = Buffer.from(cursor, 'base64url').toString('utf8').split('|');
  const createdAt = new Date(at);
  if (!id || !isUuid(id) || Number.isNaN(createdAt.getTime())) {
    throw ValidationError.of('arguments', [
      { field: 'after', message: 'is not a cursor returned by this API' },
    ]);
  }
  return { createdAt, id };
}
