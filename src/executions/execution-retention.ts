import type { DbClient } from '../infrastructure/database/database.js';
import { deleteInBatches } from '../shared/delete-in-batches.js';
import { ExecutionRepository } from './execution.repository.js';

/**
 * Deletes execution records older than `retentionDays`, oldest first, in batches until none is
 * left; returns how many. Every instance may run it (the delete is idempotent).
 */
export async function forgetOldExecutions(db: DbClient, retentionDays: number): Promise<number> {
  const repository = new ExecutionRepository(db);
  const cutoff = new Date(Date.now() - retentionDays * 86_400_000);
  return deleteInBatches((limit) => repository.deleteOlderThan(cutoff, limit));
}
