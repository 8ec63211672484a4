import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { SandboxPool, SandboxPoolOptions } from '../../src/sandbox/index.js';
import { call, createPool, makeBundle, MemoryCapabilities, sleep } from './helpers.js';
import { honestBundle, honestTraffic, outcomes, pids, spinnerSource } from './neighbour-helpers.js';

const pools: SandboxPool[] = [];
async function pool(opts: Partial<SandboxPoolOptions> = {}): Promise<SandboxPool> {
  const created = createPool(new MemoryCapabilities(), opts);
  pools.push(created);
  await created.start();
  return created;
}
after(() => Promise.all(pools.map((p) => p.close())));

/** The limits: long enough that only a stalled worker, not the addon's own limit, ends a call. */
const SPINNER_LIMITS = { cpuTimeMs: 10_000, timeoutMs: 30_000, maxConcurrentCalls: 32 };

describe('worker responsiveness (issue 28 item 1)', () => {
  it('keeps both workers answering while an async spinner is called six times at once', async () => {
    // given: two workers, an honest addon on another site, called throughout once the spinners run
    const p = await pool({ workers: 2 });
    const honest = honestBundle();
    await call(p, honest, 'ping', null, { siteId: 'honest-site' });
    const before = pids(p);
    // when: an async entry that spins for 2.5 s (within its limits) is called six times at once,
    // as requests arriving over HTTP do (a few ms apart, so both workers get some)
    const spinner = makeBundle(spinnerSource, { limits: SPINNER_LIMITS });
    const calls = [];
    for (let i = 0; i < 6; i += 1) {
      calls.push(call(p, spinner, 'spinAsync', { ms: 2500 }, { siteId: 'spinner-site' }));
      await sleep(10);
    }
    const traffic = honestTraffic(p, honest);
    const spins = await outcomes(calls);
    const seen = await traffic.stop();
    // then: every call succeeds, the neighbour's too, and no worker was killed
    assert.deepEqual(spins, Array(6).fill('spun'));
    assert.deepEqual(seen.failures, []);
    assert.ok(seen.ok >= 10, `only ${seen.ok} honest calls ran`);
    assert.deepEqual(pids(p), before);
    assert.equal(p.stats().crashes, 0);
  });
});
