import type { Redis } from 'ioredis';
import { DailyQuota } from '../infrastructure/redis/daily-quota.js';

/** How much addon log text is kept. */
export interface LogQuotaLimits {
  /** UTF-8 bytes of log messages stored with one execution record. */
  maxBytesPerExecution: number;
  /** UTF-8 bytes of log messages stored per site and UTC day, across the cluster. */
  maxBytesPerSiteDay: number;
  /** What one addon may take of its site's day; defaults to the whole day. */
  maxBytesPerAddonDay?: number;
}

/** The daily log budget of each site and its addons, and the cap of one execution's logs within it. */
export class LogQuota extends DailyQuota {
  constructor(
    readonly limits: LogQuotaLimits,
    redis: Redis | null = null,
    prefix = 'themepress:',
    now: () => number = Date.now,
  ) {
    super({
      counter: 'logbytes',
      perDay: limits.maxBytesPerSiteDay,
      perAddonDay: limits.maxBytesPerAddonDay,
      redis,
      prefix,
      now,
    });
  }

  /** Bytes of `wanted` the site (and addon) may still store today, at most the per-execution cap; charged. */
  override admit(siteId: string | null, wanted: number, addonId?: string): number {
    return super.admit(siteId, Math.min(wanted, this.limits.maxBytesPerExecution), addonId);
  }
}
