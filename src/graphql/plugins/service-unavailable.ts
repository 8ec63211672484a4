import type { ApolloServerPlugin } from '@apollo/server';
import { GraphQLError } from 'graphql';
import { DATABASE_RETRY_AFTER_SECONDS, isDatabaseUnavailable } from '../../errors/index.js';

/** The error a resolver (or anything below it) threw, beneath GraphQL's wrappers. */
function unwrap(error: unknown): unknown {
  let current = error;
  while (current instanceof GraphQLError && current.originalError) current = current.originalError;
  return current;
}

/**
 * Answers HTTP 503 with `Retry-After` when an operation failed because the database cannot be
 * reached (its errors already read SERVICE_UNAVAILABLE, see format-error.ts): clients and load
 * balancers retry a 503, where a 200 or 500 would read as a bug.
 */
export function useServiceUnavailableStatus(): ApolloServerPlugin {
  return {
    async requestDidStart() {
      return {
        async willSendResponse({ errors, response }) {
          if (!errors?.some((error) => isDatabaseUnavailable(unwrap(error)))) return;
          response.http.status = 503;
          response.http.headers.set('retry-after', String(DATABASE_RETRY_AFTER_SECONDS));
        },
      };
    },
  };
}
