import type { FastifyInstance } from 'fastify';
import type { AppConfig } from '../config/app-config.js';
import type { Metrics } from '../infrastructure/metrics/metrics.js';
import { ErrorCode } from '../errors/index.js';
import type { Actor } from '../auth/actor.js';
import type { RateLimiter } from './rate-limiter.js';
import type { RequestActorResolver } from './request-actor.js';

const LIMITED = /^\/(graphql|api\/)/;

/**
 * Rate limits the API routes: per key for authenticated callers (limit by role), per IP for
 * anonymous ones. A refusal is 429 with `Retry-After` and a JSON (or GraphQL-shaped) body.
 */
export function registerRateLimit(
  app: FastifyInstance,
  deps: { config: AppConfig; limiter: RateLimiter; actorOf: RequestActorResolver; metrics: Metrics },
): void {
  const { rateLimit } = deps.config;
  app.addHook('onRequest', async (request, reply) => {
    if (!LIMITED.test(request.url)) return;
    let actor: Actor;
    try {
      actor = await deps.actorOf(request);
    } catch {
      // A bad key is refused by the route itself (401); count it against the IP meanwhile.
      actor = { kind: 'anonymous' };
    }
    const limit = rateLimit[actor.kind];
    if (limit === 0) return;
    const key = actor.kind === 'anonymous' ? `ip:${request.ip}` : `key:${actor.keyId}`;
    const decision = await deps.limiter.hit(key, limit);
    reply.header('ratelimit-limit', decision.limit);
    reply.header('ratelimit-remaining', decision.remaining);
    reply.header('ratelimit-reset', Math.ceil(decision.resetMs / 1000));
    if (decision.allowed) return;
    deps.metrics.rateLimited.inc({ caller: actor.kind });
    const retryAfter = Math.max(1, Math.ceil(decision.resetMs / 1000));
    const message = `Rate limit of ${decision.limit} requests per ${rateLimit.windowSeconds} s exceeded; retry in ${retryAfter} s.`;
    reply.header('retry-after', retryAfter);
    const error = { code: ErrorCode.RateLimited, message, retryAfterSeconds: retryAfter };
    // GraphQL clients read `errors`; REST clients read `error`.
    const body = request.url.startsWith('/graphql')
      ? { errors: [{ message, extensions: { code: ErrorCode.RateLimited, retryAfterSeconds: retryAfter } }] }
      : { error };
    return reply.status(429).send(body);
  });
}
