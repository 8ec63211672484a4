import type { FieldProblem } from '../errors/index.js';

/**
 * Text that PostgreSQL can store. No character type holds U+0000, and neither `text` nor `jsonb`
 * takes an unpaired UTF-16 surrogate (it has no UTF-8 form): one such character fails the whole
 * statement it is in (SQLSTATE 22021, 22P05, 22P02).
 */

/** Deepest nesting of objects and arrays accepted in client JSON (arguments, bodies, configs). */
export const MAX_JSON_DEPTH = 64;

/** Why `text` cannot be stored as is, or null when it can. */
export function textProblem(text: string): string | null {
  if (text.includes('\u0000')) return 'must not contain the NUL character (U+0000)';
  if (!text.isWellFormed()) return 'must not contain an unpaired UTF-16 surrogate';
  return null;
}

/**
 * `text` made storable: NUL and unpaired surrogates become U+FFFD, and with `maxChars` it is cut
 * to at most that many UTF-16 units without splitting a surrogate pair.
 */
export function storableText(text: string, maxChars?: number): string {
  let out = text;
  if (maxChars !== undefined && out.length > maxChars) {
    // A cut between the two halves of a pair would leave a lone high surrogate.
    const end = isHighSurrogate(out.charCodeAt(maxChars - 1)) ? maxChars - 1 : maxChars;
    out = out.slice(0, end);
  }
  if (out.includes('\u0000')) out = out.replaceAll('\u0000', '\uFFFD');
  return out.isWellFormed() ? out : out.toWellFormed();
}

/** Cuts `text` to at most `maxBytes` of UTF-8, on a code point boundary. */
export function truncateUtf8(text: string, maxBytes: number): string {
  if (text.length * 3 <= maxBytes || Buffer.byteLength(text) <= maxBytes) return text;
  const bytes = Buffer.from(text).subarray(0, Math.max(0, maxBytes));
  // Back off a partial multi-byte sequence at the end (continuation bytes are 10xxxxxx).
  let end = bytes.length;
  let k = end - 1;
  while (k >= 0 && (bytes[k] & 0xc0) === 0x80) k -= 1;
  if (k >= 0) {
    const lead = bytes[k];
    const size = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
    if (k + size > end) end = k;
  }
  return bytes.subarray(0, end).toString('utf8');
}

const isHighSurrogate = (code: number) => code >= 0xd800 && code <= 0xdbff;

/** Appends an object key or array index to a field path (`config.items[2].name`). */
export function fieldPath(base: string, key: string | number): string {
  if (typeof key === 'number') return `${base}[${key}]`;
  const plain = /^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(key);
  const segment = plain ? key : JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}…` : key);
  return base === '' ? segment : plain ? `${base}.${segment}` : `${base}[${segment}]`;
}

/**
 * The first problem that keeps a client's JSON value from being used: a string (or key) that
 * {@link textProblem} refuses, or nesting deeper than `maxDepth`. Linear in the size of the value;
 * the recursion stops at `maxDepth`, so a value nested thousands deep costs no stack.
 */
export function jsonValueProblem(
  value: unknown,
  root: string,
  maxDepth: number = MAX_JSON_DEPTH,
): FieldProblem | null {
  const found = walk(value, 0, maxDepth);
  if (!found) return null;
  // The path is built only for the value that failed, from the keys collected on the way out.
  let field = root;
  for (let i = found.keys.length - 1; i >= 0; i -= 1) field = fieldPath(field, found.keys[i]);
  return { field, message: found.message };
}

function walk(
  value: unknown,
  depth: number,
  maxDepth: number,
): { keys: (string | number)[]; message: string } | null {
  if (typeof value === 'string') {
    const problem = textProblem(value);
    return problem ? { keys: [], message: problem } : null;
  }
  if (typeof value !== 'object' || value === null) return null;
  if (depth >= maxDepth) return { keys: [], message: `is nested deeper than ${maxDepth} levels` };
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i += 1) {
      const found = walk(value[i], depth + 1, maxDepth);
      if (found) {
        found.keys.push(i);
        return found;
      }
    }
    return null;
  }
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue;
    const keyProblem = textProblem(key);
    if (keyProblem) return { keys: [key], message: `has a key that ${keyProblem}` };
    const found = walk((value as Record<string, unknown>)[key], depth + 1, maxDepth);
    if (found) {
      found.keys.push(key);
      return found;
    }
  }
  return null;
}

/**
 * True for PostgreSQL errors about the rows themselves (SQLSTATE class 22, data exception, or 23,
 * integrity constraint): writing rows one by one isolates them. Not for a lost connection, which
 * one-by-one writing would only repeat.
 */
export function isDataError(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^2[23][0-9A-Z]{3}$/.test(code);
}
