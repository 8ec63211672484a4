import { AppError, ErrorCode } from '../../errors/index.js';
import { SandboxError } from '../sandbox-error.js';
import type { AddonBundle, AddonLimits, CapabilityScope, HostCapabilities } from '../types.js';

/** Everything a capability needs to decide and act on one request of one in-flight call. */
export interface CapabilityEnv {
  scope: CapabilityScope;
  bundle: AddonBundle;
  limits: AddonLimits;
  capabilities: HostCapabilities;
  fetchImpl: typeof fetch;
  /** Epoch ms at which the calling execution times out. */
  deadline: number;
}

/** A host capability: checks permission and arguments, then acts. Returns a JSON-serialisable value. */
export type CapabilityHandler = (env: CapabilityEnv, args: Record<string, unknown>) => Promise<unknown>;

/** @throws SandboxError PERMISSION_DENIED naming the permission when the bundle lacks it. */
export function requirePermission(env: CapabilityEnv, permission: string, method: string): void {
  if (!env.bundle.permissions.includes(permission)) {
    throw new SandboxError(
      ErrorCode.PermissionDenied,
      `${method} requires the "${permission}" permission, which addon "${env.bundle.addonName}" was not granted.`,
      { permission },
    );
  }
}

export function badArgument(method: string, message: string): AppError {
  return new AppError(ErrorCode.BadUserInput, `${method}: ${message}`);
}

/** A string argument of bounded length (and non-empty unless `allowEmpty`). */
export function stringArg(
  args: Record<string, unknown>,
  field: string,
  method: string,
  maxChars: number,
  allowEmpty = false,
): string {
  const value = args[field];
  if (typeof value !== 'string' || (!allowEmpty && value.length === 0) || value.length > maxChars) {
    throw badArgument(
      method,
      `${field} must be a ${allowEmpty ? '' : 'non-empty '}string of at most ${maxChars} characters.`,
    );
  }
  return value;
}

export function optionalStringArg(
  args: Record<string, unknown>,
  field: string,
  method: string,
  maxChars: number,
): string | undefined {
  return args[field] === undefined || args[field] === null
    ? undefined
    : stringArg(args, field, method, maxChars, true);
}

/** UTF-8 size of the JSON form of a value that already went through JSON once. */
export function jsonBytes(value: unknown): number {
  return Buffer.byteLength(JSON.stringify(value) ?? 'null');
}

/** Own, plain-object check for values parsed from JSON. */
export function isPlainRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
