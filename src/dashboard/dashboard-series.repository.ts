import type { DbClient } from '../infrastructure/database/database.js';
import { NOT_ADDON_ERROR_STATUSES } from './execution-outcome.js';

/** Executions of one addon in one time slot: over every site (`siteId` null) or one site's. */
export interface ExecutionSlotRow {
  slot: number;
  addonId: string;
  addonName: string;
  siteId: string | null;
  executions: number;
  errors: number;
  p95Ms: number | null;
}

/** Event deliveries not succeeded yet of one addon: over every site (`siteId` null) or one site's. */
export interface BacklogRow {
  addonId: string;
  addonName: string;
  siteId: string | null;
  backlog: number;
}

/** Read-only aggregates for the dashboard's charts. */
export class DashboardSeriesRepository {
  constructor(private readonly db: DbClient) {}

  /**
   * Per addon and `stepSeconds` slot (slot = floor(epoch seconds / step)) from `from` (inclusive)
   * to `to` (exclusive): runs, errors of the addon and the p95 of wall time, per addon over every
   * site and per addon and site (one statement, so both add up).
   */
  async executionSlots(from: Date, to: Date, stepSeconds: number): Promise<ExecutionSlotRow[]> {
    // createdAt is a timestamp(3) holding UTC wall time: epoch of it is the UTC epoch.
    const rows = await this.db.$queryRaw<(ExecutionSlotRow & { allSites: boolean })[]>`
      SELECT floor(extract(epoch FROM "createdAt") / ${stepSeconds})::int AS slot,
             GROUPING("siteId") = 1 AS "allSites",
             "addonId",
             max("addonName") AS "addonName",
             "siteId",
             count(*)::int AS executions,
             (count(*) FILTER (WHERE status <> ALL(${NOT_ADDON_ERROR_STATUSES}::text[])))::int AS errors,
             percentile_cont(0.95) WITHIN GROUP (ORDER BY "durationMs") AS "p95Ms"
        FROM "Execution"
       WHERE "createdAt" >= ${from.toISOString().replace('Z', '')}::timestamp(3)
         AND "createdAt" < ${to.toISOString().replace('Z', '')}::timestamp(3)
       GROUP BY GROUPING SETS ((1, "addonId"), (1, "addonId", "siteId"))`;
    return rows.map((row) => ({
      slot: Number(row.slot),
      addonId: row.addonId,
      addonName: row.addonName,
      siteId: row.allSites ? null : row.siteId,
      executions: Number(row.executions),
      errors: Number(row.errors),
      p95Ms: row.p95Ms === null ? null : Number(row.p95Ms),
    }));
  }

  /**
   * The delivery backlog now (PENDING, RUNNING and DEAD, as `event_deliveries_backlog` counts it),
   * per addon over every site and per addon and site.
   */
  async backlog(): Promise<BacklogRow[]> {
    const rows = await this.db.$queryRaw<(BacklogRow & { allSites: boolean })[]>`
      SELECT GROUPING("siteId") = 1 AS "allSites",
             "addonId",
             max("addonName") AS "addonName",
             "siteId",
             count(*)::int AS backlog
        FROM "Delivery"
       WHERE status IN ('PENDING', 'RUNNING', 'DEAD')
       GROUP BY GROUPING SETS (("addonId"), ("addonId", "siteId"))`;
    return rows.map((row) => ({
      addonId: row.addonId,
      addonName: row.addonName,
      siteId: row.allSites ? null : row.siteId,
      backlog: Number(row.backlog),
    }));
  }
}
