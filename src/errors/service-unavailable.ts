import { AppError } from './app-error.js';
import { ErrorCode } from './error-code.js';

/** Seconds a client is told to wait (`Retry-After`) while the database cannot be reached. */
export const DATABASE_RETRY_AFTER_SECONDS = 5;

/** The database cannot be reached: a retryable 503, not a bug. */
export class ServiceUnavailableError extends AppError {
  constructor(
    message = 'The database is unavailable; retry shortly.',
    readonly retryAfterSeconds = DATABASE_RETRY_AFTER_SECONDS,
  ) {
    super(ErrorCode.ServiceUnavailable, message, { retryAfterSeconds });
  }
}

// Node socket errors, PostgreSQL connection-class SQLSTATEs (08xxx), shutdown and "cannot connect
// now" (57P01-57P03), too many connections (53300), Prisma's reachability and pool codes.
const UNAVAILABLE_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  '57P01',
  '57P02',
  '57P03',
  '53300',
  'P1001',
  'P1002',
  'P1008',
  'P1017',
  'P2024',
]);
// The kinds @prisma/driver-adapter-utils gives connection failures.
const UNAVAILABLE_KINDS = new Set([
  'DatabaseNotReachable',
  'ConnectionClosed',
  'SocketTimeout',
  'TooManyConnections',
]);
// pg and pg-pool report some connection failures only in their message.
const UNAVAILABLE_MESSAGE =
  /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|connect ECONNREFUSED|Can't reach database server|Server has closed the connection/i;

/**
 * True when `error` (or one of its causes) says the database cannot be reached, as opposed to a
 * query it refused. Duck-typed over pg, pg-pool, Prisma and its pg driver adapter.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  let current: unknown = error;
  for (let depth = 0; depth < 8 && current !== null && typeof current === 'object'; depth += 1) {
    if (current instanceof ServiceUnavailableError) return true;
    const record = current as { code?: unknown; kind?: unknown; message?: unknown; cause?: unknown };
    if (
      typeof record.code === 'string' &&
      (UNAVAILABLE_CODES.has(record.code) || /^08[0-9A-Z]{3}$/.test(record.code))
    )
      return true;
    if (typeof record.kind === 'string' && UNAVAILABLE_KINDS.has(record.kind)) return true;
    if (typeof record.message === 'string' && UNAVAILABLE_MESSAGE.test(record.message)) return true;
    if (current instanceof AggregateError && current.errors.some((e) => isDatabaseUnavailable(e)))
      return true;
    current = record.cause ?? (record as { originalError?: unknown }).originalError;
  }
  return false;
}
