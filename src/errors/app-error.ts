import { ErrorCode } from './error-code.js';

/**
 * Base class of every error a client may see. Anything else that escapes a service is treated as a
 * bug and masked as "Unexpected error." outside development.
 */
export class AppError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** Extra machine-readable detail, copied into `extensions` (GraphQL) or the JSON body (REST). */
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** One failing field of an input, as listed in `extensions.fields`. */
export interface FieldProblem {
  /** Path of the field, e.g. `manifest.widgets[0].name` or `config.theme`. */
  field: string;
  message: string;
}

export class ValidationError extends AppError {
  constructor(
    message: string,
    readonly fields: FieldProblem[] = [],
  ) {
    super(ErrorCode.BadUserInput, message, fields.length > 0 ? { fields } : undefined);
  }

  /** Builds one error from several problems; its message names every field. */
  static of(subject: string, fields: FieldProblem[]): ValidationError {
    const list = fields.map((f) => `${f.field}: ${f.message}`).join('; ');
    return new ValidationError(`Invalid ${subject}: ${list}`, fields);
  }
}

export class UnauthenticatedError extends AppError {
  constructor(message = 'A valid API key is required (Authorization: Bearer <key>).') {
    super(ErrorCode.Unauthenticated, message);
  }
}

export class ForbiddenError extends AppError {
  constructor(message: string) {
    super(ErrorCode.Forbidden, message);
  }
}

export class NotFoundError extends AppError {
  constructor(entity: string, key: string) {
    super(ErrorCode.NotFound, `${entity} "${key}" was not found.`, { entity, key });
  }
}

export class ConflictError extends AppError {
  constructor(message: string, details?: Record<string, unknown>) {
    super(ErrorCode.Conflict, message, details);
  }
}

/** A caller past one of its rate limits; `retryAfterSeconds` says when its window ends. */
export class RateLimitedError extends AppError {
  constructor(
    message: string,
    readonly retryAfterSeconds: number,
  ) {
    super(ErrorCode.RateLimited, message, { retryAfterSeconds });
  }
}

/** A read of tenant history ran past its statement timeout and was cancelled by PostgreSQL. */
export class ScanTimeoutError extends AppError {
  constructor(timeoutMs: number) {
    super(
      ErrorCode.QueryTooComplex,
      `This read of history ran past ${timeoutMs} ms (DATABASE_STATEMENT_TIMEOUT_MS) and was stopped; narrow it with a filter or a shorter window.`,
      { timeoutMs },
    );
  }
}

/** Why a live subscription was ended (see ErrorCode.LiveStreamInterrupted). */
export type LiveStreamInterruption = 'redis-lost' | 'redis-unavailable' | 'publish-failed' | 'fell-behind';

const INTERRUPTION_MESSAGES: Record<LiveStreamInterruption, string> = {
  'redis-lost': 'The server lost its connection to Redis, so live messages may have been missed.',
  'redis-unavailable': 'The server has no connection to Redis now, so it cannot deliver live messages.',
  'publish-failed': 'A server could not publish a live message, so it may have been missed.',
  'fell-behind': 'This subscriber fell too far behind the live messages.',
};

/** A live subscription ended because it may have missed messages. */
export class LiveStreamInterruptedError extends AppError {
  constructor(readonly reason: LiveStreamInterruption) {
    super(
      ErrorCode.LiveStreamInterrupted,
      `${INTERRUPTION_MESSAGES[reason]} Subscribe again, then catch up from the stored records.`,
      { reason },
    );
  }
}

/**
 * Calls of an addon version are refused on a site while its circuit breaker is open (see
 * src/executions/addon-quarantine.ts).
 */
export class AddonQuarantinedError extends AppError {
  constructor(
    addonName: string,
    version: string,
    readonly retryAfterSeconds: number,
    reason: string | null,
  ) {
    super(
      ErrorCode.AddonQuarantined,
      `Addon "${addonName}" ${version} is quarantined on this site: its calls kept ${
        reason === ErrorCode.SandboxCrashed ? 'crashing sandbox workers' : 'exhausting their limits'
      }${reason ? ` (${reason})` : ''}. Retry in ${retryAfterSeconds} s.`,
      { addon: addonName, version, retryAfterSeconds, reason },
    );
  }
}

/** An upgrade or rollback asks for permissions the installation has not granted. */
export class PermissionsNotAcceptedError extends AppError {
  constructor(
    addonName: string,
    version: string,
    readonly newPermissions: string[],
    acceptedPermissions: string[] | null,
  ) {
    super(
      ErrorCode.PermissionsNotAccepted,
      `"${addonName}" ${version} asks for permissions this installation has not granted: ${newPermissions.join(
        ', ',
      )}. ${
        acceptedPermissions === null
          ? 'Pass them as acceptPermissions to accept them.'
          : `acceptPermissions must list exactly these (it listed: ${acceptedPermissions.join(', ') || 'nothing'}).`
      }`,
      { field: 'acceptPermissions', addon: addonName, version, newPermissions, acceptedPermissions },
    );
  }
}
