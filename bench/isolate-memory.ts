/**
 * Isolate memory and per-site cost: what one more site (or version) costs a worker in RSS and in
 * measured isolate memory, and what the first and later calls of a site take, with one worker.
 * It draws the figures of docs/decisions/0007-isolate-per-version-and-site.md.
 *
 * Run: npx tsc -p tsconfig.json && node --no-node-snapshot dist/bench/isolate-memory.js [sites]
 */
import { performance } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import { SandboxPool, type AddonBundle, type HostCapabilities } from '../src/sandbox/index.js';

const NO_CAPABILITIES = new Proxy({} as HostCapabilities, {
  get: () => () => Promise.reject(new Error('not used')),
});

/** A small but not trivial module: some top-level state per site, one function. */
const SOURCE = `const table = Array.from({ length: 200 }, (_, i) => ({ i, label: 'row ' + i }));
module.exports = { functions: { quote: (d) => ({ id: d.id, rows: table.length, total: d.qty * 3 }) } };`;

function bundle(): AddonBundle {
  return {
    versionId: randomUUID(),
    addonId: 'bench',
    addonName: 'bench',
    version: '1.0.0',
    source: SOURCE,
    permissions: [],
    limits: { maxConcurrentCalls: 256 },
    dependencies: {},
    httpAllow: [],
    emits: [],
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function worker(pool: SandboxPool) {
  await sleep(1200); // workers report stats every second
  const w = pool.stats().perWorker[0];
  return { rss: w.rssBytes, measured: w.isolateMemoryBytes, isolates: w.isolates };
}

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 200);
  const pool = new SandboxPool({ workers: 1, capabilities: NO_CAPABILITIES });
  await pool.start();
  const run = (b: AddonBundle, siteId: string) =>
    pool.execute({
      bundle: b,
      siteId,
      installationId: null,
      config: {},
      entry: { kind: 'function', name: 'quote' },
      input: { id: 'x', qty: 2 },
    });
  const timed = async (b: AddonBundle, siteId: string) => {
    const started = performance.now();
    await run(b, siteId);
    return performance.now() - started;
  };
  const one = bundle();
  for (let i = 0; i < 200; i += 1) await run(one, 'warmup');
  const base = await worker(pool);
  const cold: number[] = [];
  for (let i = 0; i < n; i += 1) cold.push(await timed(one, `site-${i}`));
  const sites = await worker(pool);
  const warmMany: number[] = [];
  for (let i = 0; i < n; i += 1) warmMany.push(await timed(one, `site-${i}`));
  const warmOne: number[] = [];
  for (let i = 0; i < n; i += 1) warmOne.push(await timed(one, 'warmup'));
  const versions = Array.from({ length: n }, () => bundle());
  const coldVersion: number[] = [];
  for (const v of versions) coldVersion.push(await timed(v, 'one-site'));
  const withVersions = await worker(pool);
  const mb = (bytes: number) => (bytes / 1024 / 1024).toFixed(2);
  const perSite = (sites.rss - base.rss) / n;
  const perVersion = (withVersions.rss - sites.rss) / n;
  console.log(
    `### Isolate memory and per-site cost (${n} sites of one version, then ${n} versions; 1 worker)\n`,
  );
  console.log('| figure | value |');
  console.log('| --- | --- |');
  console.log(`| worker RSS per extra site (isolate) | ${mb(perSite)} MB |`);
  console.log(`| worker RSS per extra version (isolate) | ${mb(perVersion)} MB |`);
  console.log(
    `| measured isolate memory per isolate (heap + external) | ${mb(withVersions.measured / withVersions.isolates)} MB |`,
  );
  console.log(`| isolates kept | ${withVersions.isolates} |`);
  console.log(`| first call of a new site, p50 | ${median(cold).toFixed(2)} ms |`);
  console.log(`| first call of a new version, p50 | ${median(coldVersion).toFixed(2)} ms |`);
  console.log(`| warm call, ${n} sites round-robin, p50 | ${median(warmMany).toFixed(3)} ms |`);
  console.log(`| warm call, one site, p50 | ${median(warmOne).toFixed(3)} ms |`);
  await pool.close();
}

await main();
