import type { FastifyRequest } from 'fastify';
import type { Actor } from '../auth/actor.js';
import type { ApiKeyService } from '../auth/api-key.service.js';

export type RequestActorResolver = (request: FastifyRequest) => Promise<Actor>;

type AuthOutcome = { actor: Actor } | { error: unknown };

const outcomes = new WeakMap<FastifyRequest, Promise<AuthOutcome>>();

/**
 * Authenticates a request from its `Authorization` header once: the rate limiter, GraphQL's
 * context and REST routes all ask, and share the answer.
 */
export function createRequestActorResolver(apiKeys: ApiKeyService): RequestActorResolver {
  return async (request) => {
    let outcome = outcomes.get(request);
    if (!outcome) {
      outcome = apiKeys.authenticateHeader(request.headers.authorization).then(
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
