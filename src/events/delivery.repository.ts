import type pg from 'pg';
import type { DbClient } from '../infrastructure/database/database.js';
import type { Delivery, DeliveryAttempt, DeliveryStatus, Prisma } from '../generated/prisma/client.js';
import { isUuid } from '../shared/ids.js';
import { isDataError, storableText } from '../shared/storable-text.js';

/** Characters of a handler's error kept on a delivery and its attempt. */
const MAX_ERROR_CHARS = 1000;
const storableError = (error: string | null) =>
  error === null ? null : storableText(error, MAX_ERROR_CHARS);

export type DeliveryRecord = Delivery;
export type DeliveryAttemptRecord = DeliveryAttempt;
export type DeliveryStatusName = DeliveryStatus;

/** A delivery just claimed by a worker (`attempts` now counts this attempt: the claim's fencing token), with its event. */
export interface ClaimedDelivery extends DeliveryRecord {
  /** RUNNING when the previous holder's lease expired (its instance died or hung). */
  previousStatus: DeliveryStatusName;
  previousClaimedBy: string | null;
  eventSource: string;
  eventSourceAddonId: string | null;
  eventData: unknown;
  eventCreatedAt: Date;
}

/** What a finished attempt does to its delivery. */
export interface DeliveryOutcome {
  id: string;
  /** Fencing token: applied only if the row still carries this claim. */
  attempts: number;
  status: 'SUCCEEDED' | 'PENDING' | 'DEAD';
  /** PENDING: retry after this many ms (measured on the database clock). */
  delayMs: number | null;
  /** Don't count this attempt (the run never started, e.g. the addon was at its concurrency limit). */
  uncount?: boolean;
  error: string | null;
}

export interface NewAttempt {
  deliveryId: string;
  attempt: number;
  status: string;
  durationMs: number;
  error: string | null;
  claimedBy: string | null;
  startedAt: Date;
}

export interface DeliveryListFilter {
  siteId?: string | null;
  addonIds?: string[] | null;
  eventId?: string | null;
  status?: DeliveryStatusName | null;
  /** Keyset cursor: rows strictly older than this (createdAt, id) pair. */
  before?: { createdAt: Date; id: string } | null;
  take: number;
}

/** A flow: the deliveries of one addon on one site (also where a claim's walk over them starts). */
export interface FlowCursor {
  siteId: string;
  addonId: string;
}

/**
 * A claim reads two sets of candidates:
 * - the window, the oldest due rows: each status on its own, since with `status IN (...)`
 *   PostgreSQL cannot walk the (status, nextAttemptAt) index in order and sorts every due row (a
 *   seq scan, growing with the table); per status it stops after $2 index entries. Busy addons
 *   are left out after the read, not during it: a filter in the scan would walk a busy addon's
 *   whole backlog on every claim;
 * - the flows, once the oldest due row has waited $11 ms (a backlog: until then the window holds
 *   every flow's rows in time): from the cursor on, up to $9 (site, addon) pairs with PENDING rows,
 *   found one index probe each on the partial (siteId, addonId, nextAttemptAt) index, and the
 *   oldest $10 due rows of each. A site that floods an addon fills the window with its own
 *   backlog; the flows still show every other site's oldest rows of that addon, at a cost that
 *   does not grow with the backlog.
 * Candidates are taken in turns (each flow's first row, then each flow's second...), at most the
 * room an addon ($18/$19, else $3) and a flow ($14-$17, else $16) has left in the worker. The
 * statement also returns where its walk over the flows ended.
 */
