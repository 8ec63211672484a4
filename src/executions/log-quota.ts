import type { Redis } from 'ioredis';
import { DailyQuota } from '../infrastructure/redis/daily-quota.js';

/** How much addon log text is kept. */
export interface LogQuotaLimits {
  /** UTF-8 bytes of log messages stored with one execution record. */
  maxBytesPerExecution: number;
  /** UTF-8 bytes of log messages stored per site and UTC day, across the cluster. */
  maxBytesPerSiteDay: number;
}

/** The daily log budget of each site, and the cap of one execution's logs within it. */
export class LogQuota extends DailyQuota {
  constructor(
    readonly limits: LogQuotaLimits,
    redis: Redis | null = null,
    prefix = 'themepress:',
    now: () => number = Date.now,
  ) {
    super('logbytes', limits.maxBytesPerSiteDay, redis, prefix, now);
  }

  /** Bytes of `wanted` the site may still store today (at most the per-execution cap); charged. */
  override admit(siteId: string | null, wanted: number): number {
    return super.admit(siteId, Math.min(wanted, this.limits.maxBytesPerExecution));
  }
}
