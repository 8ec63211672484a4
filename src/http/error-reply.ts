import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import {
  AppError,
  ErrorCode,
  ServiceUnavailableError,
  httpStatusByErrorCode,
  isDatabaseUnavailable,
} from '../errors/index.js';
import { UNEXPECTED_ERROR_MESSAGE } from '../graphql/format-error.js';

/** The JSON body of every REST error: `{ "error": { "code", "message", ...details } }`. */
export interface ErrorBody {
  error: { code: string; message: string } & Record<string, unknown>;
}

const fastifyCodes: Record<string, ErrorCode> = {
  FST_ERR_CTP_BODY_TOO_LARGE: ErrorCode.PayloadTooLarge,
  FST_ERR_CTP_INVALID_MEDIA_TYPE: ErrorCode.BadUserInput,
  FST_ERR_CTP_EMPTY_JSON_BODY: ErrorCode.BadUserInput,
  FST_ERR_CTP_INVALID_CONTENT_LENGTH: ErrorCode.BadUserInput,
  FST_ERR_VALIDATION: ErrorCode.BadUserInput,
};

/**
 * Fastify error handler for the REST routes, mapping catalogue errors to their HTTP status and
 * masking anything unknown outside development. A database that cannot be reached is a
 * retryable 503 with `Retry-After` (told to `onUnavailable`, which logs outages once).
 */
export function createRestErrorHandler(development: boolean, onUnavailable?: (error: unknown) => void) {
  return (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    if (!(error instanceof AppError) && isDatabaseUnavailable(error)) {
      onUnavailable?.(error);
      return sendAppError(reply, new ServiceUnavailableError());
    }
    if (error instanceof AppError) return sendAppError(reply, error);
    const mapped = error.code ? fastifyCodes[error.code] : undefined;
    if (mapped || (error.statusCode && error.statusCode < 500 && error instanceof SyntaxError)) {
      const code = mapped ?? ErrorCode.BadUserInput;
      return reply.status(httpStatusByErrorCode[code]).send({ error: { code, message: error.message } });
    }
    if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500) {
      return reply
        .status(error.statusCode)
        .send({ error: { code: ErrorCode.BadUserInput, message: error.message } });
    }
    request.log.error({ err: error }, 'unexpected error');
    return reply.status(500).send({
      error: {
        code: ErrorCode.InternalServerError,
        message: development ? error.message : UNEXPECTED_ERROR_MESSAGE,
      },
    });
  };
}

function sendAppError(reply: FastifyReply, error: AppError) {
  const body: ErrorBody = { error: { ...error.details, code: error.code, message: error.message } };
  const retryAfter = error.details?.retryAfterSeconds;
  if (typeof retryAfter === 'number') reply.header('retry-after', retryAfter);
  return reply.status(httpStatusByErrorCode[error.code]).send(body);
}
