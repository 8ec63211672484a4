import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { SandboxPool, SandboxPoolOptions } from '../../src/sandbox/index.js';
import { call, createPool, makeBundle, MemoryCapabilities, sleep } from './helpers.js';
import { FAST_STARTS_TO_SYNC } from '../../src/sandbox/start-policy.js';
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

  it('keeps an async spinner that spins after an SDK answer off the worker thread', async () => {
    // given: two workers and the honest neighbour
    const p = await pool({ workers: 2 });
    const honest = honestBundle();
    await call(p, honest, 'ping', null, { siteId: 'honest-site' });
    const before = pids(p);
    // when: an entry that awaits storage then spins 1 s is called six times, a few ms apart
    const spinner = makeBundle(spinnerSource, { limits: SPINNER_LIMITS, permissions: ['storage.read'] });
    const calls = [];
    for (let i = 0; i < 6; i += 1) {
      calls.push(call(p, spinner, 'spinAfterSdk', { ms: 1000 }, { siteId: 'spinner-site' }));
      await sleep(10);
    }
    const traffic = honestTraffic(p, honest);
    const spins = await outcomes(calls);
    const seen = await traffic.stop();
    // then: all succeed and no worker was replaced
    assert.deepEqual(spins, Array(6).fill('spun'));
    assert.deepEqual(seen.failures, []);
    assert.deepEqual(pids(p), before);
  });

  it('keeps the worker answering while module loads, widgets and hooks spin on other sites', async () => {
    // given: one worker (nowhere to spill to), and an addon whose top level, widget and install
    // hook each spin for 700 ms
    const p = await pool({ workers: 1 });
    const honest = honestBundle();
    await call(p, honest, 'ping', null, { siteId: 'honest-site' });
    const before = pids(p);
    const slowAddon = makeBundle(
      `const end = Date.now() + 700; while (Date.now() < end) {}
       const spin = () => { const e = Date.now() + 700; while (Date.now() < e) {} };
       module.exports = {
         functions: { ping: () => 'pong' },
         widgets: { w: () => { spin(); return html\`<p>spun</p>\`; } },
         hooks: { install: async () => { spin(); } },
       };`,
      { limits: SPINNER_LIMITS },
    );
    const traffic = honestTraffic(p, honest);
    // when: each is hit on new sites (every first call of a site loads the module)
    const results = await outcomes([
      call(p, slowAddon, 'ping', null, { siteId: 'load-1' }),
      call(p, slowAddon, 'ping', null, { siteId: 'load-2' }),
      call(p, slowAddon, 'w', null, { siteId: 'load-3', kind: 'widget' }),
      call(p, slowAddon, 'install', null, { siteId: 'load-4', kind: 'hook' }),
    ]);
    const seen = await traffic.stop();
    // then: they succeed, and so did every call of the neighbour, on the same worker process
    assert.deepEqual(results, ['pong', 'pong', '[object Object]', 'null']);
    assert.deepEqual(seen.failures, []);
    assert.ok(seen.ok >= 5, `only ${seen.ok} honest calls ran`);
    assert.deepEqual(pids(p), before);
  });
});

describe('the start policy, kept by the parent (issue 28 item 2)', () => {
  it('lets "three quick calls, then a long spin" hold a worker thread at most once, across worker restarts', async () => {
    // given: one worker (the neighbour cannot be routed around it), an honest addon on another site
    const p = await pool({ workers: 1 });
    const honest = honestBundle();
    const spinner = makeBundle(spinnerSource, { limits: SPINNER_LIMITS });
    await call(p, honest, 'ping', null, { siteId: 'honest-site' });
    let restarts = 0;
    for (let round = 0; round < 2; round += 1) {
      // when: the spinner earns synchronous starts with quick calls, then spins 4 s
      for (let i = 0; i < FAST_STARTS_TO_SYNC + 1; i += 1) {
        await call(p, spinner, 'ping', null, { siteId: 'spinner-site' });
      }
      assert.equal(p.startsSync(spinner.versionId, 'spinner-site'), round === 0);
      const traffic = honestTraffic(p, honest);
      const spun = await call(p, spinner, 'spin', { ms: 4000 }, { siteId: 'spinner-site' });
      const seen = await traffic.stop();
      // then: the spin succeeds (cut on the thread, finished on the pool), the neighbour never failed
      assert.equal(spun.output, 'spun');
      assert.deepEqual(seen.failures, []);
      assert.equal(p.startsSync(spinner.versionId, 'spinner-site'), false);
      // and the worker process is restarted between rounds: the parent remembers
      const pid = pids(p)[0]!;
      process.kill(pid, 'SIGKILL');
      restarts += 1;
      while (p.stats().workersReady < 1 || pids(p)[0] === pid) await sleep(20);
    }
    // the only worker deaths were the test's own
    assert.equal(p.stats().crashes, restarts);
  });
});
