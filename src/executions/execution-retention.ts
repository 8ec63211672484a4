import type { DbClient } from '../infrastructure/database/database.js';
import { ExecutionRepository } from './execution.repository.js';

const SWEEP_EVERY_MS = 60 * 60_000;

/**
 * Deletes execution records older than `retentionDays`, once an hour; every instance may run it
 * (the delete is idempotent). Returns the function that stops it.
 */
export function startExecutionRetention(db: DbClient, retentionDays: number): () => void {
  const timer = setInterval(() => {
    const cutoff = new Date(Date.now() - retentionDays * 86_400_000);
    new ExecutionRepository(db).deleteOlderThan(cutoff).catch(() => undefined);
  }, SWEEP_EVERY_MS);
  timer.unref();
  return () => clearInterval(timer);
}
