// Issue 5 benchmark, live fan-out. Two server processes share PostgreSQL and Redis.
//  1. 1,000 events/s emitted through instance A for 10 s (each stored, then published) reach a
//     subscriber connected to instance B: latency from the emit request to the subscriber.
//  2. 1,000 subscribers on instance B receive 10 events/s each (10k deliveries/s).
// Usage: node --no-node-snapshot dist/bench/events-subscriptions.js  (BENCH_SECONDS, default 10)
import { performance } from 'node:perf_hooks';
import type WebSocket from 'ws';
import { gql, machine, startBenchServer, type BenchServer } from './support/bench-server.js';
import { EMIT, ms, openLoop, post, rawSubscriber, summary } from './events-common.js';
import { runMain } from './support/run-main.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const SUBSCRIBE = 'subscription($names: [String!]) { events(names: $names) { id name data } }';
// The 1,000 subscribers stand for 1,000 dashboards but share one key: the per-key live limits
// (sockets, results waiting) would measure that key, not the fan-out.
const ENV = {
  RATE_LIMIT_DEFAULT: '0',
  DATABASE_POOL_MAX: '20',
  LIVE_MAX_CONNECTIONS_PER_KEY: '100000',
  LIVE_MAX_BACKLOG_PER_KEY: '10000000',
};

/** An addon whose `burst` function emits `n` events at once with ctx.events.emit. */
const EMITTER = `module.exports = { functions: {
  burst: (d, ctx) => Promise.all(Array.from({ length: d.n }, (_, i) => ctx.events.emit('bench.tick', { sent: d.sent, i }))).then((r) => r.length),
} };`;
const BURST =
  'mutation($d: JSON!) { executeAddonFunction(addonId: "bench-emitter", function: "burst", data: $d) }';

async function installEmitter(server: BenchServer, siteKey: string): Promise<void> {
  const { createApiKey } = await gql<{ createApiKey: { key: string } }>(
    server.url,
    server.adminKey,
    'mutation { createApiKey(role: DEVELOPER, developerName: "bench") { key } }',
  );
  const manifest = {
    name: 'bench-emitter',
    version: '1.0.0',
    category: 'UTILITIES',
    permissions: ['events.emit'],
    functions: [{ name: 'burst' }],
    events: { emits: ['bench.tick'] },
    limits: { maxConcurrentCalls: 256 },
  };
  await gql(
    server.url,
    createApiKey.key,
    'mutation($i: RegisterAddonInput!) { registerAddon(input: $i) { addon { id } } }',
    {
      i: { manifest, source: EMITTER },
    },
  );
  await gql(server.url, siteKey, 'mutation { installAddon(id: "bench-emitter", config: {}) { success } }');
}

async function siteKey(server: BenchServer): Promise<string> {
  const { createSite } = await gql<{ createSite: { id: string } }>(
    server.url,
    server.adminKey,
    'mutation { createSite(name: "bench") { id } }',
  );
  const { createApiKey } = await gql<{ createApiKey: { key: string } }>(
    server.url,
    server.adminKey,
    'mutation($s: ID) { createApiKey(role: SITE, siteId: $s) { key } }',
    { s: createSite.id },
  );
  return createApiKey.key;
}

/** Subscribes `count` sockets on `url`, waits until a probe event reaches all of them. */
async function subscribers(
  url: string,
  emitUrl: string,
  key: string,
  count: number,
  onEvent: (data: { sent?: number; probe?: boolean }) => void,
): Promise<WebSocket[]> {
  const ready = new Set<number>();
  const sockets: WebSocket[] = [];
  for (let i = 0; i < count; i += 1) {
    sockets.push(
      await rawSubscriber(url, key, SUBSCRIBE, { names: ['bench.*'] }, (data) => {
        const event = (data.events as { data: { sent?: number; probe?: boolean } }).data;
        if (event.probe) ready.add(i);
        else onEvent(event);
      }),
    );
  }
  const deadline = Date.now() + 30_000;
  while (ready.size < count) {
    if (Date.now() > deadline) throw new Error(`only ${ready.size} of ${count} subscribers are listening`);
    await post(emitUrl, key, EMIT, { n: 'bench.probe', d: { probe: true } });
    await new Promise((r) => setTimeout(r, 200));
  }
  return sockets;
}

