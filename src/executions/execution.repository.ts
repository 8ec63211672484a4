import { randomUUID } from 'node:crypto';
import type pg from 'pg';
import type { DbClient } from '../infrastructure/database/database.js';
import type { Execution, Prisma } from '../generated/prisma/client.js';

export type ExecutionRecord = Execution;
export type NewExecution = Omit<Execution, 'id' | 'logs' | 'parentExecutionId'> & {
  id?: string;
  logs: unknown;
  parentExecutionId?: string | null;
};

export interface ExecutionFilter {
  siteId?: string | null;
  addonId?: string | null;
  entry?: string | null;
  status?: string | null;
  kind?: string | null;
  /** Keyset cursor: rows strictly older than this (createdAt, id) pair. */
  before?: { createdAt: Date; id: string } | null;
  take: number;
}

const INSERT_MANY = `
  INSERT INTO "Execution" ("id", "addonId", "addonName", "addonVersionId", "version", "siteId", "kind", "entry",
    "status", "errorMessage", "durationMs", "cpuTimeMs", "cold", "logs", "logsTruncated", "requestId", "parentExecutionId",
    "createdAt")
  SELECT x."id", x."addonId", x."addonName", x."addonVersionId", x."version", x."siteId", x."kind", x."entry",
         x."status", x."errorMessage", x."durationMs", x."cpuTimeMs", x."cold", x."logs", x."logsTruncated",
         x."requestId", x."parentExecutionId", (x."createdAt" AT TIME ZONE 'UTC')::timestamp(3)
    FROM jsonb_to_recordset($1::jsonb) AS x("id" uuid, "addonId" uuid, "addonName" text, "addonVersionId" uuid,
         "version" text, "siteId" uuid, "kind" text, "entry" text, "status" text, "errorMessage" text,
         "durationMs" float8, "cpuTimeMs" float8, "cold" bool, "logs" jsonb, "logsTruncated" bool,
         "requestId" text, "parentExecutionId" uuid, "createdAt" timestamptz)`;

/** Execution records, written in batches and read newest first. */
export class ExecutionRepository {
  constructor(private readonly db: DbClient) {}

  /**
   * Inserts a batch in one statement, on the pg pool: the rows travel as one JSON document. Its
   * cost stays flat with the batch size (a generated multi-row INSERT grows in parameters and
   * query-building time), and encoding is one native JSON.stringify rather than pg's per-element
   * array escaping and Prisma's raw-query layer: the recorder runs once per addon call.
   */
  static insertMany(pool: pg.Pool, rows: readonly NewExecution[]): Promise<void> {
    return ExecutionRepository.insertJson(
      pool,
      rows.map((row) => JSON.stringify({ ...row, id: row.id ?? randomUUID(), logs: row.logs ?? [] })),
    );
  }

  /**
   * {@link insertMany} for rows already serialised, each a JSON object with every column (the
   * recorder serialises each record once). Dates are ISO instants; the statement turns them into
   * the UTC wall time Prisma keeps in timestamp(3) columns.
   */
  static async insertJson(pool: pg.Pool, rows: readonly string[]): Promise<void> {
    if (rows.length === 0) return;
    await pool.query({
      name: 'themepress-execution-insert',
      text: INSERT_MANY,
      values: [`[${rows.join(',')}]`],
    });
  }

  list(filter: ExecutionFilter): Promise<ExecutionRecord[]> {
    const where: Prisma.ExecutionWhereInput = {};
    if (filter.siteId) where.siteId = filter.siteId;
    if (filter.addonId) where.addonId = filter.addonId;
    if (filter.entry) where.entry = filter.entry;
    if (filter.status) where.status = filter.status;
    if (filter.kind) where.kind = filter.kind;
    if (filter.before) {
      where.OR = [
        { createdAt: { lt: filter.before.createdAt } },
        { createdAt: filter.before.createdAt, id: { lt: filter.before.id } },
      ];
    }
    return this.db.execution.findMany({
      where,
      orderBy: [{ createdAt: 'desc' }, { id: 'desc' }],
      take: filter.take,
    });
  }

  /** Deletes up to `limit` of the oldest records created before `cutoff`; returns how many. */
  async deleteOlderThan(cutoff: Date, limit: number): Promise<number> {
    // "createdAt" is a timestamp without time zone holding UTC, whatever the session's zone.
    return this.db.$executeRaw`
      DELETE FROM "Execution" WHERE id IN (
        SELECT id FROM "Execution"
         WHERE "createdAt" < (${cutoff.toISOString()}::timestamptz AT TIME ZONE 'UTC')
         ORDER BY "createdAt" LIMIT ${limit})`;
  }
}
