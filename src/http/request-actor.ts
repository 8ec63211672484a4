import type { FastifyRequest } from 'fastify';
import type { Actor } from '../auth/actor.js';
import type { ApiKeyService } from '../auth/api-key.service.js';

/** Admits a look-up of a key not cached here for the address a request comes from. */
export type AddressLookupAdmission = (address: string) => Promise<void>;

export type RequestActorResolver = (request: FastifyRequest) => Promise<Actor>;

type AuthOutcome = { actor: Actor } | { error: unknown };

const outcomes = new WeakMap<FastifyRequest, Promise<AuthOutcome>>();

/**
 * Authenticates a request from its `Authorization` header once: the rate limiter, GraphQL's
 * context and REST routes all ask, and share the answer. A key not cached here is looked up only
 * once `admitLookup` allowed it for the request's address.
 */
export function createRequestActorResolver(
  apiKeys: ApiKeyService,
  admitLookup?: AddressLookupAdmission,
): RequestActorResolver {
  return async (request) => {
    let outcome = outcomes.get(request);
    if (!outcome) {
      outcome = apiKeys
        .authenticateHeader(request.headers.authorization, admitLookup && (() => admitLookup(request.ip)))
        .then(
          (actor) => ({ actor }),
          (error: unknown) => ({ error }),
        );
      outcomes.set(request, outcome);
    }
    const settled = await outcome;
    if ('error' in settled) throw settled.error;
    return settled.actor;
  };
}
