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

// Reserves ARGV[2] hits of the window at once (INCRBY and PEXPIRE in one round trip, atomically:
// the first reservation of a window sets its expiry) and returns the window's new total.
const RESERVE_SCRIPT = `
local count = redis.call('INCRBY', KEYS[1], ARGV[2])
if count == tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return count`;

/** Largest block of hits one instance reserves at once. */
const MAX_LEASE = 1000;

/**
 * Hits one instance reserves in Redis per round trip for a limit: 1% of it (at most
 * {@link MAX_LEASE}), so a limit under 200 is counted hit by hit, and a large one costs a round
 * trip per block instead of per request.
 */
export function leaseSize(limit: number): number {
  return Math.min(MAX_LEASE, Math.max(1, Math.floor(limit / 100)));
}

/** What this instance holds of a key's window: hits reserved in Redis and not spent yet. */
interface Lease {
  window: number;
  unspent: number;
  /** The window's total in Redis after this instance's last reservation. */
  reservedTotal: number;
  /** Redis refused a reservation: the window is used up everywhere, as counts only grow. */
  exhausted: boolean;
  /** The reservation in flight, shared by the hits that wait for it: false when Redis failed. */
  pending: Promise<boolean> | null;
}

/**
 * Fixed-window request counters shared by every instance through Redis. Each instance reserves
 * hits in blocks ({@link leaseSize}) and spends them locally, so no instance ever admits a hit
 * that Redis did not count (the limit holds across instances), while a busy key costs one Redis
 * round trip per block instead of one per request. Blocks an instance has not spent when others
 * run out are lost to the window: at most one block per instance, 1% of the limit. When Redis is
 * down or slow, each instance counts on its own with the same limits: a per-instance limit,
 * rather than letting everything through or refusing everything.
 */
export class RateLimiter {
  private readonly local = new Map<string, { window: number; count: number }>();
  private localWindow = -1;
  private readonly leases = new Map<string, Lease>();
  private leaseWindow = -1;

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
    if (this.redis && this.redis.status === 'ready') {
      const lease = this.leaseOf(key, window);
      // A hit with a reserved block to spend takes it without waiting for anything.
      const spent = lease.unspent > 0 ? this.take(lease) : await this.spend(key, limit, lease);
      if (spent !== null) {
        // Hits counted here while Redis did not answer stay counted for the rest of the window
        // (those that reached Redis late count twice: a limit too strict, never too loose).
        const used = (spent ? lease.reservedTotal - lease.unspent : limit) + this.localCount(key, window);
        const allowed = spent && used <= limit;
        return { allowed, limit, remaining: Math.max(0, limit - used), resetMs, degraded: false };
      }
    }
    // Counted on from what Redis last told this instance of the window: a reservation that is
    // slow for a moment must not hand a caller near its limit a fresh one.
    const lease = window === this.leaseWindow ? this.leases.get(key) : undefined;
    const count = (lease ? lease.reservedTotal - lease.unspent : 0) + this.localHit(key, window);
    return { allowed: count <= limit, limit, remaining: Math.max(0, limit - count), resetMs, degraded: true };
  }

  private leaseOf(key: string, window: number): Lease {
    if (window !== this.leaseWindow) {
      this.leases.clear();
      this.leaseWindow = window;
    }
    let lease = this.leases.get(key);
    if (!lease) {
      lease = { window, unspent: 0, reservedTotal: 0, exhausted: false, pending: null };
      this.leases.set(key, lease);
    }
    return lease;
  }

  private take(lease: Lease): true {
    lease.unspent -= 1;
    return true;
  }

  /**
   * Spends a hit of the lease, reserving blocks until there is one or the window is used up (hits
   * that arrive meanwhile wait for the same reservation): false when the window is used up, null
   * when Redis did not answer.
   */
  private async spend(key: string, limit: number, lease: Lease): Promise<boolean | null> {
    for (;;) {
      // Checked and taken in one synchronous step after each wait: waiters race for the block.
      if (lease.unspent > 0) return this.take(lease);
      if (lease.exhausted) return false;
      lease.pending ??= this.reserve(key, limit, lease).finally(() => {
        lease.pending = null;
      });
      if (!(await lease.pending)) return null;
    }
  }

  /** Reserves the next block of `key`'s window in Redis; false when Redis fails or does not answer in time. */
  private async reserve(key: string, limit: number, lease: Lease): Promise<boolean> {
    const size = leaseSize(limit);
    let timer: NodeJS.Timeout | undefined;
    try {
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('redis timeout')), this.redisTimeoutMs);
      });
      const total = Number(
        await Promise.race([
          this.redis!.eval(
            RESERVE_SCRIPT,
            1,
            `${this.prefix}rl:${key}:${lease.window}`,
            String(this.windowMs),
            size,
          ),
          timeout,
        ]),
      );
      // The part of the block still under the limit is this instance's; the rest is never admitted.
      const granted = Math.max(0, Math.min(size, limit - (total - size)));
      lease.unspent += granted;
      lease.reservedTotal = total - (size - granted);
      if (granted < size) lease.exhausted = true;
      return true;
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Hits of `key` counted here, Redis not answering, in `window`. */
  private localCount(key: string, window: number): number {
    return window === this.localWindow ? (this.local.get(key)?.count ?? 0) : 0;
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
