import { Prisma } from '../generated/prisma/client.js';
import type { DbClient } from '../infrastructure/database/database.js';
import { CALLER_ERROR_STATUSES, NOT_ADDON_ERROR_STATUSES } from './execution-outcome.js';

/** Which execution records count: all of them, one site's, and/or those of some addons. */
export interface ExecutionScope {
  siteId: string | null;
  /** Null: every addon. Empty: none (callers short-circuit before asking). */
  addonIds: string[] | null;
}

/** Aggregates over a set of execution records; durations in milliseconds. */
export interface ExecutionAggregate {
  executions: number;
  /** Runs that failed because of the addon or the platform (see execution-outcome.ts). */
  errors: number;
  /** Runs refused for the caller's mistake (a missing entry, input too large). */
  callerErrors: number;
  p50Ms: number | null;
  p95Ms: number | null;
  maxMs: number | null;
}

export interface AddonExecutionAggregate extends ExecutionAggregate {
  addonId: string;
  addonName: string;
}

interface AggregateRow extends ExecutionAggregate {
  total: boolean;
  addonId: string | null;
  addonName: string | null;
}

/** Read-only aggregates of the Execution table for the dashboard. */
export class DashboardStatsRepository {
  constructor(private readonly db: DbClient) {}

  /**
   * Totals and per-addon figures of the executions recorded since `since`, in one statement (one
   * snapshot, so the per-addon rows add up to the totals). Per-addon rows are the `limit` with the
   * most errors, then the most runs.
   */
  async aggregate(
    since: Date,
    scope: ExecutionScope,
    limit: number,
  ): Promise<{ totals: ExecutionAggregate; addons: AddonExecutionAggregate[] }> {
    const conditions = [
      // createdAt is a timestamp(3) holding UTC wall time (how Prisma stores DateTime).
      Prisma.sql`"createdAt" >= ${since.toISOString().replace('Z', '')}::timestamp(3)`,
    ];
    if (scope.siteId) conditions.push(Prisma.sql`"siteId" = ${scope.siteId}::uuid`);
    if (scope.addonIds) conditions.push(Prisma.sql`"addonId" = ANY(${scope.addonIds}::uuid[])`);
    const rows = await this.db.$queryRaw<AggregateRow[]>`
      SELECT GROUPING("addonId") = 1 AS total,
             "addonId",
             max("addonName") AS "addonName",
             count(*)::int AS executions,
             (count(*) FILTER (WHERE status <> ALL(${NOT_ADDON_ERROR_STATUSES}::text[])))::int AS errors,
             (count(*) FILTER (WHERE status = ANY(${CALLER_ERROR_STATUSES}::text[])))::int AS "callerErrors",
             percentile_cont(0.5) WITHIN GROUP (ORDER BY "durationMs") AS "p50Ms",
             percentile_cont(0.95) WITHIN GROUP (ORDER BY "durationMs") AS "p95Ms",
             max("durationMs") AS "maxMs"
        FROM "Execution"
       WHERE ${Prisma.join(conditions, ' AND ')}
       GROUP BY GROUPING SETS (("addonId"), ())
       ORDER BY GROUPING("addonId") DESC, errors DESC, executions DESC, max("addonName")
       LIMIT ${limit + 1}`;
    const totalsRow = rows.find((row) => row.total);
    const totals: ExecutionAggregate = totalsRow
      ? pick(totalsRow)
      : { executions: 0, errors: 0, callerErrors: 0, p50Ms: null, p95Ms: null, maxMs: null };
    const addons = rows
      .filter((row) => !row.total)
      .map((row) => ({ addonId: row.addonId!, addonName: row.addonName!, ...pick(row) }));
    return { totals, addons };
  }
}

function pick(row: AggregateRow): ExecutionAggregate {
  return {
    executions: Number(row.executions),
    errors: Number(row.errors),
    callerErrors: Number(row.callerErrors),
    p50Ms: row.p50Ms === null ? null : Number(row.p50Ms),
    p95Ms: row.p95Ms === null ? null : Number(row.p95Ms),
    maxMs: row.maxMs === null ? null : Number(row.maxMs),
  };
}