const CLAIM_SQL = `
  WITH RECURSIVE flows AS (
    (SELECT "siteId", "addonId", 1 AS n FROM "Delivery"
      WHERE status = 'PENDING' AND ("siteId", "addonId") > ($7::uuid, $8::uuid)
        AND (SELECT min("nextAttemptAt") FROM window_) < now() - $11 * interval '1 millisecond'
      ORDER BY "siteId", "addonId" LIMIT 1)
    UNION ALL
    SELECT next_."siteId", next_."addonId", f.n + 1 FROM flows f
     CROSS JOIN LATERAL (
       SELECT "siteId", "addonId" FROM "Delivery"
        WHERE status = 'PENDING' AND ("siteId", "addonId") > (f."siteId", f."addonId")
        ORDER BY "siteId", "addonId" LIMIT 1) next_
     WHERE f.n < $9
  ), window_ AS (
    SELECT * FROM (
      (SELECT id, "siteId", "addonId", "nextAttemptAt" FROM "Delivery"
        WHERE status = 'PENDING' AND "nextAttemptAt" <= now()
        ORDER BY "nextAttemptAt" LIMIT $2)
      UNION ALL
      (SELECT id, "siteId", "addonId", "nextAttemptAt" FROM "Delivery"
        WHERE status = 'RUNNING' AND "nextAttemptAt" <= now()
        ORDER BY "nextAttemptAt" LIMIT $2)
    ) due_ ORDER BY "nextAttemptAt" LIMIT $2
  ), candidates AS (
    SELECT * FROM window_ w
     WHERE NOT (w."addonId" = ANY($1::uuid[])) AND NOT (w."siteId" = ANY($20::uuid[]))
       AND NOT EXISTS (SELECT 1 FROM unnest($12::uuid[], $13::uuid[]) b(s, a)
                        WHERE b.s = w."siteId" AND b.a = w."addonId")
    UNION
    SELECT r.* FROM flows f
     CROSS JOIN LATERAL (
       SELECT id, "siteId", "addonId", "nextAttemptAt" FROM "Delivery"
        WHERE status = 'PENDING' AND "siteId" = f."siteId" AND "addonId" = f."addonId"
          AND "nextAttemptAt" <= now()
        ORDER BY "nextAttemptAt" LIMIT $10) r
     WHERE NOT (f."addonId" = ANY($1::uuid[])) AND NOT (f."siteId" = ANY($20::uuid[]))
       AND NOT EXISTS (SELECT 1 FROM unnest($12::uuid[], $13::uuid[]) b(s, a)
                        WHERE b.s = f."siteId" AND b.a = f."addonId")
  ), turns AS (
    SELECT c.id, c."siteId", c."addonId", c."nextAttemptAt",
           row_number() OVER (PARTITION BY c."siteId", c."addonId" ORDER BY c."nextAttemptAt", c.id) AS turn,
           COALESCE(fr.room, $16) AS "flowRoom"
      FROM candidates c
      LEFT JOIN unnest($14::uuid[], $15::uuid[], $17::int[]) fr(s, a, room)
        ON fr.s = c."siteId" AND fr.a = c."addonId"
  ), picked AS (
    SELECT s.id, s.turn, s."nextAttemptAt" FROM (
      SELECT r.id, r.turn, r."nextAttemptAt", r."siteId",
             row_number() OVER (PARTITION BY r."siteId" ORDER BY r.turn, r."nextAttemptAt", r.id) AS "siteRank"
        FROM (
          SELECT t.id, t.turn, t."nextAttemptAt", t."siteId", t."addonId",
                 row_number() OVER (PARTITION BY t."addonId" ORDER BY t.turn, t."nextAttemptAt", t.id) AS rank
            FROM turns t WHERE t.turn <= t."flowRoom") r
        LEFT JOIN unnest($18::uuid[], $19::int[]) ar(a, room) ON ar.a = r."addonId"
       WHERE r.rank <= COALESCE(ar.room, $3)) s
      LEFT JOIN unnest($21::uuid[], $22::int[]) sr(s, room) ON sr.s = s."siteId"
     WHERE s."siteRank" <= COALESCE(sr.room, $23)
     ORDER BY s.turn, s."nextAttemptAt" LIMIT $4
  ), due AS (
    -- The picked ids as one array, and a status test no index serves: a primary-key lookup each,
    -- whatever the planner believes about the table. As a join, statistics from before a burst
    -- of inserts made it walk every due row once per picked row.
    SELECT d.id, d.status AS "previousStatus", d."claimedBy" AS "previousClaimedBy"
      FROM "Delivery" d
     WHERE d.id = ANY (ARRAY(SELECT id FROM picked))
       AND d.status::text IN ('PENDING', 'RUNNING') AND d."nextAttemptAt" <= now()
       FOR UPDATE OF d SKIP LOCKED
  ), claimed AS (
    UPDATE "Delivery" d
       SET status = 'RUNNING', attempts = d.attempts + 1, "claimedBy" = $5,
           "lockedUntil" = now() + $6 * interval '1 millisecond',
           "nextAttemptAt" = now() + $6 * interval '1 millisecond',
           "updatedAt" = now()
      FROM due, "Event" e
     WHERE d.id = due.id AND e.id = d."eventId"
    RETURNING d.*, due."previousStatus", due."previousClaimedBy",
              e.source AS "eventSource", e."sourceAddonId" AS "eventSourceAddonId",
              e.data AS "eventData", e."createdAt" AT TIME ZONE 'UTC' AS "eventCreatedAt"
  ), walked AS (
    SELECT "siteId" AS "flowSiteId", "addonId" AS "flowAddonId", n AS "flowsWalked"
      FROM flows ORDER BY n DESC LIMIT 1
  )
  SELECT * FROM claimed FULL JOIN walked ON true`;

