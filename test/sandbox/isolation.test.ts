import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { performance } from 'node:perf_hooks';
import { readFileSync } from 'node:fs';
import {
  call,
  codeOf,
  createPool,
  functionsAddon,
  makeBundle,
  MemoryCapabilities,
  sleep,
} from './helpers.js';
import type { AddonBundle, SandboxPool, SandboxPoolOptions } from '../../src/sandbox/index.js';
import { FAST_STARTS_TO_SYNC, MAX_SLOW_STARTS } from '../../src/sandbox/start-policy.js';
import { homeSlot, PACK_LIMIT, SPILL_AFTER_MS } from '../../src/sandbox/worker-supervisor.js';
import { LOAD_REPORT_MS } from '../../src/sandbox/protocol.js';

const pools: SandboxPool[] = [];
async function pool(opts: Partial<SandboxPoolOptions> = {}): Promise<SandboxPool> {
  const created = createPool(new MemoryCapabilities(), opts);
  pools.push(created);
  await created.start();
  return created;
}
after(() => Promise.all(pools.map((p) => p.close())));

const globalsAddon = functionsAddon(`{
  set: (d) => { globalThis.secret = d; counter = (typeof counter === 'number' ? counter : 0) + 1; return counter; },
  get: () => ({ secret: typeof secret === 'undefined' ? null : secret }),
}`);
/** Busy-waits, so a call stays in flight for a while without any host timer. */
const slowAddon = functionsAddon(
  `{ wait: (d) => { const end = Date.now() + d.ms; while (Date.now() < end) {} return 'done'; }, ping: () => 'pong' }`,
);

/** Bundles of `slowAddon` whose versions are homed on the given workers of a 2-worker pool, in order. */
function bundlesHomedOn(slots: number[], overrides: Partial<AddonBundle> = {}): AddonBundle[] {
  return slots.map((slot) => {
    for (;;) {
      const bundle = makeBundle(slowAddon, overrides);
      if (homeSlot(bundle.versionId, 2) === slot) return bundle;
    }
  });
}

/** Once a call of another addon is under way, pings `other` on the same pool: how long it waited. */
async function pingMeanwhile(p: SandboxPool, other: AddonBundle) {
  await sleep(50);
  const started = performance.now();
  const pong = await call(p, other, 'ping');
  return { pong, waited: performance.now() - started };
}

describe('isolation', () => {
  it('keeps globals of one site invisible to another site of the same addon', async () => {
    const p = await pool();
    const bundle = makeBundle(globalsAddon);
    await call(p, bundle, 'set', 'site A data', { siteId: 'A' });
    assert.deepEqual((await call(p, bundle, 'get', null, { siteId: 'B' })).output, { secret: null });
    // The same site keeps its context (and module state) between calls.
    assert.deepEqual((await call(p, bundle, 'get', null, { siteId: 'A' })).output, { secret: 'site A data' });
  });

  it('keeps globals of one addon invisible to another on the same site', async () => {
    const p = await pool({ workers: 1 });
    const first = makeBundle(globalsAddon);
    const second = makeBundle(globalsAddon);
    await call(p, first, 'set', 'first', { siteId: 'A' });
    assert.deepEqual((await call(p, second, 'get', null, { siteId: 'A' })).output, { secret: null });
  });

  it('keeps two versions of one addon apart', async () => {
    const p = await pool({ workers: 1 });
    const v1 = makeBundle(globalsAddon, { addonName: 'versioned', version: '1.0.0' });
    const v2 = makeBundle(globalsAddon, { addonName: 'versioned', version: '1.1.0' });
    await call(p, v1, 'set', 'v1');
    assert.deepEqual((await call(p, v2, 'get')).output, { secret: null });
  });
});

