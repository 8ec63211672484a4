import type pg from 'pg';
import type { DbClient } from '../infrastructure/database/database.js';
import { Prisma } from '../generated/prisma/client.js';
import { isUuid } from '../shared/ids.js';
import { patternToRegex } from './event-name.js';

/** A stored event as the services use it (the insertion transaction id left out). */
export interface EventRecord {
  id: string;
  seq: bigint;
  name: string;
  sourceAddonId: string | null;
  source: string;
  siteId: string | null;
  data: unknown;
  requestId: string | null;
  createdAt: Date;
}

export interface NewEvent {
  id: string;
  name: string;
  sourceAddonId: string | null;
  source: string;
  siteId: string | null;
  data: unknown;
  requestId: string | null;
}

/** One delivery to create with an event. */
export interface NewDelivery {
  installationId: string;
  addonId: string;
  addonName: string;
  handler: string;
}

export interface EventListFilter {
  /** Only events after this seq (exclusive). */
  afterSeq: bigint | null;
  /** Names or patterns (`*` = one segment); empty means all. */
  names: string[];
  source: string | null;
  siteId: string | null;
  /** Only events emitted by these addons (a developer's view). */
  sourceAddonIds: string[] | null;
  take: number;
  /** The newest `take` events (still returned oldest first) instead of the oldest after the cursor. */
  newest?: boolean;
}

const COLUMNS = Prisma.sql`id, seq, name, "sourceAddonId", source, "siteId", data, "requestId", "createdAt"`;

/**
 * Many events and their deliveries in one statement (see {@link EventRepository.insertBatch}). The
 * rows travel as two JSON documents: one parameter each, whatever the batch size. Events are
 * inserted in the order given, so their seq follows it.
 */
const INSERT_BATCH = `
  WITH e AS (
    INSERT INTO "Event" (id, name, "sourceAddonId", source, "siteId", data, "requestId")
    SELECT x.id, x.name, x."sourceAddonId", x.source, x."siteId", x.data, x."requestId"
      FROM jsonb_to_recordset($1::jsonb)
           AS x(id uuid, name text, "sourceAddonId" uuid, source text, "siteId" uuid, data jsonb,
                "requestId" text, n int)
     ORDER BY x.n
    RETURNING id, seq::text AS seq, name, "sourceAddonId", source, "siteId", data, "requestId",
              "createdAt" AT TIME ZONE 'UTC' AS "createdAt"
  ), d AS (
    INSERT INTO "Delivery" (id, "eventId", "eventName", "siteId", "installationId", "addonId",
                            "addonName", handler, "maxAttempts")
    SELECT gen_random_uuid(), e.id, e.name, e."siteId", t.installation, t.addon, t."addonName",
           t.handler, $3
      FROM jsonb_to_recordset($2::jsonb)
           AS t("eventId" uuid, installation uuid, addon uuid, "addonName" text, handler text)
      JOIN e ON e.id = t."eventId"
    RETURNING 1
  )
  SELECT * FROM e`;

/** A row as {@link INSERT_BATCH} returns it (seq as text: read the same through pg and Prisma). */
type InsertedRow = Omit<EventRecord, 'seq'> & { seq: string };

const toRecord = (row: InsertedRow): EventRecord => ({ ...row, seq: BigInt(row.seq) });

/** {@link INSERT_BATCH}'s parameters: the events (in order) and their deliveries as JSON documents. */
function insertValues(
  items: ReadonlyArray<{ event: NewEvent; deliveries: NewDelivery[] }>,
  maxAttempts: number,
): [string, string, number] {
  const events = items.map(({ event }, n) => ({ ...event, data: event.data ?? null, n }));
  const deliveries = items.flatMap(({ event, deliveries }) =>
    deliveries.map((d) => ({
      eventId: event.id,
      installation: d.installationId,
      addon: d.addonId,
      addonName: d.addonName,
      handler: d.handler,
    })),
  );
  return [JSON.stringify(events), JSON.stringify(deliveries), maxAttempts];
}

/** Stored events: the record of what happened, written before anyone is told. */
export class EventRepository {
  constructor(private readonly db: DbClient) {}

