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

  async insertMany(rows: NewExecution[]): Promise<void> {
    await this.db.execution.createMany({
      data: rows.map((row) => ({ ...row, logs: row.logs as Prisma.InputJsonValue })),
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

  async deleteOlderThan(cutoff: Date): Promise<number> {
    return (await this.db.execution.deleteMany({ where: { createdAt: { lt: cutoff } } })).count;
  }
}