describe('warm and cold calls', () => {
  it('reports cold for the first call of a version and of each site', async () => {
    const p = await pool();
    const bundle = makeBundle(globalsAddon);
    assert.equal((await call(p, bundle, 'get', null, { siteId: 'A' })).cold, true);
    assert.equal((await call(p, bundle, 'get', null, { siteId: 'A' })).cold, false);
    assert.equal((await call(p, bundle, 'get', null, { siteId: 'B' })).cold, true);
    const result = await call(p, bundle, 'get', null, { siteId: 'B' });
    assert.equal(result.cold, false);
    assert.ok(result.durationMs >= 0 && result.cpuTimeMs >= 0);
  });

  it('evicts idle isolates after idleIsolateMs', async () => {
    const p = await pool({ workers: 1, idleIsolateMs: 150 });
    const bundle = makeBundle(globalsAddon);
    await call(p, bundle, 'set', 'x');
    await sleep(50);
    assert.equal(p.stats().isolates, 1);
    await sleep(400);
    assert.equal(p.stats().isolates, 0);
    const after = await call(p, bundle, 'get');
    assert.equal(after.cold, true);
    assert.deepEqual(after.output, { secret: null });
  });

  it('evicts the least recently used isolate beyond maxIsolates', async () => {
    const p = await pool({ workers: 1, maxIsolates: 2 });
    const [a, b, c] = [makeBundle(globalsAddon), makeBundle(globalsAddon), makeBundle(globalsAddon)];
    await call(p, a, 'get');
    await call(p, b, 'get');
    await call(p, a, 'get');
    await call(p, c, 'get'); // evicts b, the least recently used
    assert.equal((await call(p, a, 'get')).cold, false);
    assert.equal((await call(p, b, 'get')).cold, true);
    await sleep(30);
    assert.ok(p.stats().isolates <= 2);
  });

  it('keeps isolates by their measured memory, not by their declared limits', async () => {
    // given: a 12 MB budget and versions that each declare 60 MB (an idle one takes ~1.5 MB)
    const p = await pool({ workers: 1, isolateMemoryBudgetMb: 12 });
    const bundles = Array.from({ length: 12 }, () => makeBundle(globalsAddon, { limits: { memoryMb: 60 } }));
    // when: three are called, then all twelve
    for (const b of bundles.slice(0, 3)) await call(p, b, 'get');
    // then: the three stay warm (declared limits would have fitted none beside another)
    for (const b of bundles.slice(0, 3)) assert.equal((await call(p, b, 'get')).cold, false);
    for (const b of bundles) await call(p, b, 'get');
    await sleep(50);
    // and the measured total stays within the budget, evicting the least recently used
    const stats = p.stats();
    assert.ok(stats.isolates >= 3 && stats.isolates < 12, `${stats.isolates} isolates kept`);
    assert.ok(stats.isolateMemoryBytes <= 12 * 1024 * 1024, `${stats.isolateMemoryBytes} bytes kept`);
    assert.equal(stats.reservedMemoryMb, stats.isolates * 60);
    assert.equal((await call(p, bundles[0], 'get')).cold, true);
  });
});

describe('worker processes', () => {
  /** The command line a worker process was started with, read from /proc. */
  const commandLines = (p: SandboxPool) =>
    p.stats().perWorker.map((w) => readFileSync(`/proc/${w.pid}/cmdline`, 'utf8').split('\0'));

  it('start with one V8 background thread unless told otherwise', async () => {
    const defaults = await pool({ workers: 1 });
    const wider = await pool({ workers: 2, v8PoolSize: 3 });
    for (const argv of commandLines(defaults)) {
      assert.ok(argv.includes('--no-node-snapshot'), argv.join(' '));
      assert.ok(argv.includes('--v8-pool-size=1'), argv.join(' '));
    }
    assert.deepEqual(
      commandLines(wider).map((argv) => argv.filter((a) => a.startsWith('--v8-pool-size'))),
      [['--v8-pool-size=3'], ['--v8-pool-size=3']],
    );
    // and they still run addon code
    assert.deepEqual(
      { ...((await call(wider, makeBundle(globalsAddon), 'get')).output as object) },
      { secret: null },
    );
  });
});

