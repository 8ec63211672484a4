import { randomUUID } from 'node:crypto';
import type { DbClient } from '../infrastructure/database/database.js';
import type { Execution, Prisma } from '../generated/prisma/client.js';

export type ExecutionRecord = Execution;
export type NewExecution = Omit<Execution, 'id' | 'logs'> & { id?: string; logs: unknown };

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

/** Execution records, written in batches and read newest first. */
export class ExecutionRepository {
  constructor(private readonly db: DbClient) {}

  /**
   * Inserts a batch in one statement of column arrays: its cost stays flat with the batch size,
   * where a generated multi-row INSERT grows in parameters and in query-building time.
   */
  async insertMany(rows: NewExecution[]): Promise<void> {
    if (rows.length === 0) return;
    const column = <T>(pick: (row: NewExecution) => T) => rows.map(pick);
    await this.db.$executeRawUnsafe(
      `INSERT INTO "Execution" ("id", "addonId", "addonName", "addonVersionId", "version", "siteId", "kind", "entry",
         "status", "errorMessage", "durationMs", "cpuTimeMs", "cold", "logs", "logsTruncated", "requestId", "createdAt")
       SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::uuid[], $5::text[], $6::uuid[], $7::text[],
         $8::text[], $9::text[], $10::text[], $11::float8[], $12::float8[], $13::bool[], $14::jsonb[], $15::bool[],
         $16::text[], $17::timestamp(3)[])`,
      column((r) => r.id ?? randomUUID()),
      column((r) => r.addonId),
      column((r) => r.addonName),
      column((r) => r.addonVersionId),
      column((r) => r.version),
      column((r) => r.siteId),
      column((r) => r.kind),
      column((r) => r.entry),
      column((r) => r.status),
      column((r) => r.errorMessage),
      column((r) => r.durationMs),
      column((r) => r.cpuTimeMs),
      column((r) => r.cold),
      column((r) => JSON.stringify(r.logs ?? [])),
      column((r) => r.logsTruncated),
      column((r) => r.requestId),
      // Prisma keeps timestamps as UTC wall time in timestamp(3) columns.
      column((r) => r.createdAt.toISOString().replace('Z', '')),
    );
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

  async deleteOlderThan(cutoff: Date): Promise<number> {
    return (await this.db.execution.deleteMany({ where: { createdAt: { lt: cutoff } } })).count;
  }
}
