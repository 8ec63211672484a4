import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';
import { EventBatchWriter } from '../../src/events/event-batch-writer.js';
import type { NewDelivery, NewEvent } from '../../src/events/event.repository.js';

const newEvent = (data: unknown): NewEvent => ({
  id: randomUUID(),
  name: 'order.created',
  sourceAddonId: null,
  source: 'platform',
  siteId: randomUUID(),
  data,
  requestId: null,
});

const newDelivery = (handler: string): NewDelivery => ({
  installationId: randomUUID(),
  addonId: randomUUID(),
  addonName: 'listener',
  handler,
});

describe('EventBatchWriter (group commit of emitted events)', () => {
  let database: TestDatabase;
  let pool: pg.Pool;
  let statements = 0;

  before(async () => {
    database = await createTestDatabase();
    pool = new pg.Pool({ connectionString: database.url, max: 4 });
    // Idle connections are terminated when the database is dropped at the end.
    pool.on('error', () => undefined);
    // Counts the statements the writer sends; PostgreSQL itself runs them.
    const query = pool.query.bind(pool) as (...args: unknown[]) => unknown;
    (pool as unknown as { query: (...args: unknown[]) => unknown }).query = (...args: unknown[]) => {
      statements += 1;
      return query(...args);
    };
  });
  after(async () => {
    await pool.end();
    await database.drop();
  });

  it('stores events emitted in one turn in a few statements, in emit order, each with its deliveries', async () => {
    // given
    const writer = new EventBatchWriter(pool, 7);
    const events = Array.from({ length: 30 }, (_, i) => newEvent({ i, note: `it's "quoted" \\ ${i}` }));
    statements = 0;
    // when
    const records = await Promise.all(
      events.map((event, i) => writer.insert(event, i % 3 === 0 ? [newDelivery('a'), newDelivery('b')] : [])),
    );
    // then
    assert.ok(statements <= 3, `30 events took ${statements} statements`);
    assert.deepEqual(
      records.map((r) => [r.id, r.data]),
      events.map((e) => [e.id, e.data]),
    );
    for (let i = 1; i < records.length; i += 1) assert.ok(records[i].seq > records[i - 1].seq);
    const { rows } = await pool.query<{ eventId: string; handler: string; maxAttempts: number }>(
      'SELECT "eventId", handler, "maxAttempts" FROM "Delivery" ORDER BY handler',
    );
    assert.equal(rows.length, 20);
    assert.ok(rows.every((row) => row.maxAttempts === 7));
    const withDeliveries = new Set(events.filter((_, i) => i % 3 === 0).map((e) => e.id));
    assert.deepEqual(new Set(rows.map((row) => row.eventId)), withDeliveries);
  });

  it('fails only the event PostgreSQL refuses when it shares a batch with others', async () => {
    // given: jsonb cannot hold the NUL character, so this event's row is refused
    const writer = new EventBatchWriter(pool, 3);
    const good = [newEvent({ ok: 1 }), newEvent({ ok: 2 }), newEvent({ ok: 3 })];
    const bad = newEvent({ text: 'nul \u0000 here' });
    // when
    const outcomes = await Promise.allSettled([
      writer.insert(good[0], []),
      writer.insert(bad, []),
      writer.insert(good[1], []),
      writer.insert(good[2], []),
    ]);
    // then
    assert.deepEqual(
      outcomes.map((o) => o.status),
      ['fulfilled', 'rejected', 'fulfilled', 'fulfilled'],
    );
    const { rows } = await pool.query<{ id: string }>('SELECT id FROM "Event" WHERE id = ANY($1::uuid[])', [
      [...good, bad].map((e) => e.id),
    ]);
    assert.deepEqual(new Set(rows.map((r) => r.id)), new Set(good.map((e) => e.id)));
  });
});
