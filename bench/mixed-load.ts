// Issue 7 benchmark: a mixed load at a fixed (open-loop) rate against one server process sharing
// PostgreSQL and Redis: catalogue queries, cached widget renders, addon executions and emitted
// events (each delivered to a subscribing handler). Reports p50/p99 per operation (after the
// server's first seconds under load, which are reported apart), errors, and the
// server's resident memory sampled every 5 s (flat after warm-up = no leak at this rate).
// Run: node --no-node-snapshot dist/bench/mixed-load.js  (BENCH_SECONDS default 60, BENCH_RATE 200)
import { performance } from 'node:perf_hooks';
import { gql, machine, percentile, startBenchServer, givenBenchSite } from './support/bench-server.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 60);
const RATE = Number(process.env.BENCH_RATE ?? 200);
const TICK_MS = 10;
/** Memory is compared from here on: JIT, isolates, pools and caches have filled by then. */
const WARMUP_SECONDS = Math.min(20, SECONDS / 3);
/**
 * Latencies of requests scheduled before this are reported apart: in its first seconds under load
 * a fresh server compiles (JIT) and opens its pools, and its event loop stalls for up to ~250 ms.
 */
const WARMUP_LATENCY_SECONDS = Math.min(5, SECONDS / 6);

const SOURCE = `module.exports = {
  functions: {
    quote: (data, ctx) => ({ sku: data.sku, price: data.qty * 1250, currency: ctx.config.currency }),
  },
  widgets: {
    'price-tag': (config, context, ctx) => ctx.html\`<p class="price">\${config.label}: \${context.sku}</p>\`,
  },
  handlers: {
    onOrder: async (event, ctx) => { await ctx.storage.set('last-order', event.data.orderId); },
  },
};`;

const MANIFEST = {
  name: 'bench-shop',
  version: '1.0.0',
  category: 'ECOMMERCE',
  permissions: ['storage.read', 'storage.write'],
  configSchema: { type: 'object', properties: { currency: { type: 'string', default: 'EUR' } } },
  widgets: [
    {
      name: 'price-tag',
      category: 'DISPLAY',
      varyOn: ['sku'],
      configSchema: { type: 'object', properties: { label: { type: 'string', default: 'Price' } } },
    },
  ],
  functions: [{ name: 'quote', readonly: true }],
  events: { handles: { 'order.created': 'onOrder' } },
};

interface Operation {
  name: string;
  /** Share of the rate, out of 10. */
  weight: number;
  send(i: number): Promise<Response>;
}

