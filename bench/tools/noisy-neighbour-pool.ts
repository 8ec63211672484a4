// `node --no-node-snapshot dist/bench/tools/noisy-neighbour-pool.js [dist root]`: the supervisor
// side of issue 28 in one process, against the SandboxPool of this build or of another build's
// dist folder (e.g. a worktree of the base commit built with tsc), to compare before and after.
//
// Each scenario runs an honest addon on site B (4 callers, a call every 10 ms each, 5 s time limit) while a
// hostile load runs on site A, and prints B's success and latency, and what the load got:
// - quiet: nothing else;
// - wasm: an addon keeps new WebAssembly.Memory({ initial: 4096 }) objects (64 MB limit), 8 calls;
// - stall: worker 0 stops answering (SIGSTOP) for 4 s with a call of a hostile version in flight
//   there (as a spinning isolate holding its event loop would), the honest version homed there too;
// - flood: site A sends 20 three-second calls (and keeps sending) to an addon site C also uses;
//   C calls it 5 times.
// The numbers move with the machine's load: compare runs made one after the other, not across days.
import { performance } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { AddonBundle, HostCapabilities, SandboxPool } from '../../src/sandbox/index.js';

type PoolModule = typeof import('../../src/sandbox/index.js');
type SupervisorModule = typeof import('../../src/sandbox/worker-supervisor.js');

const distRoot = path.resolve(process.argv[2] ?? path.join(import.meta.dirname, '../..'));
const { SandboxPool: Pool } = (await import(
  pathToFileURL(path.join(distRoot, 'src/sandbox/index.js')).href
)) as PoolModule;
const { homeSlot } = (await import(
  pathToFileURL(path.join(distRoot, 'src/sandbox/worker-supervisor.js')).href
)) as SupervisorModule;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
let storageDelayMs = 0;
const capabilities: HostCapabilities = {
  storageGet: async () => {
    await sleep(storageDelayMs);
    return null;
  },
  storageSet: async () => undefined,
  storageDelete: async () => false,
  storageList: async () => ({ keys: [], cursor: null }),
  emitEvent: async () => ({ id: 'e' }),
  callAddon: async () => null,
};

function bundle(source: string, overrides: Partial<AddonBundle> = {}, homedOn?: number): AddonBundle {
  for (;;) {
    const b: AddonBundle = {
      versionId: randomUUID(),
      addonId: overrides.addonName ?? randomUUID(),
      addonName: 'bench',
      version: '1.0.0',
      source,
      permissions: ['storage.read'],
      limits: {},
      dependencies: {},
      httpAllow: [],
      emits: [],
      ...overrides,
    };
    if (homedOn === undefined || homeSlot(b.versionId, 2) === homedOn) return b;
  }
}

const honestSource = `module.exports = { functions: { ping: (d) => ({ ok: true, n: d.n }) } };`;

const call = (pool: SandboxPool, b: AddonBundle, name: string, siteId: string, input: unknown = null) =>
  pool.execute({
    bundle: b,
    siteId,
    installationId: null,
    config: null,
    entry: { kind: 'function', name },
    input,
  });

/** Calls the honest addon on site B from 4 callers until stopped: successes and latencies. */
function honestLoad(pool: SandboxPool, b: AddonBundle) {
  let running = true;
  const latencies: number[] = [];
  let failures = 0;
  const loops = Array.from({ length: 4 }, async (_, i) => {
    while (running) {
      const started = performance.now();
      try {
        await call(pool, b, 'ping', 'site-B', { n: i });
        latencies.push(performance.now() - started);
      } catch {
        failures += 1;
      }
      await sleep(10);
    }
  });
  return async () => {
    running = false;
    await Promise.all(loops);
    latencies.sort((x, y) => x - y);
    const q = (p: number) =>
      latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN;
    return { calls: latencies.length + failures, failures, p50: q(0.5), p99: q(0.99) };
  };
}

async function scenario(
  name: string,
  load: (pool: SandboxPool, honest: AddonBundle) => Promise<string>,
  honestHome?: number,
) {
  const pool = new Pool({
    workers: 2,
    capabilities,
    spillAfterMs: honestHome === undefined ? undefined : 60_000,
  });
  await pool.start();
  // 5 s: long enough that a call stuck on a stopped worker can still run again elsewhere.
  const honest = bundle(honestSource, { limits: { timeoutMs: 5000 } }, honestHome);
  await call(pool, honest, 'ping', 'site-B', { n: 0 });
  const stop = honestLoad(pool, honest);
  let what: string;
  try {
    what = await load(pool, honest);
  } catch (err) {
    what = `load failed: ${(err as Error).message}`;
  }
  const b = await stop();
  const rssMb = Math.max(...pool.stats().perWorker.map((w) => w.rssBytes)) / 1048576;
  await pool.close();
  const success = ((100 * (b.calls - b.failures)) / b.calls).toFixed(1);
  console.log(
    `| ${name} | ${b.calls} | ${success} % | ${b.p50.toFixed(2)} | ${b.p99.toFixed(1)} | ${rssMb.toFixed(0)} | ${what} |`,
  );
}

