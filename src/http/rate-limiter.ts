import type { Redis } from 'ioredis';

export interface RateLimitDecision {
  allowed: boolean;
  limit: number;
  remaining: number;
  /** Milliseconds until the current window ends (the Retry-After of a refusal). */
  resetMs: number;
  /** True when Redis could not answer and this instance counted alone. */
  degraded: boolean;
}

// INCR and PEXPIRE in one round trip, atomically: the first hit of a window sets its expiry.
const HIT_SCRIPT = `
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return count`;

/**
 * Fixed-window request counters shared by every instance through Redis. When Redis is down or
 * slow, each instance counts on its own with the same limits: a per-instance limit, rather than
 * letting everything through or refusing everything.
 */
export class RateLimiter {
  private readonly local = new Map<string, { window: number; count: number }>();
  private localWindow = -1;

  constructor(
    private readonly redis: Redis | null,
    private readonly windowMs: number,
    /** Namespace of the counters in Redis (deployments may share one Redis). */
    private readonly prefix = 'themepress:',
    /** Longest wait for Redis before counting locally. */
    private readonly redisTimeoutMs = 50,
  ) {}

  /** Counts one request against `key`, allowed up to `limit` per window. */
  async hit(key: string, limit: number): Promise<RateLimitDecision> {
    const now = Date.now();
    const window = Math.floor(now / this.windowMs);
    const resetMs = (window + 1) * this.windowMs - now;
    let count: number | null = null;
    if (this.redis && this.redis.status === 'ready')
      count = await this.redisHit(`${this.prefix}rl:${key}:${window}`);
    const degraded = count === null;
    if (count === null) count = this.localHit(key, window);
    return { allowed: count <= limit, limit, remaining: Math.max(0, limit - count), resetMs, degraded };
  }

  private async redisHit(redisKey: string): Promise<number | null> {
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<null>((resolve) => {
        timer = setTimeout(() => resolve(null), this.redisTimeoutMs);
      });
      const hit = this.redis!.eval(HIT_SCRIPT, 1, redisKey, String(this.windowMs)) as Promise<number>;
      return await Promise.race([hit, timeout]);
    } catch {
      return null;
    } finally {
      clearTimeout(timer);
    }
  }

  private localHit(key: string, window: number): number {
    if (window !== this.localWindow) {
      this.local.clear();
      this.localWindow = window;
    }
    const entry = this.local.get(key) ?? { window, count: 0 };
    entry.count += 1;
    this.local.set(key, entry);
    return entry.count;
  }
}
