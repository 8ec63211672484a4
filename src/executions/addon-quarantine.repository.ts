import type { DbClient } from '../infrastructure/database/database.js';
import type { AddonQuarantine } from '../generated/prisma/client.js';

export type QuarantineRecord = AddonQuarantine;
export type QuarantineState = 'CLOSED' | 'OPEN' | 'HALF_OPEN';

/** Which breaker, and what the rows need to name it in listings. */
export interface QuarantineKey {
  addonVersionId: string;
  siteId: string;
  addonId: string;
  addonName: string;
  version: string;
}

/** How breakers open and back off; the same on every instance. */
export interface QuarantineRules {
  /** Limit failures within {@link windowMs} that open a closed breaker. */
  threshold: number;
  windowMs: number;
  /** The first backoff; each further trip doubles it, up to {@link maxBackoffMs}. */
  baseBackoffMs: number;
  maxBackoffMs: number;
  /** A breaker that stayed closed this long starts again from the first backoff. */
  forgiveAfterMs: number;
}

/**
 * The circuit breakers of addon versions per site, in PostgreSQL so every instance sees the same
 * state. Every transition is one conditional statement: of instances racing for it, one wins and
 * gets the row back (and logs it); the others get nothing.
 */
export class AddonQuarantineRepository {
  constructor(private readonly db: DbClient) {}

  /** Breakers not closed (the ones that refuse or probe), at most `limit`. */
  listNotClosed(limit = 10_000): Promise<QuarantineRecord[]> {
    return this.db.addonQuarantine.findMany({
      where: { state: { not: 'CLOSED' } },
      orderBy: { changedAt: 'desc' },
      take: limit,
    });
  }

  /** Breakers not closed on one site (all sites with null). */
  listBySite(siteId: string | null): Promise<QuarantineRecord[]> {
    return this.db.addonQuarantine.findMany({
      where: { state: { not: 'CLOSED' }, ...(siteId ? { siteId } : {}) },
      orderBy: { changedAt: 'desc' },
      take: 500,
    });
  }

  find(addonVersionId: string, siteId: string): Promise<QuarantineRecord | null> {
    return this.db.addonQuarantine.findUnique({
      where: { addonVersionId_siteId: { addonVersionId, siteId } },
    });
  }

  /**
   * Counts a limit failure of a closed breaker (a new window once the last one is over) and opens
   * it when the window holds `threshold` failures: the row when this call opened it, else null.
   */
  async recordFailure(
    key: QuarantineKey,
    reason: string,
    rules: QuarantineRules,
  ): Promise<QuarantineRecord | null> {
    const counted = await this.db.$queryRaw<{ failures: number }[]>`
      INSERT INTO "AddonQuarantine" AS q
        ("addonVersionId", "siteId", "addonId", "addonName", "version", "failures", "windowStartedAt", "lastReason")
      VALUES (${key.addonVersionId}::uuid, ${key.siteId}::uuid, ${key.addonId}::uuid, ${key.addonName},
        ${key.version}, 1, now(), ${reason})
      ON CONFLICT ("addonVersionId", "siteId") DO UPDATE SET
        "failures" = CASE WHEN q."windowStartedAt" < now() - make_interval(secs => ${rules.windowMs / 1000})
                          THEN 1 ELSE q."failures" + 1 END,
        "windowStartedAt" = CASE WHEN q."windowStartedAt" < now() - make_interval(secs => ${rules.windowMs / 1000})
                          THEN now() ELSE q."windowStartedAt" END,
        "lastReason" = EXCLUDED."lastReason"
      WHERE q."state" = 'CLOSED'
      RETURNING "failures"`;
    if (counted.length === 0 || counted[0].failures < rules.threshold) return null;
    // The trip count restarts when the breaker had stayed closed for a while (changedAt is when it
    // last closed); the backoff is base * 2^(trips - 1).
    const opened = await this.db.$queryRaw<QuarantineRecord[]>`
      UPDATE "AddonQuarantine" SET
        "state" = 'OPEN',
        "trips" = CASE WHEN "changedAt" < now() - make_interval(secs => ${rules.forgiveAfterMs / 1000})
                       THEN 1 ELSE "trips" + 1 END,
        "openUntil" = now() + make_interval(secs => LEAST(${rules.maxBackoffMs}::float8,
          ${rules.baseBackoffMs}::float8 * power(2, CASE WHEN "changedAt" < now() -
            make_interval(secs => ${rules.forgiveAfterMs / 1000}) THEN 0 ELSE "trips" END)) / 1000),
        "probeUntil" = NULL,
        "failures" = 0,
        "changedAt" = now()
      WHERE "addonVersionId" = ${key.addonVersionId}::uuid AND "siteId" = ${key.siteId}::uuid
        AND "state" = 'CLOSED' AND "failures" >= ${rules.threshold}
      RETURNING *`;
    return opened[0] ?? null;
  }

