import { hash, randomBytes } from 'node:crypto';

/** Every key starts with this, so leaked keys are easy to recognise and scan for. */
export const API_KEY_PREFIX = 'tp_';

/** A new random key: `tp_` and 32 url-safe characters (192 bits). */
export function generateApiKey(): string {
  return API_KEY_PREFIX + randomBytes(24).toString('base64url');
}

/**
 * The stored form of a key. Keys are high-entropy random strings, so a fast hash is enough
 * (a slow password hash would add nothing but latency to every request).
 */
export function hashApiKey(key: string): string {
  return hash('sha256', key, 'hex');
}

/** The part of a key shown in listings: enough to recognise it, useless to an attacker. */
export function displayPrefix(key: string): string {
  return key.slice(0, API_KEY_PREFIX.length + 6);
}

/** What an `Authorization` header holds: nothing, a key, or something that is not `Bearer <key>`. */
export type AuthorizationHeader =
  { kind: 'none' } | { kind: 'key'; key: string } | { kind: 'malformed'; message: string };

const SCHEME = /^[A-Za-z]{1,20}$/;

/**
 * Reads `Authorization: Bearer <key>`. An absent or empty header, and `Bearer` with nothing after
 * it (what a shell helper sends with an empty variable), carry no key: the caller is anonymous.
 * Anything else that is not one key after `Bearer` is malformed, with a message saying what is
 * wrong (never echoing the value, which may be a secret).
 */
export function parseAuthorizationHeader(header: string | undefined): AuthorizationHeader {
  const value = header?.trim() ?? '';
  if (value === '' || /^Bearer$/i.test(value)) return { kind: 'none' };
  const match = /^Bearer\s+(\S+)$/i.exec(value);
  if (match) return { kind: 'key', key: match[1] };
  const scheme = value.split(/\s+/, 1)[0];
  if (/^Bearer$/i.test(scheme)) {
    return {
      kind: 'malformed',
      message: 'Authorization header: expected one API key after "Bearer", got several words.',
    };
  }
  return {
    kind: 'malformed',
    message:
      SCHEME.test(scheme) && /\s/.test(value)
        ? `Authorization header: expected "Bearer <API key>", got the "${scheme}" scheme.`
        : 'Authorization header: expected "Bearer <API key>", got a value without the "Bearer" scheme.',
  };
}
