/**
 * Event names and the patterns that select them.
 *
 * Names are dotted lowercase segments (`payment.completed`). In a pattern, `*` stands for exactly
 * ONE segment, as in AMQP topics: `payment.*` matches `payment.completed` but neither `payment`
 * nor `payment.card.captured`; `*.completed` matches `payment.completed`. One-segment wildcards
 * keep a manifest's subscriptions predictable as other addons add deeper names.
 */

/** Same rule as the manifest's `events.emits` names. */
export const EVENT_NAME = /^[a-z][a-z0-9_-]*(?:\.[a-z][a-z0-9_-]*)+$/;
/** A name whose segments may be `*`. */
export const EVENT_PATTERN = /^(?:[a-z][a-z0-9_-]*|\*)(?:\.(?:[a-z][a-z0-9_-]*|\*))*$/;
export const EVENT_MAX_NAME_CHARS = 200;
/** Largest JSON-encoded data of one event (same bound as ctx.events.emit). */
export const EVENT_MAX_DATA_BYTES = 64 * 1024;

/** True when `name` matches `pattern` (`*` = one segment). */
export function matchesEventPattern(pattern: string, name: string): boolean {
  if (!pattern.includes('*')) return pattern === name;
  const p = pattern.split('.');
  const n = name.split('.');
  if (p.length !== n.length) return false;
  for (let i = 0; i < p.length; i += 1) if (p[i] !== '*' && p[i] !== n[i]) return false;
  return true;
}

/** A compiled list of patterns: null or empty means "every name". */
export function eventNameFilter(patterns: readonly string[] | null | undefined): (name: string) => boolean {
  if (!patterns || patterns.length === 0) return () => true;
  const exact = new Set(patterns.filter((p) => !p.includes('*')));
  const wild = patterns.filter((p) => p.includes('*'));
  return (name) => exact.has(name) || wild.some((p) => matchesEventPattern(p, name));
}

/**
 * The handler a manifest's `events.handles` names for an event, or null. When several entries
 * match, the most specific wins: the one with the most literal segments (an exact name beats any
 * wildcard); ties go to the entry declared first. An installation gets one delivery per event.
 */
export function resolveHandler(handles: Record<string, string>, name: string): string | null {
  let best: { handler: string; literals: number } | null = null;
  for (const [pattern, handler] of Object.entries(handles)) {
    if (!matchesEventPattern(pattern, name)) continue;
    const literals = pattern.split('.').filter((s) => s !== '*').length;
    if (!best || literals > best.literals) best = { handler, literals };
  }
  return best?.handler ?? null;
}

/**
 * A SQL regular expression equivalent to a pattern (for filtering stored events), anchored.
 * Segments are `[a-z0-9_-]` only, so nothing else needs escaping besides the dots.
 */
export function patternToRegex(pattern: string): string {
  return `^${pattern
    .split('.')
    .map((s) => (s === '*' ? '[^.]+' : s))
    .join('\\.')}$`;
}
