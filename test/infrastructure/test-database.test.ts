import assert from 'node:assert/strict';
import { test } from 'node:test';
import pg from 'pg';
import { migrationStatus } from '../../src/infrastructure/database/migration-engine.js';
import { createTestDatabase } from '../support/test-database.js';

test('createTestDatabase gives separate migrated databases and drop() removes them', async () => {
  const [a, b] = await Promise.all([createTestDatabase(), createTestDatabase()]);
  try {
    assert.notEqual(a.url, b.url);
    for (const database of [a, b]) {
      const status = await migrationStatus(database.url);
      assert.deepEqual(status.pending, []);
      assert.ok(status.applied.length > 0);
    }
    // Kept open on purpose: drop() must disconnect it.
    const client = new pg.Client(a.url);
    client.on('error', () => undefined);
    await client.connect();
    await a.drop();
    await assert.rejects(migrationStatus(a.url), /does not exist/);
  } finally {
    await a.drop();
    await b.drop();
  }
});
