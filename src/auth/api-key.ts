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

/** Reads `Authorization: Bearer <key>`; null when absent. */
export function bearerToken(header: string | undefined): string | null {
  if (!header) return null;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return match ? match[1] : '';
}
