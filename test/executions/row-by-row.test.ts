import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createConnectedTestDatabase, type ConnectedTestDatabase } from '../support/test-database.js';
import type { Database } from '../../src/infrastructure/database/database.js';
import { ExecutionRecorder } from '../../src/executions/execution-recorder.js';
import { LogQuota } from '../../src/executions/log-quota.js';
import type { NewExecution } from '../../src/executions/execution.repository.js';
import { DeliveryRepository } from '../../src/events/delivery.repository.js';
import { EffectsRepository } from '../../src/events/effects.repository.js';

const record = (siteId: string, overrides: Partial<NewExecution> = {}): NewExecution => ({
  addonId: randomUUID(),
  addonName: 'writer',
  addonVersionId: randomUUID(),
  version: '1.0.0',
  siteId,
  kind: 'function',
  entry: 'f',
  status: 'SUCCESS',
  errorMessage: null,
  durationMs: 1,
  cpuTimeMs: 1,
  cold: false,
  logs: [],
  logsTruncated: false,
  requestId: null,
  createdAt: new Date(),
  ...overrides,
});

describe('batch writers: one row PostgreSQL refuses costs only itself', () => {
  let testDatabase: ConnectedTestDatabase;
  let database: Database;

  before(async () => {
    testDatabase = await createConnectedTestDatabase();
    database = testDatabase.database;
  });
  after(() => testDatabase.drop());

  it('stores the other sites’ execution records of a batch with a row the database refuses', async () => {
    // given: a batch with cleanable text, and one row no cleaning makes storable (a malformed id)
    const errors: unknown[] = [];
    const recorder = new ExecutionRecorder(database, {
      flushIntervalMs: 60_000,
      onError: (error) => errors.push(error),
      logQuota: new LogQuota({ maxBytesPerExecution: 64, maxBytesPerSiteDay: 1_000_000 }),
    });
    const siteA = randomUUID();
    const siteB = randomUUID();
    const cut = `${'x'.repeat(999)}\u{1F600}`;
    const ids = [
      recorder.record(record(siteA, { errorMessage: `${cut}\u0000`, status: 'ADDON_ERROR' })),
      recorder.record(record(siteA, { logs: [{ level: 'info', message: 'a\u0000b \ud800', at: 1 }] })),
      recorder.record(record('not-a-site-id')),
      recorder.record(record(siteB, { logs: [{ level: 'info', message: 'é'.repeat(100), at: 2 }] })),
    ];
    // when
    await recorder.flush();
    // then
    const rows = await database.prisma.execution.findMany({ where: { id: { in: ids } } });
    const byId = new Map(rows.map((row) => [row.id, row]));
    assert.equal(rows.length, 3);
    assert.equal(byId.get(ids[0])!.errorMessage, 'x'.repeat(999));
    assert.deepEqual(byId.get(ids[1])!.logs, [{ level: 'info', message: 'a\uFFFDb \uFFFD', at: 1 }]);
    assert.equal(byId.has(ids[2]), false);
    // 64 bytes of 2-byte characters: 32 of them, the record marked truncated
    assert.deepEqual(byId.get(ids[3])!.logs, [{ level: 'info', message: 'é'.repeat(32), at: 2 }]);
    assert.equal(byId.get(ids[3])!.logsTruncated, true);
    assert.equal(errors.length, 1);
    assert.equal((errors[0] as { code?: string }).code, '22P02');
  });

  it('applies the other deliveries’ outcomes of a batch with an outcome the database refuses', async () => {
    // given: two running deliveries of two sites, and an outcome for an id that is no UUID
    const siteA = randomUUID();
    const siteB = randomUUID();
    const {
      events: [event],
    } = await EffectsRepository.commitIn(
      database.prisma,
      {
        events: [
          {
            event: {
              id: randomUUID(),
              name: 'a.b',
              sourceAddonId: null,
              source: 'platform',
              siteId: siteA,
              data: {},
              requestId: null,
            },
            deliveries: [siteA, siteB].map((site) => ({
              installationId: randomUUID(),
              addonId: randomUUID(),
              addonName: `addon-${site.slice(0, 4)}`,
              handler: 'h',
            })),
            idempotency: null,
          },
        ],
        storage: [],
        bumps: [],
      },
      3,
    );
    await database.prisma.delivery.updateMany({
      where: { eventId: event.id },
      data: { status: 'RUNNING', attempts: 1, claimedBy: 'w' },
    });
    const deliveries = await database.prisma.delivery.findMany({ where: { eventId: event.id } });
    const rowErrors: unknown[] = [];
    // when
    const changed = await DeliveryRepository.completeFast(
      database.pool,
      [
        { id: deliveries[0].id, attempts: 1, status: 'DEAD', delayMs: null, error: 'boom \u0000 \udc00' },
        { id: 'not-a-delivery-id', attempts: 1, status: 'SUCCEEDED', delayMs: null, error: null },
        { id: deliveries[1].id, attempts: 1, status: 'SUCCEEDED', delayMs: null, error: null },
      ],
      [
        {
          deliveryId: deliveries[0].id,
          attempt: 1,
          status: 'ADDON_ERROR',
          durationMs: 1,
          error: 'boom \u0000',
          claimedBy: 'w',
          startedAt: new Date(),
        },
      ],
      (error) => rowErrors.push(error),
    );
    // then
    assert.deepEqual(changed.map((row) => row.id).sort(), deliveries.map((d) => d.id).sort());
    const stored = await database.prisma.delivery.findMany({
      where: { eventId: event.id },
      include: { attemptLog: true },
      orderBy: { id: 'asc' },
    });
    const byId = new Map(stored.map((row) => [row.id, row]));
    assert.equal(byId.get(deliveries[0].id)!.status, 'DEAD');
    assert.equal(byId.get(deliveries[0].id)!.lastError, 'boom \uFFFD \uFFFD');
    assert.equal(byId.get(deliveries[0].id)!.attemptLog[0].error, 'boom \uFFFD');
    assert.equal(byId.get(deliveries[1].id)!.status, 'SUCCEEDED');
    assert.equal(rowErrors.length, 1);
    assert.equal((rowErrors[0] as { code?: string }).code, '22P02');
  });
});
