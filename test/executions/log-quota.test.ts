import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { LogQuota } from '../../src/executions/log-quota.js';
import { inOneRateWindow } from '../support/rate-window.js';

const LIMITS = { maxBytesPerExecution: 2048, maxBytesPerSiteDay: 8192 };

describe('log quota per site and day', () => {
  let redis: Redis;

  before(async () => {
    redis = new Redis(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379');
    // A quota syncs only over a ready connection.
    await redis.ping();
  });
  after(() => redis.quit());

  it('keeps charging what a sync has sent until Redis answers, so admissions meanwhile stay within the day', async () => {
    await inOneRateWindow(86_400, 30_000);
    // given: two calls' worth admitted, then a sync on its way to Redis
    const quota = new LogQuota(LIMITS, redis, `test:${randomUUID()}:`);
    const site = randomUUID();
    const admitted = [quota.admit(site, 5000), quota.admit(site, 5000)];
    const syncing = quota.sync();
    // when: more calls log while the sync is in flight, and after it answered
    for (let i = 0; i < 4; i += 1) admitted.push(quota.admit(site, 5000));
    await syncing;
    admitted.push(quota.admit(site, 5000));
    // then: each call got at most its own cap, and the site no more than its day
    assert.deepEqual(admitted, [2048, 2048, 2048, 2048, 0, 0, 0]);
  });

  it('shares the day between instances through Redis', async () => {
    await inOneRateWindow(86_400, 30_000);
    // given: two instances of one cluster
    const prefix = `test:${randomUUID()}:`;
    const [a, b] = [new LogQuota(LIMITS, redis, prefix), new LogQuota(LIMITS, redis, prefix)];
    const site = randomUUID();
    // when: one admits three calls' worth and syncs, then the other syncs and asks
    for (let i = 0; i < 3; i += 1) a.admit(site, 2048);
    await a.sync();
    b.admit(site, 1);
    await b.sync();
    // then: the other sees what is left of the day (one call's worth, less the byte it took)
    assert.equal(b.admit(site, 5000), 2047);
  });

  it("keeps a share of the site's day for its other addons, on every instance", async () => {
    await inOneRateWindow(86_400, 30_000);
    // given: a site whose addons may each take 4096 of its 8192 bytes, on two instances
    const prefix = `test:${randomUUID()}:`;
    const limits = { ...LIMITS, maxBytesPerAddonDay: 4096 };
    const [a, b] = [new LogQuota(limits, redis, prefix), new LogQuota(limits, redis, prefix)];
    const site = randomUUID();
    // when: one addon logs three calls' worth on the first instance, which syncs
    const noisy = [1, 2, 3].map(() => a.admit(site, 2048, 'noisy'));
    await a.sync();
    b.admit(site, 1, 'noisy');
    await b.sync();
    // then: it got its share and no more, on either instance, while another addon still logs
    assert.deepEqual(noisy, [2048, 2048, 0]);
    assert.equal(b.admit(site, 2048, 'noisy'), 0);
    assert.equal(b.admit(site, 2048, 'quiet'), 2048);
    // and the site's day still bounds the addons together
    assert.equal(b.admit(site, 2048, 'third'), 2047);
  });
});
