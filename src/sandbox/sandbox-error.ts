import { AppError, ErrorCode } from '../errors/index.js';
import type { LogEntry } from './types.js';

/** Longest message an addon-controlled error may carry to the caller. */
export const MAX_ERROR_MESSAGE_CHARS = 1000;

/** Error of a sandboxed call. `code` is one of the sandbox codes, or NOT_FOUND for a missing entry. */
export class SandboxError extends AppError {
  /**
   * What the addon logged before it failed, for its execution record (kept apart from `details`,
   * which clients see in the error).
   */
  logs: LogEntry[] = [];
  logsTruncated = false;
  /**
   * SANDBOX_CRASHED only: true when this call's version is the one the crash is blamed on (the
   * only version with calls on the worker that died). The quarantine counts only those, so a
   * version that shared a worker with the culprit is not throttled for its crashes.
   */
  blamed = false;

  constructor(code: ErrorCode, message: string, details?: Record<string, unknown>) {
    super(code, truncateMessage(message), details);
  }
}

/** Cuts an untrusted message to a bounded, single string. */
export function truncateMessage(message: string, max = MAX_ERROR_MESSAGE_CHARS): string {
  return message.length > max ? `${message.slice(0, max)}…` : message;
}

/** Codes a worker may report for a call; anything else it sends becomes SANDBOX_CRASHED. */
const WORKER_CODES: ReadonlySet<string> = new Set<string>([
  ErrorCode.PermissionDenied,
  ErrorCode.ExecutionTimeout,
  ErrorCode.MemoryLimitExceeded,
  ErrorCode.OutputTooLarge,
  ErrorCode.InputTooLarge,
  ErrorCode.TooManyConcurrentCalls,
  ErrorCode.SandboxCrashed,
  ErrorCode.AddonError,
  ErrorCode.StorageQuotaExceeded,
  ErrorCode.NotFound,
  ErrorCode.BadUserInput,
  ErrorCode.RateLimited,
  ErrorCode.ServiceUnavailable,
]);

/**
 * Codes an error raised by an SDK call keeps when the addon lets it escape. Other SDK failures (a nested
 * addon's timeout, say) surface as ADDON_ERROR: they describe the addon's dependency, not this call.
 */
export const PROPAGATED_SDK_CODES: ReadonlySet<string> = new Set<string>([
  ErrorCode.PermissionDenied,
  ErrorCode.StorageQuotaExceeded,
  ErrorCode.BadUserInput,
  ErrorCode.RateLimited,
]);

/** Rebuilds a typed error from a code and message that crossed a process or isolate boundary. */
export function sandboxErrorFromWire(code: unknown, message: unknown): SandboxError {
  const text = typeof message === 'string' ? message : 'Sandbox call failed.';
  if (typeof code === 'string' && WORKER_CODES.has(code)) return new SandboxError(code as ErrorCode, text);
  return new SandboxError(ErrorCode.SandboxCrashed, 'The sandbox returned a malformed error.');
}
