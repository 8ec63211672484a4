import { ErrorCode } from '../errors/index.js';

/**
 * Execution statuses that are the caller's mistake, not the addon's: a call naming an entry the
 * addon's code does not export (the sandbox's NOT_FOUND), input over the size limit, and a
 * dependency call its caller's deadline cancelled. The dashboard counts them apart
 * (`callerErrors`), so an addon's error rate says how its code does.
 */
export const CALLER_ERROR_STATUSES: readonly string[] = [
  ErrorCode.NotFound,
  ErrorCode.InputTooLarge,
  ErrorCode.ExecutionCancelled,
];

/** Every status that counts as an error of the addon (or the platform): not SUCCESS, not the caller's. */
export const NOT_ADDON_ERROR_STATUSES: readonly string[] = ['SUCCESS', ...CALLER_ERROR_STATUSES];
