import type { FastifyInstance } from 'fastify';
import type { AppConfig } from '../config/app-config.js';
import type { Metrics } from '../infrastructure/metrics/metrics.js';
import { ErrorCode } from '../errors/index.js';
import { callerKey, type Actor } from '../auth/actor.js';
import type { RateLimitDecision, RateLimiter } from './rate-limiter.js';
import type { RequestActorResolver } from './request-actor.js';

const LIMITED = /^\/(graphql|api\/)/;

interface RateLimitDeps {
  config: AppConfig;
  limiter: RateLimiter;
  metrics: Metrics;
}

/**
 * Counts one hit of `caller` ({@link callerKey}) against its role's limit: an HTTP request here, a
 * WebSocket `subscribe` in the subscription server. Null when the role has no limit.
 */
export async function hitRateLimit(
  deps: RateLimitDeps,
  actor: Actor,
  caller: string,
): Promise<(RateLimitDecision & { retryAfterSeconds: number }) | null> {
  const limit = deps.config.rateLimit[actor.kind];
  if (limit === 0) return null;
  const decision = await deps.limiter.hit(caller, limit);
  if (!decision.allowed) deps.metrics.rateLimited.inc({ caller: actor.kind });
  return { ...decision, retryAfterSeconds: Math.max(1, Math.ceil(decision.resetMs / 1000)) };
}

/**
 * Rate limits the API routes: per key for authenticated callers (limit by role), per IP for
 * anonymous ones. A refusal is 429 with `Retry-After` and a JSON (or GraphQL-shaped) body.
 */
export function registerRateLimit(
  app: FastifyInstance,
  deps: RateLimitDeps & { actorOf: RequestActorResolver },
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
    const decision = await hitRateLimit(deps, actor, callerKey(actor, request.ip));
    if (!decision) return;
    reply.header('ratelimit-limit', decision.limit);
    reply.header('ratelimit-remaining', decision.remaining);
    reply.header('ratelimit-reset', Math.ceil(decision.resetMs / 1000));
    if (decision.allowed) return;
    const retryAfter = decision.retryAfterSeconds;
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
