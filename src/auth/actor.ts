import { isUuid } from '../shared/ids.js';
import { ForbiddenError, UnauthenticatedError, ValidationError } from '../errors/index.js';

/** Who is calling, derived from the API key. Services take it explicitly. */
export type Actor =
  | { kind: 'anonymous' }
  | { kind: 'admin'; keyId: string }
  | { kind: 'developer'; keyId: string; developerId: string }
  | { kind: 'site'; keyId: string; siteId: string };

export const anonymousActor: Actor = { kind: 'anonymous' };

/**
 * What makes two callers' results differ: what their keys may see (every admin the same, a site
 * key its site, a developer key its developer). Results shared between callers key on it.
 */
export function actorScope(actor: Actor): string {
  switch (actor.kind) {
    case 'admin':
      return 'admin';
    case 'site':
      return `site:${actor.siteId}`;
    case 'developer':
      return `developer:${actor.developerId}`;
    default:
      return 'anonymous';
  }
}

/** Fails unless the caller is a platform admin. */
export function requireAdmin(actor: Actor): asserts actor is Extract<Actor, { kind: 'admin' }> {
  if (actor.kind === 'anonymous') throw new UnauthenticatedError();
  if (actor.kind !== 'admin') throw new ForbiddenError('Only admin keys may do this.');
}

/** Fails for anonymous callers. */
export function requireAuthenticated(actor: Actor): asserts actor is Exclude<Actor, { kind: 'anonymous' }> {
  if (actor.kind === 'anonymous') throw new UnauthenticatedError();
}

/**
 * The site an operation acts on: a site key's own site, or the one an admin names.
 * A site key naming another site is refused rather than silently redirected.
 */
export function resolveSiteId(actor: Actor, requested: string | null | undefined): string {
  requireAuthenticated(actor);
  if (actor.kind === 'site') {
    if (requested && requested !== actor.siteId) {
      throw new ForbiddenError('A site key can only act on its own site.');
    }
    return actor.siteId;
  }
  if (actor.kind === 'admin') {
    if (!requested) {
      throw ValidationError.of('arguments', [{ field: 'siteId', message: 'is required with an admin key' }]);
    }
    // Site ids are UUIDs: anything else names no site (and would reach the database as a bad cast).
    if (!isUuid(requested)) {
      throw ValidationError.of('arguments', [{ field: 'siteId', message: 'is not a site id' }]);
    }
    return requested;
  }
  throw new ForbiddenError('Developer keys cannot manage installations; use a site or admin key.');
}

/**
 * Who a caller is for the per-caller limits (rate limit, live connections): its key, or its IP
 * when it has none.
 */
export function callerKey(actor: Actor, ip: string): string {
  return actor.kind === 'anonymous' ? `ip:${ip}` : `key:${actor.keyId}`;
}