  /**
   * Events with their deliveries in one statement (all or nothing), outside any transaction: the
   * emit hot path and the group commit of {@link EventBatchWriter}. A prepared statement on the pg
   * pool, where Prisma's raw-query layer would cost about three times the statement. Returns the
   * stored rows by event id.
   */
  static async insertBatch(
    pool: pg.Pool,
    items: ReadonlyArray<{ event: NewEvent; deliveries: NewDelivery[] }>,
    maxAttempts: number,
  ): Promise<Map<string, EventRecord>> {
    const { rows } = await pool.query<InsertedRow>({
      name: 'themepress-event-insert-batch',
      text: INSERT_BATCH,
      values: insertValues(items, maxAttempts),
    });
    return new Map(rows.map((row) => [row.id, toRecord(row)]));
  }

  /**
   * The same statement for one event, through `db`: part of the caller's transaction when `db` is
   * one (a lifecycle hook's emits: an outbox), atomic on its own otherwise.
   */
  async insertWithDeliveries(
    event: NewEvent,
    deliveries: NewDelivery[],
    maxAttempts: number,
  ): Promise<EventRecord> {
    const rows = await this.db.$queryRawUnsafe<InsertedRow[]>(
      INSERT_BATCH,
      ...insertValues([{ event, deliveries }], maxAttempts),
    );
    return toRecord(rows[0]);
  }

  async exists(id: string): Promise<boolean> {
    const row = await this.db.event.findUnique({ where: { id }, select: { id: true } });
    return row !== null;
  }

  findByIds(ids: readonly string[]): Promise<EventRecord[]> {
    return this.db.event.findMany({
      where: { id: { in: ids.filter(isUuid) } },
      omit: { txid: true },
    });
  }

  /**
   * Events in insertion order. Stops below the oldest transaction of this database still open
   * when the statement started: it may yet commit an event with a lower seq, and a cursor past
   * that seq would skip the event for good. Emits are single statements (or short lifecycle hook
   * transactions), so the horizon trails by milliseconds. The in-progress list comes from the
   * statement's own snapshot (exact); pg_stat_activity only tells which of them belong to other
   * databases of the cluster, which are ignored.
   */
  async list(filter: EventListFilter): Promise<EventRecord[]> {
    const where: Prisma.Sql[] = [Prisma.sql`txid < (SELECT horizon FROM horizon)`];
    if (filter.afterSeq !== null) where.push(Prisma.sql`seq > ${filter.afterSeq}`);
    if (filter.siteId) where.push(Prisma.sql`"siteId" = ${filter.siteId}::uuid`);
    if (filter.source) where.push(Prisma.sql`source = ${filter.source}`);
    if (filter.sourceAddonIds)
      where.push(Prisma.sql`"sourceAddonId" = ANY(${filter.sourceAddonIds}::uuid[])`);
    if (filter.names.length > 0) {
      const exact = filter.names.filter((n) => !n.includes('*'));
      const regexes = filter.names.filter((n) => n.includes('*')).map(patternToRegex);
      where.push(Prisma.sql`(name = ANY(${exact}::text[]) OR name ~ ANY(${regexes}::text[]))`);
    }
    const order = filter.newest ? Prisma.sql`seq DESC` : Prisma.sql`seq`;
    const rows = await this.db.$queryRaw<EventRecord[]>`
      WITH snap AS (SELECT txid_current_snapshot() AS s),
      open_ AS (SELECT x FROM snap, txid_snapshot_xip(snap.s) AS x),
      elsewhere AS (
        SELECT a.backend_xid::text::bigint AS xid FROM pg_stat_activity a
         WHERE a.backend_xid IS NOT NULL AND a.datname IS DISTINCT FROM current_database()
      ),
      horizon AS (
        SELECT COALESCE(
          (SELECT min(x) FROM open_ WHERE x % 4294967296 NOT IN (SELECT xid FROM elsewhere)),
          (SELECT txid_snapshot_xmax(s) FROM snap)) AS horizon
      )
      SELECT ${COLUMNS} FROM "Event" WHERE ${Prisma.join(where, ' AND ')}
      ORDER BY ${order} LIMIT ${filter.take}`;
    return filter.newest ? rows.reverse() : rows;
  }

  /** Ids of the addons a developer owns (a developer's view of events and deliveries). */
  async addonIdsOwnedBy(developerId: string): Promise<string[]> {
    const rows = await this.db.addon.findMany({ where: { ownerId: developerId }, select: { id: true } });
    return rows.map((r) => r.id);
  }

  /** Enabled installations of a site with the version they pin (subscriber lookup). */
  enabledInstallations(siteId: string) {
    return this.db.installation.findMany({
      where: { siteId, enabled: true },
      select: { id: true, addonId: true, addonVersionId: true, addon: { select: { name: true } } },
    });
  }
}