/** (site, addon) flows a claim walks, and rows it reads of each. */
const FLOWS_PER_CLAIM = 64;
const ROWS_PER_FLOW = 4;
/**
 * How long the oldest due delivery waits before claims walk the flows: the walk reads each flow's
 * recently finished index entries too, a cost only worth paying once a backlog builds.
 */
const WALK_AFTER_MS = 500;

/** A row of {@link CLAIM_SQL}: a claimed delivery (all null when none was) and where the walk ended. */
type ClaimRow = Omit<ClaimedDelivery, 'id'> & {
  id: string | null;
  flowSiteId: string | null;
  flowAddonId: string | null;
  flowsWalked: number | null;
};

/** The flows' lower bound before the first: no (site, addon) pair is below it. */
const FIRST_FLOW: FlowCursor = {
  siteId: '00000000-0000-0000-0000-000000000000',
  addonId: '00000000-0000-0000-0000-000000000000',
};

const COMPLETE_SQL = `
  WITH attempts_ AS (
    INSERT INTO "DeliveryAttempt" (id, "deliveryId", attempt, status, "durationMs", error, "claimedBy", "startedAt")
    SELECT gen_random_uuid(), a.* FROM unnest($7::uuid[], $8::int[], $9::text[], $10::float8[], $11::text[],
                                            $12::text[], $13::timestamptz[]) AS a
    RETURNING 1
  )
  UPDATE "Delivery" d
     SET status = u.status::"DeliveryStatus",
         attempts = d.attempts - CASE WHEN u.uncount THEN 1 ELSE 0 END,
         "nextAttemptAt" = CASE WHEN u.status = 'PENDING'
                                THEN now() + u.delay * interval '1 millisecond'
                                ELSE d."nextAttemptAt" END,
         "lastError" = CASE WHEN u.status = 'SUCCEEDED' THEN d."lastError"
                            ELSE COALESCE(u.error, d."lastError") END,
         "lockedUntil" = NULL, "claimedBy" = NULL,
         "completedAt" = CASE WHEN u.status = 'PENDING' THEN NULL ELSE now() END,
         "updatedAt" = now()
    FROM unnest($1::uuid[], $2::int[], $3::text[], $4::int[], $5::boolean[], $6::text[])
         AS u(id, attempts, status, delay, uncount, error)
   WHERE d.id = u.id AND d.attempts = u.attempts AND d.status::text = 'RUNNING'
  RETURNING d.*`;

/**
 * Deliveries and their attempts. The worker's hot statements ({@link claimFast},
 * {@link completeFast}) go straight to the pg pool: one round trip each, without Prisma's
 * raw-query layer, which costs more than the statements themselves at thousands a second.
 */
export class DeliveryRepository {
  constructor(private readonly db: DbClient) {}

