import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startOwnRedis, type OwnRedis } from '../support/own-redis.js';
import { Redis } from 'ioredis';
import { leaseSize, RateLimiter } from '../../src/http/rate-limiter.js';

const WINDOW_MS = 60_000;
// These tests are about counting across instances, not about Redis being slow: a machine loaded by
// other work must not push a reservation past the production 50 ms and into local counting.
const PATIENT_MS = 5_000;

/** A real Redis client that counts the reservations (Lua calls) it sends. */
function countingRedis(): Redis & { evals: number } {
  const redis = new Redis(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379') as Redis & {
    evals: number;
  };
  redis.evals = 0;
  const evalCommand = redis.eval.bind(redis) as (...args: unknown[]) => Promise<unknown>;
  (redis as unknown as { eval: (...args: unknown[]) => Promise<unknown> }).eval = (...args) => {
    redis.evals += 1;
    return evalCommand(...args);
  };
  return redis;
}

/** Waits out the last seconds of a fixed window, so a test's hits all fall in one window. */
async function awayFromWindowEdge(): Promise<void> {
  const left = WINDOW_MS - (Date.now() % WINDOW_MS);
  if (left < 10_000) await new Promise((resolve) => setTimeout(resolve, left + 10));
}

async function ready(redis: Redis): Promise<void> {
  if (redis.status !== 'ready') await new Promise((resolve) => redis.once('ready', resolve));
}

describe('RateLimiter (two instances sharing Redis)', () => {
  let first: Redis & { evals: number };
  let second: Redis & { evals: number };
  // A namespace of its own: other runs sharing this Redis never touch these counters.
  const prefix = `tp-test-rl-${randomUUID().slice(0, 8)}:`;

  before(async () => {
    first = countingRedis();
    second = countingRedis();
    await Promise.all([ready(first), ready(second)]);
  });
  after(async () => {
    const keys = await first.keys(`${prefix}*`);
    if (keys.length > 0) await first.del(...keys);
    first.disconnect();
    second.disconnect();
  });

  it('reserves 1% of a limit per round trip, one hit at a time up to a limit of 199, at most 1000', () => {
    assert.deepEqual(
      [1, 100, 199, 200, 10_000, 100_000, 10_000_000].map(leaseSize),
      [1, 1, 1, 2, 100, 1000, 1000],
    );
  });

  it('never admits more than a large limit across instances, and asks Redis once per block', async () => {
    // given: a limit of 2000 (blocks of 20) and two instances hit at once
    await awayFromWindowEdge();
    const limit = 2000;
    const a = new RateLimiter(first, WINDOW_MS, prefix, PATIENT_MS);
    const b = new RateLimiter(second, WINDOW_MS, prefix, PATIENT_MS);
    first.evals = 0;
    second.evals = 0;
    // when: 2200 hits alternate between them, 50 at a time
    const decisions = [];
    for (let i = 0; i < 2200; i += 50) {
      decisions.push(
        ...(await Promise.all(
          Array.from({ length: 50 }, (_, j) => ((i + j) % 2 === 0 ? a : b).hit('key:busy', limit)),
        )),
      );
    }
    // then: Redis counted every hit, at most the limit is admitted, at most one unspent block per
    // instance is lost
    assert.ok(
      decisions.every((d) => !d.degraded),
      'a hit was counted locally',
    );
    const allowed = decisions.filter((d) => d.allowed).length;
    assert.ok(allowed <= limit, `${allowed} admitted over a limit of ${limit}`);
    assert.ok(allowed >= limit - 2 * leaseSize(limit), `only ${allowed} admitted`);
    // blocks of 20 over 2000 admitted hits: ~100 reservations, not 2200 round trips; refusals after
    // the window is used up are answered without Redis
    const reservations = first.evals + second.evals;
    assert.ok(reservations <= limit / leaseSize(limit) + 4, `${reservations} reservations`);
    assert.ok(decisions.at(-1)!.allowed === false && decisions.at(-1)!.remaining === 0);
  });

  it('counts a small limit hit by hit across instances, exactly', async () => {
    // given: a limit of 5, instances taking turns
    await awayFromWindowEdge();
    const a = new RateLimiter(first, WINDOW_MS, prefix, PATIENT_MS);
    const b = new RateLimiter(second, WINDOW_MS, prefix, PATIENT_MS);
    // when
    const statuses = [];
    for (const limiter of [a, a, b, a, b, b, a]) statuses.push((await limiter.hit('key:small', 5)).allowed);
    // then: the sixth hit, whichever instance takes it, is refused
    assert.deepEqual(statuses, [true, true, true, true, true, false, false]);
  });

  it('reports what is left of the limit after each admitted hit', async () => {
    await awayFromWindowEdge();
    const a = new RateLimiter(first, WINDOW_MS, prefix, PATIENT_MS);
    const remaining = [];
    for (let i = 0; i < 3; i++) remaining.push((await a.hit('key:remaining', 500)).remaining);
    // blocks of 5: the first reservation makes the window's total 5, of which 1, 2, 3 are spent
    assert.deepEqual(remaining, [499, 498, 497]);
  });
});

