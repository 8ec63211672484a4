import type pg from 'pg';
import type { DbClient } from '../infrastructure/database/database.js';
import { ConflictError } from '../errors/index.js';
import type { EventRecord, NewDelivery, NewEvent } from './event.repository.js';

/** An event to store, with the deliveries it creates and the idempotency key it was given. */
export interface PlannedEvent {
  event: NewEvent;
  deliveries: NewDelivery[];
  /** `{ scope, key }` of {@link idempotencyScope}; the key row is written with the event. */
  idempotency: { scope: string; key: string } | null;
}

/** The final state of one storage key after a call: a value (with its JSON size), or deleted. */
export type StorageChange =
  | { addonId: string; siteId: string; key: string; deleted: false; value: unknown; sizeBytes: number }
  | { addonId: string; siteId: string; key: string; deleted: true };

/** A (site, addon) whose cached widget renders the commit makes out of date. */
export interface WidgetScope {
  siteId: string;
  addonId: string;
}

/** A generation after its bump. */
export interface GenerationBump extends WidgetScope {
  generation: number;
}

/** Everything one execution (or one platform emit) commits at once. */
export interface EffectsItem {
  events: PlannedEvent[];
  storage: StorageChange[];
  /** Scopes bumped once each, however many events of the item invalidate them. */
  bumps: WidgetScope[];
}

export interface CommittedEffects {
  /** The stored events, in the order given. */
  events: EventRecord[];
  generations: GenerationBump[];
}

/** Where a key of `source` (an addon name, or "platform") on `siteId` lives. */
export function idempotencyScope(siteId: string | null, source: string): string {
  return `${siteId ?? ''}/${source}`;
}

/**
 * Storage writes and deletes, events with their deliveries and idempotency keys, and widget
 * generation bumps: one statement, so one transaction, whatever it carries. The rows travel as JSON
 * documents, one parameter each; events are inserted in the order given (their seq follows it).
 * A storage key or a generation scope may appear once per statement (ON CONFLICT touches a row
 * once): the batch writer keeps items that share one apart.
 */
const COMMIT_EFFECTS = `
  WITH e AS (
    INSERT INTO "Event" (id, name, "sourceAddonId", source, "siteId", data, "requestId")
    SELECT x.id, x.name, x."sourceAddonId", x.source, x."siteId", x.data, x."requestId"
      FROM jsonb_to_recordset($1::jsonb)
           AS x(id uuid, name text, "sourceAddonId" uuid, source text, "siteId" uuid, data jsonb,
                "requestId" text, n int)
     ORDER BY x.n
    RETURNING id, seq::text AS seq, txid::text AS txid, name, "sourceAddonId", source, "siteId", data,
              "requestId", "createdAt" AT TIME ZONE 'UTC' AS "createdAt"
  ), d AS (
    INSERT INTO "Delivery" (id, "eventId", "eventName", "siteId", "installationId", "addonId",
                            "addonName", handler, "maxAttempts")
    SELECT gen_random_uuid(), e.id, e.name, e."siteId", t.installation, t.addon, t."addonName",
           t.handler, $3
      FROM jsonb_to_recordset($2::jsonb)
           AS t("eventId" uuid, installation uuid, addon uuid, "addonName" text, handler text)
      JOIN e ON e.id = t."eventId"
    RETURNING 1
  ), k AS (
    INSERT INTO "EventIdempotencyKey" (scope, key, "eventId")
    SELECT x.scope, x.key, x."eventId"
      FROM jsonb_to_recordset($4::jsonb) AS x(scope text, key text, "eventId" uuid)
    RETURNING 1
  ), s AS (
    INSERT INTO "AddonStorage" ("addonId", "siteId", key, value, "sizeBytes", "updatedAt")
    SELECT x."addonId", x."siteId", x.key, x.value, x."sizeBytes", now()
      FROM jsonb_to_recordset($5::jsonb)
           AS x("addonId" uuid, "siteId" uuid, key text, value jsonb, "sizeBytes" int)
    ON CONFLICT ("addonId", "siteId", key) DO UPDATE
       SET value = EXCLUDED.value, "sizeBytes" = EXCLUDED."sizeBytes", "updatedAt" = EXCLUDED."updatedAt"
    RETURNING 1
  ), r AS (
    DELETE FROM "AddonStorage" t
     USING jsonb_to_recordset($6::jsonb) AS x("addonId" uuid, "siteId" uuid, key text)
     WHERE t."addonId" = x."addonId" AND t."siteId" = x."siteId" AND t.key = x.key
    RETURNING 1
  ), g AS (
    INSERT INTO "WidgetGeneration" ("siteId", "addonId")
    SELECT x."siteId", x."addonId" FROM jsonb_to_recordset($7::jsonb) AS x("siteId" uuid, "addonId" uuid)
    ON CONFLICT ("siteId", "addonId") DO UPDATE
       SET generation = "WidgetGeneration".generation + 1, txid = txid_current(), "updatedAt" = now()
    RETURNING "siteId", "addonId", generation::text AS generation
  )
  SELECT (SELECT coalesce(json_agg(e ORDER BY e.seq), '[]'::json) FROM e) AS events,
         (SELECT coalesce(json_agg(g), '[]'::json) FROM g) AS generations`;

