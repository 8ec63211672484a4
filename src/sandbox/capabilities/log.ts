import type { LogEntry } from '../types.js';

const LEVELS: ReadonlySet<string> = new Set(['debug', 'info', 'warn', 'error']);
/** Bytes an entry costs beyond its message, so a flood of empty lines still hits the limit. */
const ENTRY_OVERHEAD_BYTES = 24;

/**
 * Validates the log lines an isolate captured for `ctx.log`/`console` and keeps at most `maxLogBytes`
 * of them. The isolate already applied the limit by character count; this is the authoritative check,
 * in bytes, on data the addon could have shaped.
 */
export function sanitizeLogs(raw: unknown, maxLogBytes: number): { logs: LogEntry[]; truncated: boolean } {
  const logs: LogEntry[] = [];
  if (!Array.isArray(raw)) return { logs, truncated: raw !== undefined };
  let used = 0;
  for (const item of raw) {
    if (typeof item !== 'object' || item === null) return { logs, truncated: true };
    const { level, message, at } = item as Record<string, unknown>;
    if (typeof level !== 'string' || !LEVELS.has(level) || typeof message !== 'string') {
      return { logs, truncated: true };
    }
    used += Buffer.byteLength(message) + ENTRY_OVERHEAD_BYTES;
    if (used > maxLogBytes) return { logs, truncated: true };
    logs.push({
      level: level as LogEntry['level'],
      message,
      at: typeof at === 'number' && Number.isFinite(at) ? at : Date.now(),
    });
  }
  return { logs, truncated: false };
}
