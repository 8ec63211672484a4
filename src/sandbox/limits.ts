import type { AddonLimits } from './types.js';

/** Limits of an addon that declares none. */
export const DEFAULT_ADDON_LIMITS: Readonly<AddonLimits> = Object.freeze({
  memoryMb: 64,
  timeoutMs: 1000,
  cpuTimeMs: 500,
  maxInputBytes: 1024 * 1024,
  maxOutputBytes: 1024 * 1024,
  maxConcurrentCalls: 16,
  maxLogBytes: 16 * 1024,
});

/** Upper bounds no addon may exceed, whatever its bundle says. */
export const DEFAULT_PLATFORM_LIMITS: Readonly<AddonLimits> = Object.freeze({
  memoryMb: 512,
  timeoutMs: 30_000,
  cpuTimeMs: 10_000,
  maxInputBytes: 8 * 1024 * 1024,
  maxOutputBytes: 8 * 1024 * 1024,
  maxConcurrentCalls: 256,
  maxLogBytes: 1024 * 1024,
});

/** isolated-vm refuses smaller heaps. */
export const MIN_MEMORY_MB = 8;

/** Nested `ctx.addons.call` hops allowed below an outside call. */
export const MAX_CALL_DEPTH = 4;

const KEYS: (keyof AddonLimits)[] = [
  'memoryMb',
  'timeoutMs',
  'cpuTimeMs',
  'maxInputBytes',
  'maxOutputBytes',
  'maxConcurrentCalls',
  'maxLogBytes',
];

function positiveInt(value: unknown): number | null {
  return typeof value === 'number' && Number.isFinite(value) && value >= 1 ? Math.floor(value) : null;
}

/**
 * Effective limits of one call: the bundle's value, else the default, never above the platform cap.
 * Malformed values (negative, NaN, non-numbers) fall back to the default rather than failing the call.
 */
export function resolveLimits(
  requested: Partial<AddonLimits> | undefined,
  defaults: Readonly<AddonLimits>,
  caps: Readonly<AddonLimits>,
): AddonLimits {
  const out = {} as AddonLimits;
  for (const key of KEYS) {
    const wanted = positiveInt(requested?.[key]) ?? defaults[key];
    out[key] = Math.min(wanted, caps[key]);
  }
  out.memoryMb = Math.max(out.memoryMb, MIN_MEMORY_MB);
  return out;
}

/** Fills a partial set of limits from a base, ignoring malformed values. */
export function mergeLimits(
  base: Readonly<AddonLimits>,
  patch: Partial<AddonLimits> | undefined,
): AddonLimits {
  const out = { ...base };
  for (const key of KEYS) {
    const value = positiveInt(patch?.[key]);
    if (value !== null) out[key] = value;
  }
  return out;
}
