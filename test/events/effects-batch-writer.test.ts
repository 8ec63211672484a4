import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';
import { EffectsBatchWriter } from '../../src/events/effects-batch-writer.js';
import type { EffectsItem, StorageChange } from '../../src/events/effects.repository.js';
import type { NewDelivery, NewEvent } from '../../src/events/event.repository.js';

const SITE = randomUUID();
const ADDON = randomUUID();

const newEvent = (data: unknown): NewEvent => ({
  id: randomUUID(),
  name: 'order.created',
  sourceAddonId: null,
  source: 'platform',
  siteId: SITE,
  data,
  requestId: null,
});

const newDelivery = (handler: string): NewDelivery => ({
  installationId: randomUUID(),
  addonId: randomUUID(),
  addonName: 'listener',
  handler,
});

const set = (key: string, value: unknown): StorageChange => ({
  addonId: ADDON,
  siteId: SITE,
  key,
  deleted: false,
  value,
  sizeBytes: JSON.stringify(value).length,
});

const item = (overrides: Partial<EffectsItem>): EffectsItem => ({
  events: [],
  storage: [],
  bumps: [],
  ...overrides,
});

describe('EffectsBatchWriter (group commit of execution effects and emits)', () => {
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

  it('stores events committed in one turn in a few statements, in order, each with its deliveries', async () => {
    // given
    const writer = new EffectsBatchWriter(pool, 7);
    const events = Array.from({ length: 30 }, (_, i) => newEvent({ i, note: `it's "quoted" \\ ${i}` }));
    statements = 0;
    // when
    const committed = await Promise.all(
      events.map((event, i) =>
        writer.commit(
          item({
            events: [
              {
                event,
                deliveries: i % 3 === 0 ? [newDelivery('a'), newDelivery('b')] : [],
                idempotency: null,
              },
            ],
          }),
        ),
      ),
    );
    // then
    assert.ok(statements <= 3, `30 commits took ${statements} statements`);
    const records = committed.map((c) => c.events[0]);
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

  it("fails only the item PostgreSQL refuses when it shares a batch with others, and writes none of that item's rows", async () => {
    // given: jsonb cannot hold the NUL character, so this item's event is refused
    const writer = new EffectsBatchWriter(pool, 3);
    const good = [1, 2, 3].map((n) =>
      item({ events: [{ event: newEvent({ ok: n }), deliveries: [], idempotency: null }] }),
    );
    const bad = item({
      events: [{ event: newEvent({ text: 'nul \u0000 here' }), deliveries: [], idempotency: null }],
      storage: [set('written-with-the-bad-event', { n: 1 })],
    });
    // when
    const outcomes = await Promise.allSettled([
      writer.commit(good[0]),
      writer.commit(bad),
      writer.commit(good[1]),
      writer.commit(good[2]),
    ]);
    // then
    assert.deepEqual(
      outcomes.map((o) => o.status),
      ['fulfilled', 'rejected', 'fulfilled', 'fulfilled'],
    );
    const ids = [...good, bad].map((i) => i.events[0].event.id);
    const { rows } = await pool.query<{ id: string }>('SELECT id FROM "Event" WHERE id = ANY($1::uuid[])', [
      ids,
    ]);
    assert.deepEqual(new Set(rows.map((r) => r.id)), new Set(ids.slice(0, 3)));
    const { rowCount } = await pool.query(
      `SELECT 1 FROM "AddonStorage" WHERE key = 'written-with-the-bad-event'`,
    );
    assert.equal(rowCount, 0);
  });

  it('writes each item atomically, the later of two items writing the same key last', async () => {
    // given: three items of one turn, two of them writing key "k"
    const writer = new EffectsBatchWriter(pool, 3);
    statements = 0;
    // when
    await Promise.all([
      writer.commit(item({ storage: [set('k', 'first'), set('a', 1)] })),
      writer.commit(item({ storage: [set('b', 2)] })),
      writer.commit(
        item({
          storage: [set('k', 'second'), { addonId: ADDON, siteId: SITE, key: 'a', deleted: true }],
          bumps: [{ siteId: SITE, addonId: ADDON }],
        }),
      ),
    ]);
    // then: two statements (the second "k" waits for the next), applied in order
    assert.equal(statements, 2);
    const { rows } = await pool.query<{ key: string; value: unknown }>(
      `SELECT key, value FROM "AddonStorage" WHERE key IN ('k', 'a', 'b') ORDER BY key`,
    );
    assert.deepEqual(rows, [
      { key: 'b', value: 2 },
      { key: 'k', value: 'second' },
    ]);
  });
});
