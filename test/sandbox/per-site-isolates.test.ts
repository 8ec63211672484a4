import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { SandboxPool, SandboxPoolOptions } from '../../src/sandbox/index.js';
import { call, codeOf, createPool, makeBundle, MemoryCapabilities } from './helpers.js';
import { honestTraffic, outcomes, pids, spinnerSource } from './neighbour-helpers.js';

const pools: SandboxPool[] = [];
async function pool(opts: Partial<SandboxPoolOptions> = {}): Promise<SandboxPool> {
  const created = createPool(new MemoryCapabilities(), opts);
  pools.push(created);
  await created.start();
  return created;
}
after(() => Promise.all(pools.map((p) => p.close())));

describe('one isolate per version and site (issue 28 item 3b)', () => {
  it("never fails site C's calls for a timeout caused by site A's input on the same version", async () => {
    // given: one version installed on sites A and C, with a 600 ms time limit, one worker
    const p = await pool({ workers: 1 });
    const shared = makeBundle(spinnerSource, {
      permissions: ['storage.read'],
      limits: { timeoutMs: 600, cpuTimeMs: 600, maxConcurrentCalls: 64 },
    });
    await call(p, shared, 'ping', null, { siteId: 'C' });
    const before = pids(p);
    // when: site C calls it throughout while site A's inputs make it spin past its limit, and
    // run out of memory
    const traffic = honestTraffic(p, shared, 'C', 5);
    const spins = await outcomes([
      call(p, shared, 'spinAfterSdk', { ms: 5000 }, { siteId: 'A' }),
      call(p, shared, 'spin', { ms: 5000 }, { siteId: 'A' }),
      call(p, shared, 'spinAsync', { ms: 5000 }, { siteId: 'A' }),
    ]);
    const grown = await codeOf(call(p, shared, 'grow', { buffers: 32 }, { siteId: 'A2' }));
    const seen = await traffic.stop();
    // then: site A's calls fail with their own errors, site C's all succeed, on the same worker
    assert.deepEqual(spins, ['EXECUTION_TIMEOUT', 'EXECUTION_TIMEOUT', 'EXECUTION_TIMEOUT']);
    // (near its heap limit, V8's garbage collection may use up the 600 ms first)
    assert.ok(['MEMORY_LIMIT_EXCEEDED', 'EXECUTION_TIMEOUT'].includes(grown.code), grown.code);
    assert.deepEqual(seen.failures, []);
    assert.ok(seen.ok >= 5, `only ${seen.ok} calls of site C ran`);
    assert.deepEqual(pids(p), before);
    // and site A recovers on a fresh isolate
    assert.equal((await call(p, shared, 'ping', null, { siteId: 'A' })).output, 'pong');
  });

  it("does not queue site C's calls behind site A's slow calls of the same version", async () => {
    // given: one worker, one version on sites A and C
    const p = await pool({ workers: 1 });
    const shared = makeBundle(spinnerSource, {
      limits: { timeoutMs: 10_000, cpuTimeMs: 10_000, maxConcurrentCalls: 64 },
    });
    await call(p, shared, 'ping', null, { siteId: 'A' });
    await call(p, shared, 'ping', null, { siteId: 'C' });
    // when: site A sends six 800 ms calls (they run one after the other in A's isolate), then
    // site C calls five times in a row
    let aDone = 0;
    const slow = Array.from({ length: 6 }, () =>
      call(p, shared, 'spinAsync', { ms: 800 }, { siteId: 'A' }).then((r) => {
        aDone += 1;
        return r;
      }),
    );
    const cOutputs: unknown[] = [];
    for (let i = 0; i < 5; i += 1)
      cOutputs.push((await call(p, shared, 'ping', null, { siteId: 'C' })).output);
    const aDoneWhenCFinished = aDone;
    // then: C's calls all finished before most of A's (sharing A's isolate, they would wait for all six)
    assert.deepEqual(cOutputs, Array(5).fill('pong'));
    assert.ok(aDoneWhenCFinished <= 2, `${aDoneWhenCFinished} of site A's slow calls finished first`);
    assert.deepEqual(await outcomes(slow), Array(6).fill('spun'));
  });

  it('keeps each site of a version in its own isolate, reported in the stats', async () => {
    const p = await pool({ workers: 1 });
    const shared = makeBundle(spinnerSource);
    for (const site of ['A', 'B', 'C']) await call(p, shared, 'ping', null, { siteId: site });
    const stats = p.stats();
    assert.equal(stats.isolates, 3);
    assert.equal(stats.contexts, 3);
    assert.ok(stats.memoryPerIsolateBytes > 100_000 && stats.memoryPerIsolateBytes < 16 * 1024 * 1024);
  });
});

describe('isolates budgeted by measured memory (issue 33 items 1 and 2)', () => {
  it('keeps hundreds of sites of one addon and hundreds of versions warm, with no cliff at 64', async () => {
    // given: the default budget (a share of this machine's memory) and two workers
    const p = await pool({ workers: 2 });
    const addon = makeBundle(spinnerSource);
    const versions = Array.from({ length: 200 }, () => makeBundle(spinnerSource));
    const sites = Array.from({ length: 200 }, (_, i) => `site-${i}`);
    // when: one addon is called on 200 sites, and 200 versions on one site, round-robin, twice
    for (const siteId of sites) await call(p, addon, 'ping', null, { siteId });
    for (const v of versions) await call(p, v, 'ping', null, { siteId: 'one-site' });
    let cold = 0;
    for (const siteId of sites) if ((await call(p, addon, 'ping', null, { siteId })).cold) cold += 1;
    for (const v of versions) if ((await call(p, v, 'ping', null, { siteId: 'one-site' })).cold) cold += 1;
    // then: the second pass finds every isolate warm (the reservation rule kept 64)
    assert.equal(cold, 0);
    const stats = p.stats();
    assert.ok(stats.isolates >= 400 * 0.99, `${stats.isolates} isolates kept`);
  });

  it('evicts the least recently used idle isolates to stay within a small budget', async () => {
    // given: a 10 MB budget per worker (~5 isolates of ~1.5-2 MB)
    const p = await pool({ workers: 1, isolateMemoryBudgetMb: 10 });
    const bundle = makeBundle(spinnerSource, { limits: { memoryMb: 128 } });
    // when: 30 sites are called in turn
    for (let i = 0; i < 30; i += 1) await call(p, bundle, 'ping', null, { siteId: `s${i}` });
    await new Promise((resolve) => setTimeout(resolve, 50));
    // then: the measured total stays within the budget; the latest sites are warm, the first not
    const stats = p.stats();
    assert.ok(stats.isolates >= 2 && stats.isolates < 30, `${stats.isolates} isolates`);
    assert.ok(stats.isolateMemoryBytes <= 10 * 1024 * 1024);
    assert.equal((await call(p, bundle, 'ping', null, { siteId: 's29' })).cold, false);
    assert.equal((await call(p, bundle, 'ping', null, { siteId: 's0' })).cold, true);
  });
});