async function main(): Promise<void> {
  // The limiter is on (its Redis round trip is part of every request) with room for the rate.
  const server = await startBenchServer({ env: { DELIVERY_CONCURRENCY: '8' } });
  const { url, adminKey } = server;
  const rssSamples: { second: number; rssMb: number; heapMb: number }[] = [];
  try {
    const { devKey: dev, siteKey } = await givenBenchSite(url, adminKey);
    await gql(url, dev, 'mutation($i: RegisterAddonInput!) { registerAddon(input: $i) { addon { id } } }', {
      i: { manifest: MANIFEST, source: SOURCE },
    });
    await gql(url, siteKey, 'mutation { installAddon(id: "bench-shop", config: {}) { success } }');

    const headers = { 'content-type': 'application/json', authorization: `Bearer ${siteKey}` };
    const post = (body: unknown) =>
      fetch(`${url}/graphql`, { method: 'POST', headers, body: JSON.stringify(body) });
    const skus = Array.from({ length: 20 }, (_, i) => `sku-${i}`);
    const operations: Operation[] = [
      {
        name: 'catalogue query (`addons` with widgets)',
        weight: 4,
        send: () =>
          post({
            query:
              'query Catalogue { addons(first: 10) { totalCount edges { node { name version widgets { name } apis { name } } } } }',
          }),
      },
      {
        name: 'cached render (`GET /api/widgets/...`)',
        weight: 3,
        send: (i) =>
          fetch(
            `${url}/api/widgets/bench-shop/price-tag?config=%7B%7D&context=${encodeURIComponent(JSON.stringify({ sku: skus[i % skus.length] }))}`,
            { headers },
          ),
      },
      {
        name: 'execution (`executeAddonFunction`)',
        weight: 2,
        send: (i) =>
          post({
            query:
              'query Quote($d: JSON!) { executeAddonFunction(addonId: "bench-shop", function: "quote", data: $d) }',
            variables: { d: { sku: skus[i % skus.length], qty: (i % 5) + 1 } },
          }),
      },
      {
        name: 'event (`emitEvent`, one delivery each)',
        weight: 1,
        send: (i) =>
          post({
            query: 'mutation Emit($d: JSON!) { emitEvent(name: "order.created", data: $d) { id } }',
            variables: { d: { orderId: `o-${i}` } },
          }),
      },
    ];
    const schedule = operations.flatMap((op) => Array.from({ length: op.weight }, () => op));

    // Warm-up: fill the render cache and start the isolates, outside the measured window.
    for (let i = 0; i < 40; i += 1) await schedule[i % schedule.length].send(i);

    const latencies = new Map<string, number[]>(operations.map((op) => [op.name, []]));
    const warmupLatencies: number[] = [];
    const errors = new Map<string, number>(operations.map((op) => [op.name, 0]));
    const firstErrors: string[] = [];
    const pending = new Set<Promise<void>>();
    const perTick = (RATE * TICK_MS) / 1000;
    const started = performance.now();
    let sent = 0;
    let lastSample = -5;
    const end = started + SECONDS * 1000;
    for (let tick = 0; ; tick += 1) {
      const due = started + tick * TICK_MS;
      if (due >= end) break;
      const wait = due - performance.now();
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      const target = Math.floor((tick + 1) * perTick);
      while (sent < target) {
        const i = sent;
        sent += 1;
        const op = schedule[i % schedule.length];
        // Latency counts from the scheduled time, so a stalled server cannot hide queueing
        // (no coordinated omission).
        const scheduled = due;
        const request = op
          .send(i)
          .then(async (response) => {
            const text = await response.text();
            const failed = !response.ok || text.includes('"errors"');
            if (failed) {
              errors.set(op.name, (errors.get(op.name) ?? 0) + 1);
              if (firstErrors.length < 3)
                firstErrors.push(`${op.name}: ${response.status} ${text.slice(0, 200)}`);
            }
            const latency = performance.now() - scheduled;
            if (scheduled - started < WARMUP_LATENCY_SECONDS * 1000) warmupLatencies.push(latency);
            else latencies.get(op.name)!.push(latency);
          })
          .catch((error: unknown) => {
            errors.set(op.name, (errors.get(op.name) ?? 0) + 1);
            if (firstErrors.length < 3) firstErrors.push(`${op.name}: ${String(error)}`);
          });
        const tracked = request.finally(() => pending.delete(tracked));
        pending.add(tracked);
      }
      const second = Math.floor((performance.now() - started) / 1000);
      if (second - lastSample >= 5) {
        lastSample = second;
        void fetch(`${url}/metrics`)
          .then((r) => r.text())
          .then((text) => {
            const rss = Number(/^process_resident_memory_bytes (\d+)/m.exec(text)?.[1] ?? NaN);
            const heap = Number(/^nodejs_heap_size_used_bytes (\d+)/m.exec(text)?.[1] ?? NaN);
            rssSamples.push({ second, rssMb: rss / 2 ** 20, heapMb: heap / 2 ** 20 });
          });
      }
    }
    await Promise.all(pending);
    const elapsed = (performance.now() - started) / 1000;

    // Deliveries keep up: every emitted event's delivery succeeds shortly after the load stops.
    const emitted = Math.floor(sent / schedule.length);
    const drainStarted = performance.now();
    let backlog = -1;
    for (;;) {
      const text = await (await fetch(`${url}/metrics`)).text();
      const pendingCount = Number(
        /^event_deliveries_backlog\{status="PENDING"\} (\d+)/m.exec(text)?.[1] ?? NaN,
      );
      const running = Number(/^event_deliveries_backlog\{status="RUNNING"\} (\d+)/m.exec(text)?.[1] ?? NaN);
      backlog = pendingCount + running;
      if (backlog === 0 || performance.now() - drainStarted > 30_000) break;
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
    const drainMs = performance.now() - drainStarted;

    rssSamples.sort((a, b) => a.second - b.second);
    const afterWarmup = rssSamples.filter((s) => s.second >= WARMUP_SECONDS);
    const rows = operations.map((op) => {
      const values = latencies.get(op.name)!.sort((a, b) => a - b);
      return `| ${op.name} | ${values.length} | ${errors.get(op.name)} | ${percentile(values, 50).toFixed(2)} | ${percentile(values, 99).toFixed(2)} | ${values[values.length - 1]?.toFixed(1)} |`;
    });
    const totalErrors = [...errors.values()].reduce((a, b) => a + b, 0);
    console.log(`\n## Mixed load, ${SECONDS} s at ${RATE} requests/s (${await machine()})\n`);
    console.log(
      'One server process (production mode, rate limiter on) on the shared PostgreSQL and Redis; the load',
    );
    console.log(
      'generator is open loop (requests leave on schedule whatever the answers do; latency counts from the',
    );
    console.log(
      'scheduled time). Mix per 10 requests: 4 catalogue queries, 3 cached REST renders (20 contexts),',
    );
    console.log(
      '2 readonly executions, 1 emitted event whose delivery runs a handler writing addon storage.\n',
    );
    console.log(
      `Latencies of the requests scheduled after the first ${WARMUP_LATENCY_SECONDS} s (the server warming up under load):\n`,
    );
    console.log('| operation | requests | errors | p50 ms | p99 ms | max ms |');
    console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
    for (const row of rows) console.log(row);
    warmupLatencies.sort((a, b) => a - b);
    console.log(
      `\nThe ${warmupLatencies.length} requests of the first ${WARMUP_LATENCY_SECONDS} s, all operations: p50 ${percentile(warmupLatencies, 50).toFixed(2)} ms, p99 ${percentile(warmupLatencies, 99).toFixed(2)} ms, max ${warmupLatencies.at(-1)?.toFixed(1)} ms.\n`,
    );
    console.log('| measure | value |');
    console.log('| --- | ---: |');
    console.log(`| requests sent / achieved rate | ${sent} / ${(sent / elapsed).toFixed(0)} per s |`);
    console.log(`| errors | ${totalErrors} |`);
    console.log(
      `| events emitted / delivery backlog after the load | ${emitted} / ${backlog} (drained in ${drainMs.toFixed(0)} ms) |`,
    );
    const at = rssSamples.map((sample) => `${sample.second}s`).join(', ');
    console.log(`| server RSS, MB at ${at} | ${rssSamples.map((x) => x.rssMb.toFixed(0)).join(', ')} |`);
    console.log(
      `| server V8 heap used, MB at ${at} | ${rssSamples.map((x) => x.heapMb.toFixed(0)).join(', ')} |`,
    );
    if (afterWarmup.length >= 2) {
      const first = afterWarmup[0];
      const last = afterWarmup[afterWarmup.length - 1];
      const heaps = afterWarmup.map((x) => x.heapMb);
      console.log(
        `| after warm-up (${first.second}s -> ${last.second}s): RSS change / heap used range | ${(last.rssMb - first.rssMb).toFixed(1)} MB / ${Math.min(...heaps).toFixed(0)}-${Math.max(...heaps).toFixed(0)} MB |`,
      );
    }
    if (firstErrors.length > 0)
      console.log(`\nFirst errors:\n\n${firstErrors.map((e) => `- ${e}`).join('\n')}`);
  } finally {
    await server.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