/**
 * `mode` mutation: one Mutation.emitEvent per event. `addon`: addon code emits 10 events per
 * executeAddonFunction call (ctx.events.emit), so the HTTP layer carries a tenth of the requests.
 */
async function crossInstance(
  a: BenchServer,
  b: BenchServer,
  key: string,
  mode: 'mutation' | 'addon',
  rate: number,
  seconds = SECONDS,
) {
  const latencies: number[] = [];
  const sockets = await subscribers(b.url, a.url, key, 1, (event) => {
    if (event.sent !== undefined) latencies.push(performance.now() - event.sent);
  });
  const started = performance.now();
  const { failures } =
    mode === 'mutation'
      ? await openLoop(rate, seconds, (i) =>
          post(a.url, key, EMIT, { n: 'bench.tick', d: { i, sent: performance.now() } }),
        )
      : await openLoop(rate / 10, seconds, () =>
          post(a.url, key, BURST, { d: { n: 10, sent: performance.now() } }),
        );
  const elapsed = (performance.now() - started) / 1000;
  await new Promise((r) => setTimeout(r, 1000));
  for (const s of sockets) s.close();
  return { mode, rate, sent: rate * seconds, failures, elapsed, ...summary(latencies) };
}

async function fanOut(a: BenchServer, b: BenchServer, key: string) {
  const latencies: number[] = [];
  const count = Number(process.env.BENCH_SUBSCRIBERS ?? 1000);
  const sockets = await subscribers(b.url, a.url, key, count, (event) => {
    if (event.sent !== undefined) latencies.push(performance.now() - event.sent);
  });
  const rate = 10;
  const { failures } = await openLoop(rate, SECONDS, (i) =>
    post(a.url, key, EMIT, { n: 'bench.fan', d: { i, sent: performance.now() } }),
  );
  await new Promise((r) => setTimeout(r, 2000));
  for (const s of sockets) s.close();
  return { subscribers: count, expected: count * rate * SECONDS, failures, ...summary(latencies) };
}

async function main(): Promise<void> {
  const a = await startBenchServer({ env: ENV });
  const b = await startBenchServer({ databaseUrl: a.databaseUrl, adminKey: a.adminKey, env: ENV });
  try {
    const key = await siteKey(a);
    await installEmitter(a, key);
    // Warm-up, not reported: both paths through fresh processes (JIT, caches, the emitter's isolate).
    await crossInstance(a, b, key, 'addon', 500, 2);
    await crossInstance(a, b, key, 'mutation', 500, 2);
    const crosses = [
      await crossInstance(a, b, key, 'addon', 1000),
      await crossInstance(a, b, key, 'mutation', Number(process.env.BENCH_MUTATION_RATE ?? 250)),
      await crossInstance(a, b, key, 'mutation', 1000),
    ];
    const fan = await fanOut(a, b, key);
    console.log(`\n## Events: live subscriptions (${await machine()})\n`);
    console.log(
      'Two server processes (NODE_ENV=production) sharing PostgreSQL and Redis; the load generator',
    );
    console.log(
      'and subscribers run in a third process. Emits are sent open loop, evenly spaced at the rate.\nLatency: emit request sent -> `next` received.\n',
    );
    console.log('| scenario | sent | received | p50 ms | p90 ms | p99 ms | max ms |');
    console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const cross of crosses) {
      const how =
        cross.mode === 'addon' ? 'ctx.events.emit, 10 per call' : 'Mutation.emitEvent, 1 per request';
      console.log(
        `| ${cross.rate} events/s for ${SECONDS} s via A (${how}), 1 subscriber on B | ${cross.sent} (${cross.failures} failed, done at ${(cross.sent / cross.elapsed).toFixed(0)}/s) | ${cross.count} | ${ms(cross.p50)} | ${ms(cross.p90)} | ${ms(cross.p99)} | ${ms(cross.max)} |`,
      );
    }
    console.log(
      `| 10 events/s via A, ${fan.subscribers} subscribers on B | ${fan.expected / fan.subscribers} × ${fan.subscribers} (${fan.failures} failed) | ${fan.count} | ${ms(fan.p50)} | ${ms(fan.p90)} | ${ms(fan.p99)} | ${ms(fan.max)} |`,
    );
  } finally {
    await b.stop();
    await a.stop();
  }
}

runMain(main);
