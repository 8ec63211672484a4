import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createConnectedTestDatabase, type ConnectedTestDatabase } from '../support/test-database.js';
import type { Database } from '../../src/infrastructure/database/database.js';

describe('createDatabase', () => {
  let testDatabase: ConnectedTestDatabase;
  let database: Database;

  before(async () => {
    testDatabase = await createConnectedTestDatabase(4);
    database = testDatabase.database;
  });
  after(() => testDatabase.drop());

  it('survives a checked-out connection dropping between two queries, and serves the next one', async () => {
    // given: a client in the middle of a transaction, as the delivery claim holds one
    const uncaught: unknown[] = [];
    const onUncaught = (error: unknown) => uncaught.push(error);
    process.on('uncaughtException', onUncaught);
    try {
      const client = await database.pool.connect();
      await client.query('BEGIN');
      const { rows } = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      // when: PostgreSQL ends that session (a restart or a network cut looks the same)
      await database.pool.query('SELECT pg_terminate_backend($1)', [rows[0].pid]);
      await new Promise((resolve) => setTimeout(resolve, 200));
      // then: the next step fails for its caller, not for the process
      await assert.rejects(client.query('COMMIT'));
      client.release(true);
      assert.deepEqual(uncaught, []);
      const { rows: after } = await database.pool.query<{ ok: number }>('SELECT 1 AS ok');
      assert.equal(after[0].ok, 1);
    } finally {
      process.off('uncaughtException', onUncaught);
    }
  });
});