  /**
   * Claims up to `limit` due deliveries (PENDING and due, or RUNNING with an expired lease) for
   * `workerId`, at most `perAddon` of one addon (less what `addonRoom` says is held) and none of
   * `busyAddonIds` or `busyFlows`, so that one addon's backlog never fills every slot, taken in
   * turns across (site, addon) flows so that one site's backlog of a shared addon never waits
   * another site's deliveries of it out. `cursor` is where the walk over the flows starts (null:
   * the first); the result says where the next one should.
   * Rows another worker is claiming are skipped, not waited for.
   */
  static async claimFast(
    pool: pg.Pool,
    args: {
      workerId: string;
      limit: number;
      perAddon: number;
      busyAddonIds: string[];
      /** Flows (site, addon) that already hold their share: none of their rows is claimed. */
      busyFlows?: FlowCursor[];
      /** Rows one flow may get at most (default `perAddon`). */
      perFlow?: number;
      /** Addons and flows the worker already holds rows of: what room each has left. */
      addonRoom?: { addonId: string; room: number }[];
      flowRoom?: (FlowCursor & { room: number })[];
      /** Sites that already hold their share: none of their rows is claimed. */
      busySiteIds?: string[];
      /** Rows one site may get at most (default `limit`), and the room left of sites with rows held. */
      perSite?: number;
      siteRoom?: { siteId: string; room: number }[];
      leaseMs: number;
      cursor?: FlowCursor | null;
    },
  ): Promise<{ claimed: ClaimedDelivery[]; cursor: FlowCursor | null }> {
    // Planned at every claim, with bitmap scans off. Statistics of a queue table lag behind its
    // bursts (autovacuum looks once a minute), and both ways of planning went wrong under a
    // backlog: a named statement keeps the generic plan made while the table was small (a
    // sequential scan for the picked ids); a fresh plan expects a few dozen due rows and reads
    // them all through a bitmap to sort them, where an index scan stops after the window. The two
    // extra round trips cost less than either (figures in decision 0011).
    const client = await pool.connect();
    const from = args.cursor ?? FIRST_FLOW;
    try {
      await client.query('BEGIN; SET LOCAL enable_bitmapscan = off');
      const { rows } = await client.query<ClaimRow>({
        text: CLAIM_SQL,
        values: [
          args.busyAddonIds,
          Math.max(args.limit * 2, 64),
          args.perAddon,
          args.limit,
          args.workerId,
          args.leaseMs,
          from.siteId,
          from.addonId,
          FLOWS_PER_CLAIM,
          ROWS_PER_FLOW,
          WALK_AFTER_MS,
          (args.busyFlows ?? []).map((flow) => flow.siteId),
          (args.busyFlows ?? []).map((flow) => flow.addonId),
          (args.flowRoom ?? []).map((flow) => flow.siteId),
          (args.flowRoom ?? []).map((flow) => flow.addonId),
          args.perFlow ?? args.perAddon,
          (args.flowRoom ?? []).map((flow) => flow.room),
          (args.addonRoom ?? []).map((addon) => addon.addonId),
          (args.addonRoom ?? []).map((addon) => addon.room),
          args.busySiteIds ?? [],
          (args.siteRoom ?? []).map((site) => site.siteId),
          (args.siteRoom ?? []).map((site) => site.room),
          args.perSite ?? args.limit,
        ],
      });
      await client.query('COMMIT');
      client.release();
      const walked = rows[0];
      // A walk that ended before its limit reached the last flow: the next one starts again.
      const cursor =
        walked?.flowsWalked === FLOWS_PER_CLAIM
          ? { siteId: walked.flowSiteId!, addonId: walked.flowAddonId! }
          : null;
      const claimed: ClaimedDelivery[] = [];
      for (const { flowSiteId: _site, flowAddonId: _addon, flowsWalked: _walked, ...row } of rows) {
        if (row.id !== null) claimed.push({ ...row, id: row.id });
      }
      return { claimed, cursor };
    } catch (error) {
      // A client whose transaction cannot be closed is not given back to the pool.
      const closed = await client.query('ROLLBACK').then(
        () => true,
        () => false,
      );
      client.release(!closed);
      throw error;
    }
  }

  /**
   * Applies finished attempts and stores attempt records in ONE statement; returns the deliveries
   * it changed (a row whose claim was lost to lease expiry is left to its new holder). Error texts
   * are made storable first; a batch PostgreSQL still refuses is applied one delivery at a time,
   * so one site's bad outcome never leaves the others RUNNING (`onRowError` hears each failure).
   */
  static async completeFast(
    pool: pg.Pool,
    outcomes: DeliveryOutcome[],
    attempts: NewAttempt[],
    onRowError?: (error: unknown) => void,
  ): Promise<DeliveryRecord[]> {
    const cleanOutcomes = outcomes.map((o) => ({ ...o, error: storableError(o.error) }));
    const cleanAttempts = attempts.map((a) => ({ ...a, error: storableError(a.error) }));
    try {
      return await DeliveryRepository.completeOnce(pool, cleanOutcomes, cleanAttempts);
    } catch (error) {
      if (outcomes.length + attempts.length <= 1 || !isDataError(error)) throw error;
    }
    const rows: DeliveryRecord[] = [];
    const handled = new Set<string>();
    const groups = cleanOutcomes.map((outcome) => {
      handled.add(outcome.id);
      return { outcomes: [outcome], attempts: cleanAttempts.filter((a) => a.deliveryId === outcome.id) };
    });
    for (const attempt of cleanAttempts) {
      if (!handled.has(attempt.deliveryId)) groups.push({ outcomes: [], attempts: [attempt] });
    }
    for (const group of groups) {
      try {
        rows.push(...(await DeliveryRepository.completeOnce(pool, group.outcomes, group.attempts)));
      } catch (error) {
        onRowError?.(error);
      }
    }
    return rows;
  }