/** A client of a Redis of the test's own; the first attempts may come before it listens. */
async function clientOf(own: OwnRedis): Promise<Redis> {
  const redis = new Redis(own.url, { maxRetriesPerRequest: 0, retryStrategy: () => 50 });
  redis.on('error', () => undefined);
  await ready(redis);
  return redis;
}

describe('RateLimiter when Redis stops answering', () => {
  // Paused (SIGSTOP) once the client is ready: commands are sent and never answered, as with a
  // Redis that hangs.
  let own: OwnRedis;
  let redis: Redis;

  before(
    async () => {
      own = await startOwnRedis();
      redis = await clientOf(own);
      own.pause();
    },
    { timeout: 10_000 },
  );
  after(async () => {
    redis.disconnect();
    await own.stop();
  });

  it('counts on this instance alone after the timeout, with the same limit', async () => {
    // given: a limit of 3 and a Redis that does not answer within 20 ms
    const limiter = new RateLimiter(redis, WINDOW_MS, 'tp-test-stopped:', 20);
    assert.equal(redis.status, 'ready');
    // when
    const started = Date.now();
    const decisions = [];
    for (let i = 0; i < 4; i++) decisions.push(await limiter.hit('key:stopped', 3));
    // then: each hit waited for the timeout only, was counted locally, and the fourth is refused
    assert.deepEqual(
      decisions.map((d) => [d.allowed, d.degraded, d.remaining]),
      [
        [true, true, 2],
        [true, true, 1],
        [true, true, 0],
        [false, true, 0],
      ],
    );
    assert.ok(Date.now() - started < 1000, `took ${Date.now() - started} ms`);
  });
});

describe('RateLimiter when Redis stops answering within a window', () => {
  let own: OwnRedis;
  let redis: Redis;

  before(
    async () => {
      own = await startOwnRedis();
      redis = await clientOf(own);
    },
    { timeout: 10_000 },
  );
  after(async () => {
    redis.disconnect();
    await own.stop();
  });

  it('counts on from what Redis last said of the window, not from nothing', async () => {
    // given: a limit of 3, two hits counted in Redis, then Redis stops answering (20 ms timeout)
    await awayFromWindowEdge();
    const limiter = new RateLimiter(redis, WINDOW_MS, `tp-test-${randomUUID().slice(0, 8)}:`, 20);
    const answered = [await limiter.hit('key:paused', 3), await limiter.hit('key:paused', 3)];
    own.pause();
    // when
    const degraded = [await limiter.hit('key:paused', 3), await limiter.hit('key:paused', 3)];
    own.resume();
    // then: the third is the window's last, the fourth refused, as if Redis had answered
    assert.deepEqual(
      [...answered, ...degraded].map((d) => [d.allowed, d.degraded, d.remaining]),
      [
        [true, false, 2],
        [true, false, 1],
        [true, true, 0],
        [false, true, 0],
      ],
    );
  });

  it('keeps counting the hits it counted alone once Redis answers again', async () => {
    // given: a limit of 3, and a first hit counted here alone while Redis does not answer
    await awayFromWindowEdge();
    const limiter = new RateLimiter(redis, WINDOW_MS, `tp-test-${randomUUID().slice(0, 8)}:`, 20);
    own.pause();
    const alone = await limiter.hit('key:resumed', 3);
    own.resume();
    // when: Redis answers the next hits (the first hit's command reaches it late, before them)
    const answered = [];
    for (let i = 0; i < 3; i++) answered.push(await limiter.hit('key:resumed', 3));
    // then: the first hit still counts, so the window admits no more than its limit
    const decisions = [alone, ...answered].map((d) => [d.allowed, d.degraded]);
    assert.deepEqual(decisions, [
      [true, true],
      [true, false],
      [false, false],
      [false, false],
    ]);
  });
});