describe('concurrency and workers', () => {
  it('limits concurrent calls per addon across the pool', async () => {
    const p = await pool();
    const v1 = makeBundle(slowAddon, {
      addonName: 'busy',
      addonId: 'busy',
      limits: { maxConcurrentCalls: 2 },
    });
    const v2 = makeBundle(slowAddon, {
      addonName: 'busy',
      addonId: 'busy',
      limits: { maxConcurrentCalls: 2 },
    });
    const running = [call(p, v1, 'wait', { ms: 300 }), call(p, v2, 'wait', { ms: 300 })];
    const refused = await codeOf(call(p, v1, 'ping'));
    assert.equal(refused.code, 'TOO_MANY_CONCURRENT_CALLS');
    // Other addons are not affected.
    assert.equal((await call(p, makeBundle(slowAddon), 'ping')).output, 'pong');
    assert.deepEqual(
      (await Promise.all(running)).map((r) => r.output),
      ['done', 'done'],
    );
    assert.equal((await call(p, v1, 'ping')).output, 'pong');
    assert.equal(p.stats().inFlight, 0);
  });

  it('packs quick calls of one version onto its home worker', async () => {
    // given: two workers, and a version whose calls answer at once, called now and then (so its
    // worker last reported an idle event loop, not the load of the cold start); the age rule, tested
    // below, is set out of reach so a descheduled test process cannot trigger it mid-dispatch
    const p = await pool({ workers: 2, spillAfterMs: 60_000 });
    const bundle = makeBundle(slowAddon, { limits: { maxConcurrentCalls: 64 } });
    for (let i = 0; i < 3; i += 1) {
      await call(p, bundle, 'ping');
      await sleep(LOAD_REPORT_MS * 4);
    }
    // when: eight of its calls are made at once
    const results = await Promise.all(Array.from({ length: 8 }, () => call(p, bundle, 'ping')));
    // then: they all ran on the version's home worker
    assert.deepEqual(
      results.map((r) => r.workerId),
      results.map(() => homeSlot(bundle.versionId, 2)),
    );
  });

  it('spreads versions over the workers by their home', async () => {
    const p = await pool({ workers: 2 });
    const bundles = bundlesHomedOn([0, 1, 0, 1]);
    const results = await Promise.all(bundles.map((b) => call(p, b, 'ping')));
    assert.deepEqual(
      results.map((r) => r.workerId),
      [0, 1, 0, 1],
    );
  });

  it(`spills to the next worker beyond ${PACK_LIMIT} calls in flight`, async () => {
    // given: a version homed on worker 0 whose calls stay in flight (they run one at a time per
    // isolate), with the age rule out of reach as in the packing test
    const p = await pool({ workers: 2, spillAfterMs: 60_000 });
    const [bundle] = bundlesHomedOn([0], { limits: { maxConcurrentCalls: 64, timeoutMs: 5000 } });
    // when: more calls than PACK_LIMIT are made in one turn
    const results = await Promise.all(
      Array.from({ length: PACK_LIMIT + 3 }, () => call(p, bundle, 'wait', { ms: 2 })),
    );
    // then: the home took PACK_LIMIT of them, the next worker the rest
    const counts = [0, 0];
    for (const r of results) counts[r.workerId] += 1;
    assert.deepEqual(counts, [PACK_LIMIT, 3]);
  });

  it(`passes over a home worker whose oldest call is ${SPILL_AFTER_MS} ms old or more`, async () => {
    // given: a version homed on worker 0, and worker 0 frozen with one of its calls in flight
    const p = await pool({ workers: 2 });
    const [bundle] = bundlesHomedOn([0], { limits: { timeoutMs: 5000 } });
    await call(p, bundle, 'ping');
    const frozenPid = p.stats().perWorker[0].pid!;
    process.kill(frozenPid, 'SIGSTOP');
    try {
      const stuck = call(p, bundle, 'ping');
      await sleep(SPILL_AFTER_MS * 5);
      // when: the version is called again
      const started = performance.now();
      const next = await call(p, bundle, 'ping');
      // then: the other worker answers it, and the stuck call completes once its worker runs again
      assert.equal(next.workerId, 1);
      assert.ok(performance.now() - started < 1000);
      process.kill(frozenPid, 'SIGCONT');
      assert.equal((await stuck).workerId, 0);
    } finally {
      process.kill(frozenPid, 'SIGCONT');
    }
  });

  it('fails calls of a killed worker with SANDBOX_CRASHED and replaces it', async () => {
    const p = await pool({ workers: 1 });
    const bundle = makeBundle(slowAddon, { limits: { timeoutMs: 5000, cpuTimeMs: 5000 } });
    const pending = call(p, bundle, 'wait', { ms: 2000 });
    await sleep(200);
    const pid = p.stats().perWorker[0].pid!;
    process.kill(pid, 'SIGKILL');
    assert.equal((await codeOf(pending)).code, 'SANDBOX_CRASHED');
    assert.equal((await call(p, bundle, 'ping')).output, 'pong');
    const stats = p.stats();
    assert.equal(stats.crashes, 1);
    assert.notEqual(stats.perWorker[0].pid, pid);
  });

  it('kills a worker that stops answering and times the call out', async () => {
    const p = await pool({ workers: 1 });
    const bundle = makeBundle(slowAddon, { limits: { timeoutMs: 200 } });
    await call(p, bundle, 'ping');
    const pid = p.stats().perWorker[0].pid!;
    process.kill(pid, 'SIGSTOP');
    const started = Date.now();
    assert.equal((await codeOf(call(p, bundle, 'ping'))).code, 'EXECUTION_TIMEOUT');
    assert.ok(Date.now() - started < 4000);
    assert.equal((await call(p, bundle, 'ping')).output, 'pong');
    assert.notEqual(p.stats().perWorker[0].pid, pid);
  });

  it('starts calls of quick versions on the worker thread, but never keeps a slow one there', async () => {
    // given: one worker, an addon whose first calls are quick (so its calls start synchronously)
    const p = await pool({ workers: 1 });
    const spinner = makeBundle(slowAddon);
    const other = makeBundle(slowAddon);
    for (let i = 0; i < 5; i += 1) await call(p, spinner, 'wait', { ms: 0 });
    await call(p, other, 'ping');
    // when: it turns slow once (this start holds the worker), then runs slowly again
    await call(p, spinner, 'wait', { ms: 300 });
    const slow = call(p, spinner, 'wait', { ms: 400 });
    const { pong, waited } = await pingMeanwhile(p, other);
    // then: the other addon's call is answered while the slow call still runs on the pool's threads
    assert.equal(pong.output, 'pong');
    assert.ok(waited < 200, `ping waited ${waited.toFixed(0)} ms behind the slow call`);
    assert.equal((await slow).output, 'done');
  });

  it('keeps a version that spins into its time limit on the pool for good, though its isolate is replaced', async () => {
    // given: one worker, and an addon that earns synchronous starts with quick calls, then spins
    // until its CPU limit (which replaces its isolate), again and again
    const p = await pool({ workers: 1 });
    const spinner = makeBundle(slowAddon, { limits: { cpuTimeMs: 300, timeoutMs: 2000 } });
    const other = makeBundle(slowAddon);
    await call(p, other, 'ping');
    for (let round = 0; round < MAX_SLOW_STARTS; round += 1) {
      for (let i = 0; i < FAST_STARTS_TO_SYNC + 1; i += 1) await call(p, spinner, 'ping');
      assert.equal((await codeOf(call(p, spinner, 'wait', { ms: 10_000 }))).code, 'EXECUTION_TIMEOUT');
    }
    // when: it earns its quick calls once more and spins again
    for (let i = 0; i < FAST_STARTS_TO_SYNC + 1; i += 1) await call(p, spinner, 'ping');
    const spin = codeOf(call(p, spinner, 'wait', { ms: 10_000 }));
    const { pong, waited } = await pingMeanwhile(p, other);
    // then: the spin runs on the pool's threads, and the other addon is answered meanwhile
    assert.equal(pong.output, 'pong');
    assert.ok(waited < 150, `ping waited ${waited.toFixed(0)} ms behind the spinning call`);
    assert.equal((await spin).code, 'EXECUTION_TIMEOUT');
  });

  it('refuses calls after close', async () => {
    const p = await pool({ workers: 1 });
    await p.close();
    assert.equal((await codeOf(call(p, makeBundle(slowAddon), 'ping'))).code, 'SERVICE_UNAVAILABLE');
  });
});
