import { ErrorCode } from './error-code.js';

/** HTTP status the REST routes answer with for each error code. */
export const httpStatusByErrorCode: Record<ErrorCode, number> = {
  [ErrorCode.BadUserInput]: 400,
  [ErrorCode.BadRequest]: 400,
  [ErrorCode.GraphqlParseFailed]: 400,
  [ErrorCode.GraphqlValidationFailed]: 400,
  [ErrorCode.Unauthenticated]: 401,
  [ErrorCode.Forbidden]: 403,
  [ErrorCode.PermissionDenied]: 403,
  [ErrorCode.NotFound]: 404,
  [ErrorCode.Conflict]: 409,
  [ErrorCode.PayloadTooLarge]: 413,
  [ErrorCode.InputTooLarge]: 413,
  [ErrorCode.RateLimited]: 429,
  [ErrorCode.QueryTooComplex]: 400,
  [ErrorCode.TooManyConcurrentCalls]: 429,
  [ErrorCode.StorageQuotaExceeded]: 507,
  [ErrorCode.ExecutionTimeout]: 504,
  [ErrorCode.MemoryLimitExceeded]: 422,
  [ErrorCode.OutputTooLarge]: 422,
  [ErrorCode.AddonError]: 422,
  [ErrorCode.SandboxCrashed]: 502,
  [ErrorCode.LiveStreamInterrupted]: 503,
  [ErrorCode.ServiceUnavailable]: 503,
  [ErrorCode.InternalServerError]: 500,
};