  private static async completeOnce(
    pool: pg.Pool,
    outcomes: DeliveryOutcome[],
    attempts: NewAttempt[],
  ): Promise<DeliveryRecord[]> {
    // Unnamed and with a status test no index serves, as the claim: a primary-key lookup per
    // outcome. Otherwise, under a backlog, the planner read every RUNNING entry of the status
    // index, most of them dead versions left by earlier claims (4 to 7 ms per batch).
    const { rows } = await pool.query<DeliveryRecord>({
      text: COMPLETE_SQL,
      values: [
        outcomes.map((o) => o.id),
        outcomes.map((o) => o.attempts),
        outcomes.map((o) => o.status),
        outcomes.map((o) => o.delayMs ?? 0),
        outcomes.map((o) => o.uncount === true),
        outcomes.map((o) => o.error),
        attempts.map((a) => a.deliveryId),
        attempts.map((a) => a.attempt),
        attempts.map((a) => a.status),
        attempts.map((a) => a.durationMs),
        attempts.map((a) => a.error),
        attempts.map((a) => a.claimedBy),
        attempts.map((a) => a.startedAt.toISOString()),
      ],
    });
    return rows;
  }

  /** Extends the leases of deliveries this worker is still running. */
  async renew(workerId: string, ids: string[], leaseMs: number): Promise<void> {
    if (ids.length === 0) return;
    await this.db.$executeRaw`
      UPDATE "Delivery"
         SET "lockedUntil" = now() + ${leaseMs} * interval '1 millisecond',
             "nextAttemptAt" = now() + ${leaseMs} * interval '1 millisecond'
       WHERE id = ANY(${ids}::uuid[]) AND "claimedBy" = ${workerId} AND status = 'RUNNING'`;
  }

  /** Hands claims back (graceful shutdown): due now, and the interrupted attempt not counted. */
  async release(workerId: string, ids: string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.db.$executeRaw`
      UPDATE "Delivery"
         SET status = 'PENDING', attempts = GREATEST(attempts - 1, 0), "nextAttemptAt" = now(),
             "lockedUntil" = NULL, "claimedBy" = NULL, "updatedAt" = now()
       WHERE id = ANY(${ids}::uuid[]) AND "claimedBy" = ${workerId} AND status = 'RUNNING'`;
  }

  /** DEAD -> PENDING, due now, with a fresh budget of attempts; null if it was not DEAD. */
  async retryDead(id: string): Promise<DeliveryRecord | null> {
    const rows = await this.db.$queryRaw<DeliveryRecord[]>`
      UPDATE "Delivery"
         SET status = 'PENDING', attempts = 0, "nextAttemptAt" = now(), "completedAt" = NULL,
             "updatedAt" = now()
       WHERE id = ${id}::uuid AND status = 'DEAD'
      RETURNING *`;
    return rows[0] ?? null;
  }

  findById(id: string): Promise<DeliveryRecord | null> {
    if (!isUuid(id)) return Promise.resolve(null);
    return this.db.delivery.findUnique({ where: { id } });
  }

  findByEventIds(eventIds: readonly string[]): Promise<DeliveryRecord[]> {
    return this.db.delivery.findMany({
      where: { eventId: { in: eventIds.filter(isUuid) } },
      orderBy: [{ createdAt: 'asc' }, { id: 'asc' }],
    });
  }

  attemptsByDeliveryIds(ids: readonly string[]): Promise<DeliveryAttemptRecord[]> {
    return this.db.deliveryAttempt.findMany({
      where: { deliveryId: { in: ids.filter(isUuid) } },
      orderBy: [{ startedAt: 'asc' }, { attempt: 'asc' }],
    });
  }

  list(filter: DeliveryListFilter): Promise<DeliveryRecord[]> {
    const where: Prisma.DeliveryWhereInput = {};
    if (filter.siteId) where.siteId = filter.siteId;
    if (filter.addonIds) where.addonId = { in: filter.addonIds };
    if (filter.eventId) where.eventId = filter.eventId;
    if (filter.status) where.status = filter.status;
    if (filter.before) {
      where.OR = [
        { createdAt: { lt: filter.before.createdAt } },
        { createdAt: filter.before.createdAt, id: { lt: filter.before.id } },
      ];
    }
    return this.db.delivery.findMany({
      where,
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      take: filter.take,
    });
  }

  /** Deliveries waiting, running or given up on, by status (finished successes are not counted). */
  async countBacklog(): Promise<Record<'PENDING' | 'RUNNING' | 'DEAD', number>> {
    const rows = await this.db.delivery.groupBy({
      by: ['status'],
      where: { status: { in: ['PENDING', 'RUNNING', 'DEAD'] } },
      _count: { _all: true },
    });
    const counts = { PENDING: 0, RUNNING: 0, DEAD: 0 };
    for (const row of rows) counts[row.status as keyof typeof counts] = row._count._all;
    return counts;
  }
}