interface StoredRow extends Omit<EventRecord, 'seq' | 'txid' | 'createdAt'> {
  seq: string;
  txid: string;
  createdAt: string;
}

interface ResultRow {
  events: StoredRow[];
  generations: Array<WidgetScope & { generation: string }>;
}

/** {@link COMMIT_EFFECTS}'s parameters for a batch of items. */
function values(items: readonly EffectsItem[], maxAttempts: number): unknown[] {
  const events = items.flatMap((item) => item.events);
  const bumps = new Map<string, WidgetScope>();
  for (const item of items) for (const b of item.bumps) bumps.set(`${b.siteId}:${b.addonId}`, b);
  const storage = items.flatMap((item) => item.storage);
  return [
    JSON.stringify(events.map(({ event }, n) => ({ ...event, data: event.data ?? null, n }))),
    JSON.stringify(
      events.flatMap(({ event, deliveries }) =>
        deliveries.map((d) => ({
          eventId: event.id,
          installation: d.installationId,
          addon: d.addonId,
          addonName: d.addonName,
          handler: d.handler,
        })),
      ),
    ),
    maxAttempts,
    JSON.stringify(
      events.flatMap(({ event, idempotency }) =>
        idempotency ? [{ scope: idempotency.scope, key: idempotency.key, eventId: event.id }] : [],
      ),
    ),
    JSON.stringify(
      storage.flatMap((c) =>
        c.deleted
          ? []
          : [{ addonId: c.addonId, siteId: c.siteId, key: c.key, value: c.value, sizeBytes: c.sizeBytes }],
      ),
    ),
    JSON.stringify(
      storage.flatMap((c) => (c.deleted ? [{ addonId: c.addonId, siteId: c.siteId, key: c.key }] : [])),
    ),
    JSON.stringify([...bumps.values()]),
  ];
}

function toCommitted(row: ResultRow): CommittedEffects {
  return {
    events: row.events.map((e) => ({
      ...e,
      seq: BigInt(e.seq),
      txid: BigInt(e.txid),
      createdAt: new Date(e.createdAt),
    })),
    generations: row.generations.map((g) => ({ ...g, generation: Number(g.generation) })),
  };
}

/** A second emit with an idempotency key the first has not finished storing. */
function translate(error: unknown): never {
  // pg's error, or Prisma's wrapping of it (code P2010, the SQLSTATE in meta.code).
  const failure = error as { code?: string; meta?: { code?: string }; constraint?: string; message?: string };
  const sqlState = failure.meta?.code ?? failure.code;
  const where = `${failure.constraint ?? ''} ${failure.message ?? ''}`;
  if (sqlState === '23505' && where.includes('EventIdempotencyKey')) {
    throw new ConflictError(
      'Another emit with the same idempotency key was stored at the same moment; retry to receive its event.',
    );
  }
  throw error;
}

/**
 * Commits effects. Nothing above it knows the SQL: the execution effects and every emit go through
 * here, so an event never exists without the storage writes of its call, nor the reverse.
 */
export class EffectsRepository {
  /**
   * Several items in one statement on the pool (the group commit of EffectsBatchWriter): all or
   * nothing. A prepared statement: Prisma's raw-query layer costs about three times the statement.
   */
  static async commitBatch(
    pool: pg.Pool,
    items: readonly EffectsItem[],
    maxAttempts: number,
  ): Promise<CommittedEffects> {
    try {
      const { rows } = await pool.query<ResultRow>({
        name: 'themepress-commit-effects',
        text: COMMIT_EFFECTS,
        values: values(items, maxAttempts),
      });
      return toCommitted(rows[0]);
    } catch (error) {
      translate(error);
    }
  }

  /** One item through `db`: part of the caller's transaction (a lifecycle hook's). */
  static async commitIn(db: DbClient, item: EffectsItem, maxAttempts: number): Promise<CommittedEffects> {
    try {
      const rows = await db.$queryRawUnsafe<ResultRow[]>(COMMIT_EFFECTS, ...values([item], maxAttempts));
      return toCommitted(rows[0]);
    } catch (error) {
      translate(error);
    }
  }
}
