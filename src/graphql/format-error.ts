import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import { AppError, ErrorCode, ServiceUnavailableError, isDatabaseUnavailable } from '../errors/index.js';

export const UNEXPECTED_ERROR_MESSAGE = 'Unexpected error.';

/**
 * The one place errors become GraphQL errors: catalogue errors keep their code and details,
 * GraphQL's own (syntax, validation) pass through, and anything else is masked outside
 * development so internals never reach clients.
 */
export function createFormatError(options: {
  development: boolean;
  onUnexpected?: (error: unknown) => void;
  /** Told about errors that say the database cannot be reached (answered SERVICE_UNAVAILABLE). */
  onUnavailable?: (error: unknown) => void;
}) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const original = unwrap(error);
    if (original instanceof AppError) {
      return {
        message: original.message,
        locations: formatted.locations,
        path: formatted.path,
        extensions: { ...original.details, code: original.code },
      };
    }
    const code = formatted.extensions?.code;
    const known = typeof code === 'string' && code !== ErrorCode.InternalServerError;
    if (known || (original instanceof GraphQLError && original.extensions?.code)) return formatted;
    if (isDatabaseUnavailable(original)) {
      options.onUnavailable?.(original);
      const unavailable = new ServiceUnavailableError();
      return {
        message: unavailable.message,
        locations: formatted.locations,
        path: formatted.path,
        extensions: { ...unavailable.details, code: unavailable.code },
      };
    }
    options.onUnexpected?.(original);
    if (options.development) return formatted;
    return {
      message: UNEXPECTED_ERROR_MESSAGE,
      locations: formatted.locations,
      path: formatted.path,
      extensions: { code: ErrorCode.InternalServerError },
    };
  };
}

/** The error a resolver (or anything below it) threw, beneath GraphQL's wrappers. */
function unwrap(error: unknown): unknown {
  let current = error;
  while (current instanceof GraphQLError && current.originalError) current = current.originalError;
  return current;
}
