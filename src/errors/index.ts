export { ErrorCode } from './error-code.js';
export { httpStatusByErrorCode } from './http-status.js';
export {
  AppError,
  ValidationError,
  UnauthenticatedError,
  ForbiddenError,
  NotFoundError,
  ConflictError,
  LiveStreamInterruptedError,
  AddonQuarantinedError,
  PermissionsNotAcceptedError,
  RateLimitedError,
  ScanTimeoutError,
  type FieldProblem,
  type LiveStreamInterruption,
} from './app-error.js';
export {
  DATABASE_RETRY_AFTER_SECONDS,
  ServiceUnavailableError,
  isDatabaseUnavailable,
} from './service-unavailable.js';
