import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { AppConfig } from '../config/app-config.js';
import type { Metrics } from '../infrastructure/metrics/metrics.js';
import { ErrorCode, RateLimitedError } from '../errors/index.js';
import { callerKey, type Actor } from '../auth/actor.js';
import type { RateLimitDecision, RateLimiter } from './rate-limiter.js';
import type { AddressLookupAdmission, RequestActorResolver } from './request-actor.js';

const LIMITED = /^\/(graphql|api\/)/;

interface RateLimitDeps {
  config: AppConfig;
  limiter: RateLimiter;
  metrics: Metrics;
  /** What an address is counted under (an IPv6 address: its network); default: itself. */
  limitAddress?: (ip: string) => string;
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
  return { ...decision, retryAfterSeconds: retryAfterSecondsOf(decision) };
}

/** Whole seconds until a decision's window ends, at least 1 (a refusal's `Retry-After`). */
function retryAfterSecondsOf(decision: RateLimitDecision): number {
  return Math.max(1, Math.ceil(decision.resetMs / 1000));
}

/**
 * Look-ups of keys not cached here, counted per address (`RATE_LIMIT_KEY_LOOKUPS`, the address as
 * limits count it: see `createLimitAddress`) before the database is read: past the limit, a
 * RateLimitedError. Undefined when that limit is off.
 */
export function createKeyLookupAdmission(deps: RateLimitDeps): AddressLookupAdmission | undefined {
  const limit = deps.config.rateLimit.keyLookups;
  if (limit === 0) return undefined;
  return async (address) => {
    const decision = await deps.limiter.hit(`lookup:${address}`, limit);
    if (decision.allowed) return;
    deps.metrics.rateLimited.inc({ caller: 'key-lookup' });
    const retryAfter = retryAfterSecondsOf(decision);
    throw new RateLimitedError(
      `Too many API keys this server did not know from this address: at most ${limit} look-ups per ${deps.config.rateLimit.windowSeconds} s; retry in ${retryAfter} s.`,
      retryAfter,
    );
  };
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
    } catch (error) {
      if (error instanceof RateLimitedError)
        return refuse(request, reply, error.message, error.retryAfterSeconds);
      // A bad key is refused by the route itself (401); count it against the IP meanwhile.
      actor = { kind: 'anonymous' };
    }
    // Only an anonymous caller is counted by address; a key is counted as itself.
    const address = actor.kind === 'anonymous' ? (deps.limitAddress?.(request.ip) ?? request.ip) : request.ip;
    const decision = await hitRateLimit(deps, actor, callerKey(actor, address));
    if (!decision) return;
    reply.header('ratelimit-limit', decision.limit);
    reply.header('ratelimit-remaining', decision.remaining);
    reply.header('ratelimit-reset', Math.ceil(decision.resetMs / 1000));
    if (decision.allowed) return;
    const retryAfter = decision.retryAfterSeconds;
    return refuse(
      request,
      reply,
      `Rate limit of ${decision.limit} requests per ${rateLimit.windowSeconds} s exceeded; retry in ${retryAfter} s.`,
      retryAfter,
    );
  });
}

/** A 429 with `Retry-After`, GraphQL-shaped on `/graphql` and REST-shaped elsewhere. */
function refuse(request: FastifyRequest, reply: FastifyReply, message: string, retryAfter: number) {
  reply.header('retry-after', retryAfter);
  const error = { code: ErrorCode.RateLimited, message, retryAfterSeconds: retryAfter };
  // GraphQL clients read `errors`; REST clients read `error`.
  const body = request.url.startsWith('/graphql')
    ? { errors: [{ message, extensions: { code: ErrorCode.RateLimited, retryAfterSeconds: retryAfter } }] }
    : { error };
  return reply.status(429).send(body);
}
