import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { approximateBytes, RefreshingCache } from './refreshing-cache.js';

/** A load the test settles by hand. */
interface PendingLoad {
  key: string;
  resolve: (value: string) => void;
  reject: (error: Error) => void;
}

function givenCache(
  options: { ttlMs?: number; staleMs?: number; maxEntries?: number; maxBytes?: number } = {},
) {
  const clock = { now: 1_000 };
  const loads: PendingLoad[] = [];
  const cache = new RefreshingCache<string>(
    (key) => new Promise<string>((resolve, reject) => loads.push({ key, resolve, reject })),
    {
      ttlMs: options.ttlMs ?? 100,
      staleMs: options.staleMs ?? 50,
      maxEntries: options.maxEntries ?? 10,
      maxBytes: options.maxBytes ?? 1_000_000,
      // Counted by hand so the byte bound is exact: 2 bytes a character of value and key.
      sizeOf: (value, key) => 2 * (value.length + key.length),
      now: () => clock.now,
    },
  );
  /** Loads `key` as `value`: the state of a cache that has answered it once. */
  const loaded = async (key: string, value: string) => {
    const answer = cache.get(key);
    loads.at(-1)!.resolve(value);
    await answer;
  };
  return { cache, clock, loads, loaded };
}

/** Lets the settled loads' callbacks run. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe('RefreshingCache', () => {
  it('loads a missing key once for every caller asking at the same time', async () => {
    const { cache, loads } = givenCache();
    const answers = [cache.get('a'), cache.get('a'), cache.get('a')];
    assert.equal(loads.length, 1);
    loads[0].resolve('A1');
    assert.deepEqual(await Promise.all(answers), ['A1', 'A1', 'A1']);
  });

  it('answers a fresh value from memory without loading', async () => {
    const { cache, clock, loads, loaded } = givenCache();
    await loaded('a', 'A1');
    clock.now += 99;
    assert.equal(cache.peek('a'), 'A1');
    assert.equal(await cache.get('a'), 'A1');
    assert.equal(loads.length, 1);
  });

  it('answers an expired value within the stale window while one background load replaces it', async () => {
    const { cache, clock, loads, loaded } = givenCache();
    await loaded('a', 'A1');
    clock.now += 120;
    assert.equal(cache.peek('a'), 'A1');
    assert.equal(await cache.get('a'), 'A1');
    assert.equal(loads.length, 2, 'one refresh for both callers');
    loads[1].resolve('A2');
    await settle();
    assert.equal(cache.peek('a'), 'A2');
    clock.now += 99;
    assert.equal(cache.peek('a'), 'A2', 'the refreshed value has a new TTL');
    assert.equal(loads.length, 2);
  });

  it('makes callers wait for a load once the value is older than TTL plus the stale window', async () => {
    const { cache, clock, loads, loaded } = givenCache();
    await loaded('a', 'A1');
    clock.now += 150;
    assert.equal(cache.peek('a'), undefined);
    const answer = cache.get('a');
    assert.equal(loads.length, 2);
    loads[1].resolve('A2');
    assert.equal(await answer, 'A2');
  });

  it('does not cache a failed load: its callers get the error and the next caller loads again', async () => {
    const { cache, loads } = givenCache();
    const first = cache.get('a');
    loads[0].reject(new Error('database down'));
    await assert.rejects(first, /database down/);
    assert.equal(cache.peek('a'), undefined);
    const second = cache.get('a');
    assert.equal(loads.length, 2);
    loads[1].resolve('A1');
    assert.equal(await second, 'A1');
  });

  it('drops the entry when its background refresh fails', async () => {
    const { cache, clock, loads, loaded } = givenCache();
    await loaded('a', 'A1');
    clock.now += 120;
    assert.equal(cache.peek('a'), 'A1');
    loads[1].reject(new Error('not found'));
    await settle();
    assert.equal(cache.peek('a'), undefined);
  });

  it('does not store a load that was in flight when its key was deleted', async () => {
    const { cache, loads } = givenCache();
    const answer = cache.get('a');
    cache.delete('a');
    loads[0].resolve('read before the change');
    assert.equal(await answer, 'read before the change', 'its own callers still get an answer');
    assert.equal(cache.peek('a'), undefined);
    const next = cache.get('a');
    assert.equal(loads.length, 2);
    loads[1].resolve('read after the change');
    assert.equal(await next, 'read after the change');
  });

  it('deletes the keys a predicate matches and keeps the others', async () => {
    const { cache, loads } = givenCache();
    const answers = ['site1/a', 'site1/b', 'site2/a'].map((key) => cache.get(key));
    for (const load of loads) load.resolve(load.key.toUpperCase());
    await Promise.all(answers);
    cache.deleteWhere((key) => key.startsWith('site1/'));
    assert.equal(cache.peek('site1/a'), undefined);
    assert.equal(cache.peek('site1/b'), undefined);
    assert.equal(cache.peek('site2/a'), 'SITE2/A');
  });

  it('evicts the least recently used key beyond maxEntries', async () => {
    const { cache, loaded } = givenCache({ maxEntries: 2 });
    await loaded('a', 'A');
    await loaded('b', 'B');
    assert.equal(cache.peek('a'), 'A', 'a is now used more recently than b');
    await loaded('c', 'C');
    assert.equal(cache.peek('a'), 'A');
    assert.equal(cache.peek('b'), undefined);
    assert.equal(cache.peek('c'), 'C');
  });

  it('evicts the least recently used keys beyond maxBytes, and keeps no value larger than the bound', async () => {
    // given: 4 bytes an entry (one-character key and value, counted by sizeOf), 10 bytes at most
    const { cache, loaded } = givenCache({ maxBytes: 10 });
    await loaded('a', 'A');
    await loaded('b', 'B');
    // when
    await loaded('c', 'C');
    await loaded('d', 'D'.repeat(20));
    // then
    assert.equal(cache.peek('a'), undefined);
    assert.equal(cache.peek('b'), 'B');
    assert.equal(cache.peek('c'), 'C');
    assert.equal(cache.peek('d'), undefined, 'larger than the whole bound: answered, not kept');
  });

  it('does not store a load in flight for a key deleted by a predicate', async () => {
    const { cache, loads } = givenCache();
    const answer = cache.get('site1/a');
    cache.deleteWhere((key) => key.startsWith('site1/'));
    loads[0].resolve('read before the change');
    assert.equal(await answer, 'read before the change');
    assert.equal(cache.peek('site1/a'), undefined);
  });
});

describe('approximateBytes', () => {
  it('counts strings at two bytes a character, at every depth, and byte arrays at their length', () => {
    const small = approximateBytes({ name: 'x' });
    const large = approximateBytes({
      name: 'x',
      nested: [{ text: 'y'.repeat(1000) }],
      bytes: new Uint8Array(500),
    });
    assert.ok(large - small >= 2000 + 500, `${large} - ${small}`);
    assert.ok(large - small < 2000 + 500 + 300, 'overhead per object stays small');
  });

  it('stops counting after its budget of values', () => {
    const many = Array.from({ length: 10_000 }, () => 'z'.repeat(10));
    assert.ok(approximateBytes(many, 100) < approximateBytes(many));
  });
});
