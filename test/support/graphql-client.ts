import { print, type DocumentNode } from 'graphql';
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';

export interface GraphQLResponse<T> {
  status: number;
  data: T | null | undefined;
  errors?: { message: string; path?: string[]; extensions?: Record<string, unknown> & { code?: string } }[];
}

const printed = new WeakMap<DocumentNode, string>();

/** A GraphQL-over-HTTP client as a frontend would use: POST JSON, Bearer key. */
export class GraphQLClient {
  constructor(
    readonly url: string,
    readonly key: string | null = null,
  ) {}

  /** The same client acting with another key. */
  as(key: string | null): GraphQLClient {
    return new GraphQLClient(this.url, key);
  }

  async request<R, V>(document: TypedDocumentNode<R, V>, variables?: V): Promise<GraphQLResponse<R>> {
    let query = printed.get(document);
    if (!query) {
      query = print(document);
      printed.set(document, query);
    }
    return this.raw<R>(query, variables as Record<string, unknown> | undefined);
  }

  /** Sends a query string; for the few tests that check malformed input. */
  async raw<R = unknown>(query: string, variables?: Record<string, unknown>): Promise<GraphQLResponse<R>> {
    return this.send<R>(JSON.stringify({ query, variables }));
  }

  /**
   * Sends a request body serialised beforehand: tests that time the server's event loop (which
   * runs in the test's process) keep their own serialising out of the timed span.
   */
  async send<R = unknown>(body: string): Promise<GraphQLResponse<R>> {
    const response = await fetch(`${this.url}/graphql`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(this.key ? { authorization: `Bearer ${this.key}` } : {}),
      },
      body,
    });
    const answer = (await response.json()) as Omit<GraphQLResponse<R>, 'status'>;
    return { status: response.status, ...answer };
  }

  /** Runs an operation that must succeed and returns its data. */
  async ok<R, V>(document: TypedDocumentNode<R, V>, variables?: V): Promise<R> {
    const result = await this.request(document, variables);
    if (result.errors?.length || !result.data) {
      throw new Error(`GraphQL errors: ${JSON.stringify(result.errors)}`);
    }
    return result.data;
  }
}
