import type { DbClient } from '../infrastructure/database/database.js';
import { Prisma } from '../generated/prisma/client.js';
import { isUuid } from '../shared/ids.js';
import { patternToRegex } from './event-name.js';

/** A stored event as the services use it. */
export interface EventRecord {
  id: string;
  seq: bigint;
  /** The inserting transaction: with seq, the event's place in the stream (see {@link EventPosition}). */
  txid: bigint;
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

/**
 * A place in the stream of events: (inserting transaction, seq). Readers go in this order and stop
 * below the oldest transaction still open, so every event that commits later sorts after any
 * position already handed out: a cursor never skips one. (Ordered by seq alone, a transaction that
 * took its xid before another but its seq after could commit after a reader passed its seq.)
 * `txid` null: a cursor of the former seq-only format, placed at that event's position.
 */
export interface EventPosition {
  txid: bigint | null;
  seq: bigint;
}

export interface EventListFilter {
  /** Only events after this position (exclusive). */
  after: EventPosition | null;
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

const COLUMNS = Prisma.sql`id, seq, txid, name, "sourceAddonId", source, "siteId", data, "requestId", "createdAt"`;

/** Stored events: the record of what happened, written before anyone is told. */
export class EventRepository {
  constructor(private readonly db: DbClient) {}

  async exists(id: string): Promise<boolean> {
    const row = await this.db.event.findUnique({ where: { id }, select: { id: true } });
    return row !== null;
  }

  findByIds(ids: readonly string[]): Promise<EventRecord[]> {
    return this.db.event.findMany({
      where: { id: { in: ids.filter(isUuid) } },
    });
  }

  /**
   * The event an idempotency key of `scope` (see idempotencyScope) was given to, while the key is
   * kept.
   */
  async findByIdempotencyKey(scope: string, key: string): Promise<EventRecord | null> {
    const row = await this.db.eventIdempotencyKey.findUnique({
      where: { scope_key: { scope, key } },
      select: { eventId: true },
    });
    return row ? this.db.event.findUnique({ where: { id: row.eventId } }) : null;
  }

  /**
   * Deletes up to `limit` of the oldest events created before `cutoff` whose deliveries are all
   * finished (SUCCEEDED or DEAD), with their deliveries and attempts (cascade); returns how many.
   * An event with a delivery still due stays until it is done.
   */
  async deleteFinishedBefore(cutoff: Date, limit: number): Promise<number> {
    // "createdAt" is a timestamp without time zone holding UTC, whatever the session's zone.
    return this.db.$executeRaw`
      DELETE FROM "Event" WHERE id IN (
        SELECT e.id FROM "Event" e
         WHERE e."createdAt" < (${cutoff.toISOString()}::timestamptz AT TIME ZONE 'UTC')
           AND NOT EXISTS (SELECT 1 FROM "Delivery" d
                            WHERE d."eventId" = e.id AND d.status::text IN ('PENDING', 'RUNNING'))
         ORDER BY e.seq LIMIT ${limit})`;
  }

  /** Forgets the idempotency keys given before `cutoff`; returns how many. */
  async deleteIdempotencyKeysBefore(cutoff: Date): Promise<number> {
    const { count } = await this.db.eventIdempotencyKey.deleteMany({ where: { createdAt: { lt: cutoff } } });
    return count;
  }

  /**
   * Events in stream order (see {@link EventPosition}). Stops below the oldest transaction of this
   * database still open when the statement started: it may yet commit an event, which would sort
   * after that transaction's id, and a cursor already past it would skip the event for good. Emits
   * and execution effects are single statements (lifecycle hooks short transactions), so the
   * horizon trails by milliseconds. The in-progress list comes from the
   * statement's own snapshot (exact); pg_stat_activity only tells which of them belong to other
   * databases of the cluster, which are ignored.
   */
  async list(filter: EventListFilter): Promise<EventRecord[]> {
    const where: Prisma.Sql[] = [Prisma.sql`txid < (SELECT horizon FROM horizon)`];
    const after = filter.after;
    if (after?.txid != null)
      where.push(Prisma.sql`(txid, seq) > (${after.txid}::bigint, ${after.seq}::bigint)`);
    else if (after) {
      where.push(
        Prisma.sql`(txid, seq) > (COALESCE((SELECT txid FROM "Event" WHERE seq = ${after.seq}::bigint), 0), ${after.seq}::bigint)`,
      );
    }
    if (filter.siteId) where.push(Prisma.sql`"siteId" = ${filter.siteId}::uuid`);
    if (filter.source) where.push(Prisma.sql`source = ${filter.source}`);
    if (filter.sourceAddonIds)
      where.push(Prisma.sql`"sourceAddonId" = ANY(${filter.sourceAddonIds}::uuid[])`);
    if (filter.names.length > 0) {
      const exact = filter.names.filter((n) => !n.includes('*'));
      const regexes = filter.names.filter((n) => n.includes('*')).map(patternToRegex);
      where.push(Prisma.sql`(name = ANY(${exact}::text[]) OR name ~ ANY(${regexes}::text[]))`);
    }
    const order = filter.newest ? Prisma.sql`txid DESC, seq DESC` : Prisma.sql`txid, seq`;
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

  /** Enabled installations of a site with the version they pin (subscriber lookup). */
  enabledInstallations(siteId: string) {
    return this.db.installation.findMany({
      where: { siteId, enabled: true },
      select: { id: true, addonId: true, addonVersionId: true, addon: { select: { name: true } } },
    });
  }
}
