/** Rows one retention statement deletes at most: a short transaction whatever the backlog. */
const RETENTION_BATCH = 5_000;

/**
 * Runs `deleteBatch(limit)` until it deletes fewer than `limit` rows; returns how many it deleted
 * in all. Retention jobs delete this way so that no statement holds a long transaction.
 */
export async function deleteInBatches(deleteBatch: (limit: number) => Promise<number>): Promise<number> {
  let deleted = 0;
  for (;;) {
    const count = await deleteBatch(RETENTION_BATCH);
    deleted += count;
    if (count < RETENTION_BATCH) return deleted;
  }
}