console.log(`SandboxPool from ${distRoot}, Node ${process.version}\n`);
console.log(
  '| scenario | B calls | B success | B p50 ms | B p99 ms | max worker RSS MB at end | the load on A |',
);
console.log('| --- | ---: | ---: | ---: | ---: | ---: | --- |');

await scenario('quiet', async () => {
  await sleep(4000);
  return '-';
});

await scenario('wasm', async (pool) => {
  const hostile = bundle(`module.exports = { functions: { keep: () => {
    globalThis.kept = globalThis.kept || [];
    const m = new WebAssembly.Memory({ initial: 4096 });
    new Uint8Array(m.buffer).fill(1);
    globalThis.kept.push(m);
    return globalThis.kept.length;
  } } };`);
  const codes: string[] = [];
  let peakMb = 0;
  for (let i = 0; i < 8; i += 1) {
    codes.push(
      await call(pool, hostile, 'keep', 'site-A').then(
        () => 'ok',
        (err: { code: string }) => err.code,
      ),
    );
    peakMb = Math.max(peakMb, ...pool.stats().perWorker.map((w) => w.rssBytes / 1048576));
  }
  await sleep(1500);
  peakMb = Math.max(peakMb, ...pool.stats().perWorker.map((w) => w.rssBytes / 1048576));
  const counts = [...new Set(codes)].map((c) => `${codes.filter((x) => x === c).length}x ${c}`).join(', ');
  return `8 calls: ${counts}; peak worker RSS ${peakMb.toFixed(0)} MB`;
});

await scenario(
  'stall',
  async (pool) => {
    storageDelayMs = 100;
    const hostile = bundle(
      `module.exports = { functions: { read: async (d, ctx) => { await ctx.storage.get('k'); return 1; } } };`,
      { limits: { timeoutMs: 1000 } },
      0,
    );
    await call(pool, hostile, 'read', 'site-A');
    const pid = pool.stats().perWorker[0].pid!;
    const pending = call(pool, hostile, 'read', 'site-A').then(
      () => 'ok',
      (err: { code: string }) => err.code,
    );
    await sleep(20);
    process.kill(pid, 'SIGSTOP');
    await sleep(4000);
    try {
      process.kill(pid, 'SIGCONT');
    } catch {
      // replaced already
    }
    storageDelayMs = 0;
    return `hostile call: ${await pending}; worker 0 replaced: ${pool.stats().perWorker[0].pid !== pid}`;
  },
  0,
);

await scenario('flood', async (pool) => {
  storageDelayMs = 3000;
  const shared = bundle(
    `module.exports = { functions: { slow: async (d, ctx) => { await ctx.storage.get('k'); return 1; }, quick: () => 2 } };`,
    { addonName: 'shared', limits: { timeoutMs: 8000, maxConcurrentCalls: 16 } },
  );
  const first = Array.from({ length: 20 }, () =>
    call(pool, shared, 'slow', 'site-A').then(
      () => 'ok',
      (err: { code: string }) => err.code,
    ),
  );
  await sleep(100);
  let flooding = true;
  const flood = (async () => {
    while (flooding) {
      await call(pool, shared, 'slow', 'site-A').catch(() => undefined);
      await sleep(20);
    }
  })();
  const c: string[] = [];
  const waits: number[] = [];
  for (let i = 0; i < 5; i += 1) {
    const started = performance.now();
    c.push(
      await call(pool, shared, 'quick', 'site-C').then(
        () => 'ok',
        (err: { code: string }) => err.code,
      ),
    );
    waits.push(performance.now() - started);
    await sleep(100);
  }
  flooding = false;
  await flood;
  const firstCodes = await Promise.all(first);
  storageDelayMs = 0;
  return `A's first 20: ${firstCodes.filter((x) => x === 'ok').length} ran; C: ${c.join(', ')} (waited ${waits.map((w) => Math.round(w)).join(', ')} ms)`;
});
