import type { Redis } from 'ioredis';

interface KeyDay {
  /** The cluster's total for the day when last read from Redis. */
  known: number;
  /** What was admitted here since then, not yet added to Redis. */
  pending: number;
  /** What a sync sent to Redis that has not answered yet: still charged here meanwhile. */
  sending: number;
}

const DAY_MS = 86_400_000;
const used = (key: KeyDay) => key.known + key.pending + key.sending;
/** Keys tracked per day before the idle ones (nothing pending) are forgotten. */
const MAX_TRACKED = 100_000;

/** What a {@link DailyQuota} allows, and where it keeps its counts. */
export interface DailyQuotaOptions {
  /** Names the budget in Redis keys (`<prefix><counter>:<day>:<site>[/<addon>]`). */
  counter: string;
  /** What one site may be admitted per UTC day. */
  perDay: number;
  /**
   * What one addon of a site may be admitted of the site's day, so that one addon cannot spend
   * what the site's other addons (other developers' code) need. Defaults to the whole day.
   */
  perAddonDay?: number;
  redis?: Redis | null;
  prefix?: string;
  now?: () => number;
}

/**
 * A budget per site and UTC day, and per addon within it, shared by the cluster. Admission is local
 * and synchronous (it runs on every addon call); {@link sync} adds what this instance admitted to a
 * per-day counter in Redis and reads the cluster's total back, so instances overshoot by at most
 * what they admit between two syncs. Without Redis each instance keeps its own budget.
 */
export class DailyQuota {
  readonly perDay: number;
  readonly perAddonDay: number;
  private readonly counter: string;
  private readonly redis: Redis | null;
  private readonly prefix: string;
  private readonly now: () => number;
  private day = -1;
  private readonly sites = new Map<string, KeyDay>();
  private syncing: Promise<void> | null = null;
  private syncTimer: NodeJS.Timeout | null = null;

  constructor(options: DailyQuotaOptions) {
    this.counter = options.counter;
    this.perDay = options.perDay;
    this.perAddonDay = Math.min(options.perAddonDay ?? options.perDay, options.perDay);
    this.redis = options.redis ?? null;
    this.prefix = options.prefix ?? 'themepress:';
    this.now = options.now ?? Date.now;
  }

  /**
   * How much of `want` the site (null: none) may still have today, within the addon's share when
   * `addonId` is given; that much is charged to both.
   */
  admit(siteId: string | null, want: number, addonId?: string): number {
    if (want <= 0) return 0;
    this.rollDay();
    // Before either entry is taken, so that forgetting idle ones cannot drop one of them.
    if (this.sites.size >= MAX_TRACKED) this.forgetIdle();
    const site = this.tracked(siteId ?? '-');
    const addon =
      addonId !== undefined && this.perAddonDay < this.perDay
        ? this.tracked(`${siteId ?? '-'}/${addonId}`)
        : null;
    let left = this.perDay - used(site);
    if (addon) left = Math.min(left, this.perAddonDay - used(addon));
    const allowed = Math.max(0, Math.min(want, left));
    site.pending += allowed;
    if (addon) addon.pending += allowed;
    return allowed;
  }

  /** What the site has left of today's budget, as far as this instance knows. */
  leftToday(siteId: string | null): number {
    this.rollDay();
    const site = this.sites.get(siteId ?? '-');
    return site ? Math.max(0, this.perDay - used(site)) : this.perDay;
  }

  private tracked(key: string): KeyDay {
    let entry = this.sites.get(key);
    if (!entry) {
      entry = { known: 0, pending: 0, sending: 0 };
      this.sites.set(key, entry);
    }
    return entry;
  }

  /** Seconds until the next UTC day, when every site's budget is whole again. */
  secondsLeftToday(): number {
    return Math.ceil((DAY_MS - (this.now() % DAY_MS)) / 1000);
  }

  /** A {@link sync} within `ms`, one for all the admissions meanwhile. */
  syncSoon(ms = 200): void {
    if (this.syncTimer) return;
    this.syncTimer = setTimeout(() => {
      this.syncTimer = null;
      void this.sync();
    }, ms);
    this.syncTimer.unref();
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
    for (const [tracked, entry] of batch) {
      const key = `${this.prefix}${this.counter}:${day}:${tracked}`;
      pipeline.incrby(key, entry.pending);
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
