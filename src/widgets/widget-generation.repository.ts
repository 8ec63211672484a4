import type { DbClient } from '../infrastructure/database/database.js';
import type { GenerationBump } from '../events/effects.repository.js';

/** Generations bumped since a horizon, and the horizon to ask from next time. */
export interface GenerationChanges {
  bumps: GenerationBump[];
  horizon: bigint;
}

/**
 * Render generations (see the WidgetGeneration model): the source that decides whether a cached
 * render is current. Events bump them in their own statement (EffectsRepository); this class reads
 * them, and bumps them for installation changes.
 */
export class WidgetGenerationRepository {
  constructor(private readonly db: DbClient) {}

  /** The generation of a (site, addon); 0 before its first bump. */
  async read(siteId: string, addonId: string): Promise<number> {
    const row = await this.db.widgetGeneration.findUnique({
      where: { siteId_addonId: { siteId, addonId } },
      select: { generation: true },
    });
    return row ? Number(row.generation) : 0;
  }

  /** Bumps a (site, addon) and returns its new generation. */
  async bump(siteId: string, addonId: string): Promise<number> {
    const rows = await this.db.$queryRaw<{ generation: bigint }[]>`
      INSERT INTO "WidgetGeneration" ("siteId", "addonId") VALUES (${siteId}::uuid, ${addonId}::uuid)
      ON CONFLICT ("siteId", "addonId") DO UPDATE
         SET generation = "WidgetGeneration".generation + 1, txid = txid_current(), "updatedAt" = now()
      RETURNING generation`;
    return Number(rows[0].generation);
  }

  /**
   * Every bump by a transaction at or past `horizon` (null: none, only the horizon), and the next
   * horizon: the oldest transaction still running when this statement's snapshot was taken. A bump
   * this read cannot see yet comes from a transaction still running, or one not started, so its
   * id is at or past the next horizon: nothing is missed, and the rows read again are few.
   */
  async changedSince(horizon: bigint | null): Promise<GenerationChanges> {
    const rows = await this.db.$queryRaw<
      { horizon: bigint; siteId: string | null; addonId: string | null; generation: bigint | null }[]
    >`
      WITH snap AS (SELECT txid_snapshot_xmin(txid_current_snapshot()) AS horizon)
      SELECT snap.horizon, g."siteId", g."addonId", g.generation
        FROM snap LEFT JOIN "WidgetGeneration" g
          ON ${horizon}::bigint IS NOT NULL AND g.txid >= ${horizon}::bigint`;
    return {
      horizon: BigInt(rows[0].horizon),
      bumps: rows.flatMap((r) =>
        r.siteId && r.addonId && r.generation !== null
          ? [{ siteId: r.siteId, addonId: r.addonId, generation: Number(r.generation) }]
          : [],
      ),
    };
  }
}
