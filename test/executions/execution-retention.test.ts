import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import type { Database } from '../../src/infrastructure/database/database.js';
import { forgetOldExecutions } from '../../src/executions/execution-retention.js';
import { createConnectedTestDatabase, type ConnectedTestDatabase } from '../support/test-database.js';

describe('execution retention', () => {
  let testDatabase: ConnectedTestDatabase;
  let database: Database;

  before(async () => {
    testDatabase = await createConnectedTestDatabase();
    database = testDatabase.database;
  });
  after(() => testDatabase.drop());

  it('deletes the records older than the retention, in batches, and keeps the rest', async () => {
    // given: 12,000 records 8 days old (more than two batches) and 10 from yesterday
    const insert = (count: number, daysOld: number) =>
      database.pool.query(
        `INSERT INTO "Execution" (id, "addonId", "addonName", "addonVersionId", version, kind, entry,
                                  status, "durationMs", "cpuTimeMs", logs, "createdAt")
         SELECT gen_random_uuid(), $1, 'addon', $1, '1.0.0', 'function', 'f', 'SUCCESS', 1, 1, '[]',
                (now() AT TIME ZONE 'UTC') - $2 * interval '1 day'
           FROM generate_series(1, $3)`,
        [randomUUID(), daysOld, count],
      );
    await insert(12_000, 8);
    await insert(10, 1);
    // when: the retention of 7 days runs
    const deleted = await forgetOldExecutions(database.prisma, 7);
    // then: every old record is gone, the recent ones stay
    assert.equal(deleted, 12_000);
    assert.equal(await database.prisma.execution.count(), 10);
  });
});
