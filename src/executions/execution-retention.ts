import type { DbClient } from '../infrastructure/database/database.js';
import { ExecutionRepository } from './execution.repository.js';

/** Records one retention statement deletes at most: a short transaction whatever the backlog. */
const RETENTION_BATCH = 5_000;

/**
 * Deletes execution records older than `retentionDays`, oldest first, in batches until none is
 * left; returns how many. Every instance may run it (the delete is idempotent).
 */
export async function forgetOldExecutions(db: DbClient, retentionDays: number): Promise<number> {
  const repository = new ExecutionRepository(db);
  const cutoff = new Date(Date.now() - retentionDays * 86_400_000);
  let deleted = 0;
  for (;;) {
    const count = await repository.deleteOlderThan(cutoff, RETENTION_BATCH);
    deleted += count;
    if (count < RETENTION_BATCH) return deleted;
  }
}
