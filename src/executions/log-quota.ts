import type { Redis } from 'ioredis';

/** How much addon log text is kept. */
export interface LogQuotaLimits {
  /** UTF-8 bytes of log messages stored with one execution record. */
  maxBytesPerExecution: number;
  /** UTF-8 bytes of log messages stored per site and UTC day, across the cluster. */
  maxBytesPerSiteDay: number;
}

interface SiteDay {
  /** The cluster's total for the day when last read from Redis. */
  known: number;
  /** Bytes admitted here since then, not yet added to Redis. */
  pending: number;
  /** Bytes sent to Redis by a sync that has not answered yet: still charged here meanwhile. */
  sending: number;
}

const DAY_MS = 86_400_000;
/** Sites tracked per day before the idle ones (nothing pending) are forgotten. */
const MAX_TRACKED = 100_000;

/**
 * The daily log budget of each site. Admission is local and synchronous (the recorder runs on
 * every addon call); {@link sync} adds what this instance admitted to a per-day counter in Redis
 * and reads the cluster's total back, so instances overshoot by at most what they admit between
 * two syncs (one recorder flush, 200 ms). Without Redis each instance keeps its own budget.
 */
export class LogQuota {
  private day = -1;
  private readonly sites = new Map<string, SiteDay>();
  private syncing: Promise<void> | null = null;

  constructor(
    readonly limits: LogQuotaLimits,
    private readonly redis: Redis | null = null,
    private readonly prefix = 'themepress:',
    private readonly now: () => number = Date.now,
  ) {}

  /** Bytes of `wanted` the site may still store today (at most the per-execution cap); charged. */
  admit(siteId: string | null, wanted: number): number {
    const want = Math.min(wanted, this.limits.maxBytesPerExecution);
    if (want <= 0) return 0;
    this.rollDay();
    const key = siteId ?? '-';
    let site = this.sites.get(key);
    if (!site) {
      if (this.sites.size >= MAX_TRACKED) this.forgetIdle();
      site = { known: 0, pending: 0, sending: 0 };
      this.sites.set(key, site);
    }
    const left = this.limits.maxBytesPerSiteDay - site.known - site.pending - site.sending;
    const allowed = Math.max(0, Math.min(want, left));
    site.pending += allowed;
    return allowed;
  }

  /** Adds this instance's admissions to Redis and learns the cluster's totals; never throws. */
  sync(): Promise<void> {
    this.syncing ??= this.push().finally(() => {
      this.syncing = null;
    });
    return this.syncing;
  }

  private async push(): Promise<void> {
    const redis = this.redis;
    if (!redis || redis.status !== 'ready') return;
    const day = this.day;
    const batch = [...this.sites].filter(([, site]) => site.pending > 0);
    if (batch.length === 0) return;
    const pipeline = redis.pipeline();
    for (const [siteId, site] of batch) {
      const key = `${this.prefix}logbytes:${day}:${siteId}`;
      pipeline.incrby(key, site.pending);
      pipeline.expire(key, 2 * 86_400);
    }
    const sent = batch.map(([, site]) => site.pending);
    batch.forEach(([, site]) => {
      site.sending += site.pending;
      site.pending = 0;
    });
    let replies: [Error | null, unknown][] | null;
    try {
      replies = await pipeline.exec();
    } catch {
      replies = null;
    }
    if (day !== this.day) return;
    batch.forEach(([, site], i) => {
      site.sending -= sent[i];
      const total = Number(replies?.[i * 2]?.[1]);
      // Not counted in Redis: keep it locally, so the budget still holds here.
      if (replies === null || replies[i * 2][0] || !Number.isFinite(total)) site.pending += sent[i];
      else site.known = Math.max(site.known, total);
    });
  }

  private rollDay(): void {
    const day = Math.floor(this.now() / DAY_MS);
    if (day === this.day) return;
    this.day = day;
    this.sites.clear();
  }

  private forgetIdle(): void {
    for (const [key, site] of this.sites)
      if (site.pending === 0 && site.sending === 0) this.sites.delete(key);
  }
}
