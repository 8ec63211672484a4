import type { FastifyRequest } from 'fastify';
import type { Actor } from '../auth/actor.js';
import type { ApiKeyService } from '../auth/api-key.service.js';

export type RequestActorResolver = (request: FastifyRequest) => Promise<Actor>;

/** Authenticates a REST request from its `Authorization` header. */
export function createRequestActorResolver(apiKeys: ApiKeyService): RequestActorResolver {
  return (request) => apiKeys.authenticateHeader(request.headers.authorization);
}
