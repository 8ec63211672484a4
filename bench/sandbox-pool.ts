/**
 * Sandbox pool benchmark: warm-call latency and throughput of a small function with about 1 KB of JSON
 * in and out, and cold-start time (first call of a new version, and of a new site on a warm version).
 *
 * Run: npx tsc -p tsconfig.json && node --no-node-snapshot dist/bench/sandbox-pool.js
 */
import { performance } from 'node:perf_hooks';
import { randomUUID } from 'node:crypto';
import {
  SandboxPool,
  type AddonBundle,
  type ExecutionRequest,
  type HostCapabilities,
} from '../src/sandbox/index.js';

const noCapabilities: HostCapabilities = {
  storageGet: async () => null,
  storageSet: async () => undefined,
  storageDelete: async () => false,
  storageList: async () => ({ keys: [], cursor: null }),
  emitEvent: async () => ({ id: 'e' }),
  callAddon: async () => null,
};

const SOURCE = `module.exports = { functions: { quote: (order) => ({
  id: order.id, currency: order.currency,
  lines: order.lines.map((l) => ({ sku: l.sku, qty: l.qty, price: l.price, total: Math.round(l.qty * l.price * 100) / 100, note: l.note })),
  total: order.lines.reduce((s, l) => s + l.qty * l.price, 0),
}) } };`;

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

const INPUT = {
  id: 'order-1',
  currency: 'EUR',
  lines: Array.from({ length: 12 }, (_, i) => ({
    sku: `SKU-${1000 + i}`,
    qty: i + 1,
    price: 9.99 + i,
    note: 'gift wrap',
  })),
};

function request(b: AddonBundle, siteId = 'site-1'): ExecutionRequest {
  return {
    bundle: b,
    siteId,
    installationId: null,
    config: null,
    entry: { kind: 'function', name: 'quote' },
    input: INPUT,
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function summary(samples: number[]): { p50: number; p99: number; mean: number } {
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    p50: percentile(sorted, 50),
    p99: percentile(sorted, 99),
    mean: samples.reduce((s, v) => s + v, 0) / samples.length,
  };
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const start = performance.now();
  await fn();
  return performance.now() - start;
}

async function main(): Promise<void> {
  const pool = new SandboxPool({ workers: 2, capabilities: noCapabilities });
  await pool.start();
  const warm = bundle();
  const inBytes = Buffer.byteLength(JSON.stringify(INPUT));
  const first = await pool.execute(request(warm));
  const outBytes = Buffer.byteLength(JSON.stringify(first.output));

  for (let i = 0; i < 3000; i++) await pool.execute(request(warm));

  const sequential: number[] = [];
  const inWorker: number[] = [];
  for (let i = 0; i < 5000; i++) {
    const start = performance.now();
    const result = await pool.execute(request(warm));
    sequential.push(performance.now() - start);
    inWorker.push(result.durationMs);
  }

  const concurrency = 16;
  const durationMs = 3000;
  let done = 0;
  const concurrent: number[] = [];
  const until = performance.now() + durationMs;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < until) {
        concurrent.push(await timed(() => pool.execute(request(warm))));
        done += 1;
      }
    }),
  );
  const throughput = done / ((performance.now() - started) / 1000);

  const coldVersion: number[] = [];
  for (let i = 0; i < 60; i++) {
    const fresh = bundle();
    coldVersion.push(await timed(() => pool.execute(request(fresh))));
  }
  const coldSite: number[] = [];
  for (let i = 0; i < 60; i++) coldSite.push(await timed(() => pool.execute(request(warm, `site-${i}`))));

  await pool.close();

  const rows: [string, { p50: number; p99: number; mean: number }, string][] = [
    ['warm call, sequential (round trip)', summary(sequential), `${sequential.length} calls`],
    ['  of which inside the worker', summary(inWorker), 'durationMs'],
    [`warm call, ${concurrency} concurrent`, summary(concurrent), `${Math.round(throughput)} calls/s`],
    ['cold start: first call of a new version', summary(coldVersion), `${coldVersion.length} versions`],
    ['cold start: new site on a warm version', summary(coldSite), `${coldSite.length} sites`],
  ];
  const fmt = (n: number) => n.toFixed(3);
  console.log(
    `Sandbox pool, 2 workers, Node ${process.version}; input ${inBytes} B JSON, output ${outBytes} B JSON.\n`,
  );
  console.log('| scenario | p50 ms | p99 ms | mean ms | notes |');
  console.log('| --- | ---: | ---: | ---: | --- |');
  for (const [name, s, note] of rows)
    console.log(`| ${name} | ${fmt(s.p50)} | ${fmt(s.p99)} | ${fmt(s.mean)} | ${note} |`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
