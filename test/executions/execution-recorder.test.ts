import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';
import { createDatabase, type Database } from '../../src/infrastructure/database/database.js';
import { createPubSub } from '../../src/infrastructure/pub-sub/pub-sub.js';
import {
  ExecutionRecorder,
  type ExecutionTopics,
  type LiveExecution,
} from '../../src/executions/execution-recorder.js';
import type { NewExecution } from '../../src/executions/execution.repository.js';

const newExecution = (createdAt: Date, id?: string): NewExecution => ({
  ...(id ? { id } : {}),
  addonId: randomUUID(),
  addonName: 'recorded',
  addonVersionId: randomUUID(),
  version: '1.2.3',
  siteId: randomUUID(),
  kind: 'function',
  entry: 'echo',
  status: 'SUCCESS',
  errorMessage: null,
  durationMs: 1.25,
  cpuTimeMs: 0.5,
  cold: false,
  logs: [{ level: 'info', message: `it's "quoted" \\ ok` }],
  logsTruncated: false,
  requestId: 'req-1',
  createdAt,
});

describe('ExecutionRecorder (batched execution records)', () => {
  let testDatabase: TestDatabase;
  let database: Database;

  before(async () => {
    testDatabase = await createTestDatabase();
    // Sessions in a zone other than UTC: stored times must not depend on the server's zone.
    const name = new URL(testDatabase.url).pathname.slice(1);
    const setup = new pg.Client({ connectionString: testDatabase.url });
    await setup.connect();
    await setup.query(`ALTER DATABASE "${name}" SET timezone TO 'Asia/Seoul'`);
    await setup.end();
    database = createDatabase({ connectionString: testDatabase.url, max: 2 });
  });
  after(async () => {
    await database.close();
    await testDatabase.drop();
  });

  it('stores each record as given, to the millisecond, and tells live listeners with the date as an ISO string', async () => {
    // given
    const pubSub = createPubSub<ExecutionTopics>();
    const heard: LiveExecution[] = [];
    pubSub.listen('executions', (payload) => heard.push(payload));
    const recorder = new ExecutionRecorder(database, { flushIntervalMs: 60_000 }, pubSub);
    const withId = newExecution(new Date('2026-03-04T05:06:07.089Z'), randomUUID());
    const withoutId = newExecution(new Date('2026-12-31T23:59:59.999Z'));
    // when
    const ids = [recorder.record(withId), recorder.record(withoutId)];
    await recorder.flush();
    await new Promise((resolve) => setImmediate(resolve));
    // then
    assert.equal(ids[0], withId.id);
    const rows = await database.prisma.execution.findMany({ where: { id: { in: ids } } });
    const byId = new Map(rows.map((row) => [row.id, row]));
    for (const [i, given] of [withId, withoutId].entries()) {
      const row = byId.get(ids[i]!);
      assert.ok(row, `record ${i} was not stored`);
      assert.equal(row.createdAt.toISOString(), given.createdAt.toISOString());
      assert.deepEqual(row.logs, given.logs);
      assert.equal(row.requestId, 'req-1');
      assert.equal(row.durationMs, 1.25);
    }
    assert.deepEqual(
      heard.map((h) => [h.id, h.createdAt]),
      [
        [ids[0], '2026-03-04T05:06:07.089Z'],
        [ids[1], '2026-12-31T23:59:59.999Z'],
      ],
    );
  });
});