  /**
   * Takes the one probe of a breaker whose backoff is over (or whose last probe's lease ran out):
   * the row when this caller got it, else null.
   */
  async claimProbe(
    addonVersionId: string,
    siteId: string,
    leaseMs: number,
  ): Promise<QuarantineRecord | null> {
    const rows = await this.db.$queryRaw<QuarantineRecord[]>`
      UPDATE "AddonQuarantine" SET
        "state" = 'HALF_OPEN',
        "probeUntil" = now() + make_interval(secs => ${leaseMs / 1000}),
        "changedAt" = now()
      WHERE "addonVersionId" = ${addonVersionId}::uuid AND "siteId" = ${siteId}::uuid
        AND (("state" = 'OPEN' AND "openUntil" <= now()) OR ("state" = 'HALF_OPEN' AND "probeUntil" <= now()))
      RETURNING *`;
    return rows[0] ?? null;
  }

  /** The probe succeeded: closed, counting from zero. */
  async close(addonVersionId: string, siteId: string): Promise<QuarantineRecord | null> {
    const rows = await this.db.$queryRaw<QuarantineRecord[]>`
      UPDATE "AddonQuarantine" SET
        "state" = 'CLOSED', "failures" = 0, "windowStartedAt" = now(), "openUntil" = NULL,
        "probeUntil" = NULL, "changedAt" = now()
      WHERE "addonVersionId" = ${addonVersionId}::uuid AND "siteId" = ${siteId}::uuid AND "state" = 'HALF_OPEN'
      RETURNING *`;
    return rows[0] ?? null;
  }

  /** The probe failed on a limit: open again, for twice the last backoff (up to the maximum). */
  async reopen(
    addonVersionId: string,
    siteId: string,
    reason: string,
    rules: QuarantineRules,
  ): Promise<QuarantineRecord | null> {
    const rows = await this.db.$queryRaw<QuarantineRecord[]>`
      UPDATE "AddonQuarantine" SET
        "state" = 'OPEN',
        "trips" = "trips" + 1,
        "openUntil" = now() + make_interval(secs => LEAST(${rules.maxBackoffMs}::float8,
          ${rules.baseBackoffMs}::float8 * power(2, "trips")) / 1000),
        "probeUntil" = NULL,
        "lastReason" = ${reason},
        "changedAt" = now()
      WHERE "addonVersionId" = ${addonVersionId}::uuid AND "siteId" = ${siteId}::uuid AND "state" = 'HALF_OPEN'
      RETURNING *`;
    return rows[0] ?? null;
  }

  /**
   * The probe ended without telling anything about the addon (refused before it ran, the database
   * away): the next caller may probe at once.
   */
  async releaseProbe(addonVersionId: string, siteId: string): Promise<void> {
    await this.db.$executeRaw`
      UPDATE "AddonQuarantine" SET "state" = 'OPEN', "openUntil" = now(), "probeUntil" = NULL
      WHERE "addonVersionId" = ${addonVersionId}::uuid AND "siteId" = ${siteId}::uuid AND "state" = 'HALF_OPEN'`;
  }
}
