/**
 * The one catalogue of error codes a client can see, as `extensions.code` in GraphQL errors and
 * `error.code` in REST bodies. Add a code here, then map it to an HTTP status in `http-status.ts`.
 */
export enum ErrorCode {
  BadUserInput = 'BAD_USER_INPUT',
  /** A request the transport cannot serve (e.g. a subscription over HTTP). */
  BadRequest = 'BAD_REQUEST',
  /** The GraphQL document does not parse (syntax, or more tokens than allowed). */
  GraphqlParseFailed = 'GRAPHQL_PARSE_FAILED',
  /** The document breaks a validation rule: the specification's, or depth, alias and directive limits. */
  GraphqlValidationFailed = 'GRAPHQL_VALIDATION_FAILED',
  Unauthenticated = 'UNAUTHENTICATED',
  Forbidden = 'FORBIDDEN',
  NotFound = 'NOT_FOUND',
  Conflict = 'CONFLICT',
  PayloadTooLarge = 'PAYLOAD_TOO_LARGE',
  RateLimited = 'RATE_LIMITED',
  /**
   * A WebSocket connection already has as many operations in flight (subscriptions included) as an
   * instance allows one socket: complete one first (docs/events.md, Live limits).
   */
  TooManyLiveOperations = 'TOO_MANY_LIVE_OPERATIONS',
  /** The operation's estimated cost is over the limit (per-field costs, list sizes). */
  QueryTooComplex = 'QUERY_TOO_COMPLEX',
  // Sandbox (addon execution) errors.
  PermissionDenied = 'PERMISSION_DENIED',
  ExecutionTimeout = 'EXECUTION_TIMEOUT',
  MemoryLimitExceeded = 'MEMORY_LIMIT_EXCEEDED',
  OutputTooLarge = 'OUTPUT_TOO_LARGE',
  InputTooLarge = 'INPUT_TOO_LARGE',
  TooManyConcurrentCalls = 'TOO_MANY_CONCURRENT_CALLS',
  SandboxCrashed = 'SANDBOX_CRASHED',
  AddonError = 'ADDON_ERROR',
  StorageQuotaExceeded = 'STORAGE_QUOTA_EXCEEDED',
  /**
   * The addon version's circuit breaker is open on this site: its calls kept exhausting their
   * limits or crashing workers. Retry after `retryAfterSeconds` (docs/sandbox.md, Quarantine).
   */
  AddonQuarantined = 'ADDON_QUARANTINED',
  /** A dependency call (ctx.addons.call) stopped because its caller's deadline passed. */
  ExecutionCancelled = 'EXECUTION_CANCELLED',
  /**
   * Moving an installation to a version that asks for permissions it has not granted, without
   * accepting exactly those (`acceptPermissions`); `newPermissions` lists them.
   */
  PermissionsNotAccepted = 'PERMISSIONS_NOT_ACCEPTED',
  /**
   * A live subscription ended because it may have missed messages (this server lost Redis, a
   * publish failed, or the subscriber fell behind): subscribe again, then catch up from the
   * stored records (docs/events.md).
   */
  LiveStreamInterrupted = 'LIVE_STREAM_INTERRUPTED',
  /** A dependency (PostgreSQL) cannot be reached: retry after `Retry-After` seconds. */
  ServiceUnavailable = 'SERVICE_UNAVAILABLE',
  InternalServerError = 'INTERNAL_SERVER_ERROR',
}
