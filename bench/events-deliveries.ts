// Issue 5 benchmark, deliveries to addon handlers (one server process, PostgreSQL, Redis).
//  1. 500 events/s for 10 s emitted through the API, each delivered to a trivial handler: the
//     backlog (PENDING + RUNNING) sampled every second must not grow.
//  2. Ceiling: 20,000 deliveries stored at once (SQL), drained by the workers: deliveries/s.
// Usage: node --no-node-snapshot dist/bench/events-deliveries.js  (BENCH_SECONDS, default 10)
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { gql, machine, startBenchServer, type BenchServer } from './support/bench-server.js';
import { EMIT, openLoop, post } from './events-common.js';
import { runMain } from './support/run-main.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const RATE = Number(process.env.BENCH_RATE ?? 500);
const CEILING_DELIVERIES = Number(process.env.BENCH_CEILING ?? 20_000);
const CONCURRENCY = process.env.DELIVERY_CONCURRENCY ?? '32';
const HANDLER = `module.exports = { handlers: { onOrder: (event) => ({ ok: event.id }) } };`;

async function setUp(server: BenchServer): Promise<{ siteId: string; key: string }> {
  const { createSite } = await gql<{ createSite: { id: string } }>(
    server.url,
    server.adminKey,
    'mutation { createSite(name: "bench") { id } }',
  );
  const key = async (variables: Record<string, unknown>) =>
    (
      await gql<{ createApiKey: { key: string } }>(
        server.url,
        server.adminKey,
        'mutation($r: ApiKeyRole!, $s: ID, $d: String) { createApiKey(role: $r, siteId: $s, developerName: $d) { key } }',
        variables,
      )
    ).createApiKey.key;
  const siteKey = await key({ r: 'SITE', s: createSite.id });
  const devKey = await key({ r: 'DEVELOPER', d: 'bench' });
  const manifest = {
    name: 'bench-orders',
    version: '1.0.0',
    category: 'UTILITIES',
    events: { handles: { 'order.*': 'onOrder' } },
    limits: { maxConcurrentCalls: 256 },
  };
  await gql(
    server.url,
    devKey,
    'mutation($i: RegisterAddonInput!) { registerAddon(input: $i) { addon { id } } }',
    {
      i: { manifest, source: HANDLER },
    },
  );
  await gql(server.url, siteKey, 'mutation { installAddon(id: "bench-orders", config: {}) { success } }');
  return { siteId: createSite.id, key: siteKey };
}

async function counts(db: pg.Client): Promise<{ unfinished: number; succeeded: number; dead: number }> {
  const { rows } = await db.query<{ status: string; n: string }>(
    `SELECT status, count(*) AS n FROM "Delivery" GROUP BY status`,
  );
  const of = (s: string) => Number(rows.find((r) => r.status === s)?.n ?? 0);
  return { unfinished: of('PENDING') + of('RUNNING'), succeeded: of('SUCCEEDED'), dead: of('DEAD') };
}

/** Deliveries not finished yet (an index scan: the poll must not compete with the workers). */
async function unfinished(db: pg.Client): Promise<number> {
  const { rows } = await db.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM "Delivery" WHERE status = 'PENDING' OR status = 'RUNNING'`,
  );
  return rows[0].n;
}

async function drained(db: pg.Client, timeoutMs: number): Promise<number> {
  const started = performance.now();
  while ((await unfinished(db)) > 0) {
    if (performance.now() - started > timeoutMs) return NaN;
    await new Promise((r) => setTimeout(r, 50));
  }
  return performance.now() - started;
}

async function main(): Promise<void> {
  const server = await startBenchServer({
    env: {
      RATE_LIMIT_DEFAULT: '0',
      DELIVERY_CONCURRENCY: CONCURRENCY,
      DELIVERY_POLL_MS: '200',
      DATABASE_POOL_MAX: '20',
    },
  });
  const db = new pg.Client({ connectionString: server.databaseUrl });
  await db.connect();
  try {
    const { siteId, key } = await setUp(server);

    // 1. sustained load
    const samples: { second: number; backlog: number; succeeded: number }[] = [];
    const sampler = setInterval(() => {
      void counts(db).then((c) =>
        samples.push({ second: samples.length + 1, backlog: c.unfinished, succeeded: c.succeeded }),
      );
    }, 1000);
    const started = performance.now();
    const { failures } = await openLoop(RATE, SECONDS, (i) =>
      post(server.url, key, EMIT, { n: 'order.created', d: { i } }),
    );
    const emitSeconds = (performance.now() - started) / 1000;
    clearInterval(sampler);
    const drainMs = await drained(db, 60_000);
    const after = await counts(db);

    // 2. ceiling: a stored backlog drained as fast as the workers go
    await db.query(
      `WITH e AS (
         INSERT INTO "Event" (id, name, source, "siteId", data)
         SELECT gen_random_uuid(), 'order.bulk', 'platform', $1::uuid, jsonb_build_object('i', g)
           FROM generate_series(1, $2::int) g RETURNING id, name, "siteId")
       INSERT INTO "Delivery" (id, "eventId", "eventName", "siteId", "installationId", "addonId", "addonName", handler, "maxAttempts")
       SELECT gen_random_uuid(), e.id, e.name, e."siteId", i.id, i."addonId", 'bench-orders', 'onOrder', 8
         FROM e, "Installation" i WHERE i."siteId" = $1::uuid`,
      [siteId, CEILING_DELIVERIES],
    );
    const ceilingMs = await drained(db, 300_000);

    console.log(`\n## Events: deliveries to addon handlers (${await machine()})\n`);
    console.log(
      `One server process (NODE_ENV=production, DELIVERY_CONCURRENCY=${CONCURRENCY}), a trivial handler; the load generator runs in another process.\n`,
    );
    console.log(`| second | backlog (PENDING+RUNNING) | delivered so far |`);
    console.log(`| ---: | ---: | ---: |`);
    for (const s of samples) console.log(`| ${s.second} | ${s.backlog} | ${s.succeeded} |`);
    console.log('');
    console.log('| measure | value |');
    console.log('| --- | ---: |');
    console.log(
      `| events emitted | ${RATE * SECONDS} at ${((RATE * SECONDS) / emitSeconds).toFixed(0)}/s (${failures} failed) |`,
    );
    console.log(`| backlog drained after the last emit | ${drainMs.toFixed(0)} ms |`);
    console.log(`| SUCCEEDED / DEAD after load | ${after.succeeded} / ${after.dead} |`);
    console.log(
      `| ceiling: ${CEILING_DELIVERIES} stored deliveries drained | ${(ceilingMs / 1000).toFixed(1)} s = ${((CEILING_DELIVERIES / ceilingMs) * 1000).toFixed(0)} deliveries/s |`,
    );
  } finally {
    await db.end();
    await server.stop();
  }
}

runMain(main);
