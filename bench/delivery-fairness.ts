// Delivery fairness between sites: how long a quiet site's deliveries of a shared addon wait while
// another site floods that addon, against the same deliveries with no flood (the floor), in one
// run. `BENCH_FAIRNESS_BASE=<other build>/dist/src/main.js` adds that build's server, same load.
import { loadavg } from 'node:os';
import pg from 'pg';
import { gql, givenBenchSite, machine, percentile, startBenchServer } from './support/bench-server.js';
import { EMIT, post } from './events-common.js';
import { publishAndInstall } from './support/fixtures.js';
import { runMain } from './support/run-main.js';

/** Busy for 10 ms of the sandbox's CPU per delivery. */
const SLOW_SOURCE = `module.exports = { handlers: { onOrder: () => {
  const end = Date.now() + 10;
  while (Date.now() < end) {}
  return true;
} } };`;
const FLOOD = Number(process.env.BENCH_FAIRNESS_FLOOD ?? 1500);
const QUIET_EVERY_MS = 250;
const QUIET_EVENTS = 16;

interface Row {
  label: string;
  p50: number;
  p99: number;
  max: number;
  notes: string;
}

async function scenario(label: string, flood: boolean, mainJs?: string): Promise<Row> {
  const server = await startBenchServer({ mainJs });
  const db = new pg.Client({ connectionString: server.databaseUrl });
  await db.connect();
  try {
    const noisy = await givenBenchSite(server.url, server.adminKey);
    const { createSite } = await gql<{ createSite: { id: string } }>(
      server.url,
      server.adminKey,
      'mutation { createSite(name: "quiet") { id } }',
    );
    const { createApiKey } = await gql<{ createApiKey: { key: string } }>(
      server.url,
      server.adminKey,
      'mutation($s: ID!) { createApiKey(role: SITE, siteId: $s) { key } }',
      { s: createSite.id },
    );
    const quiet = { siteId: createSite.id, siteKey: createApiKey.key };
    const manifest = {
      name: 'shared-slow',
      version: '1.0.0',
      category: 'UTILITIES',
      events: { handles: { 'order.*': 'onOrder' } },
      limits: { maxConcurrentCalls: 256 },
    };
    await publishAndInstall(server.url, noisy, manifest, SLOW_SOURCE);
    await gql(
      server.url,
      quiet.siteKey,
      'mutation { installAddon(id: "shared-slow", config: {}) { success } }',
    );
    // Warm the handler's isolates on both sites.
    await post(server.url, noisy.siteKey, EMIT, { n: 'order.warm', d: {} });
    await post(server.url, quiet.siteKey, EMIT, { n: 'order.warm', d: {} });
    await new Promise((r) => setTimeout(r, 1000));
    const started = performance.now();
    if (flood) {
      for (let i = 0; i < FLOOD; i += 50) {
        await Promise.all(
          Array.from({ length: Math.min(50, FLOOD - i) }, (_, j) =>
            post(server.url, noisy.siteKey, EMIT, { n: 'order.created', d: { i: i + j } }),
          ),
        );
      }
    }
    const floodSeconds = (performance.now() - started) / 1000;
    for (let i = 0; i < QUIET_EVENTS; i += 1) {
      await post(server.url, quiet.siteKey, EMIT, { n: 'order.created', d: { quiet: i } });
      await new Promise((r) => setTimeout(r, QUIET_EVERY_MS));
    }
    const unfinished = async () =>
      (
        await db.query<{ n: number }>(
          `SELECT count(*)::int AS n FROM "Delivery" WHERE status IN ('PENDING', 'RUNNING')`,
        )
      ).rows[0].n;
    const noisyBacklog = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM "Delivery" WHERE status IN ('PENDING', 'RUNNING') AND "siteId" = $1`,
      [noisy.siteId],
    );
    const deadline = performance.now() + 300_000;
    while ((await unfinished()) > 0 && performance.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    const drained = (performance.now() - started) / 1000;
    const { rows } = await db.query<{ ms: number }>(
      `SELECT extract(epoch FROM d."completedAt" - e."createdAt") * 1000 AS ms
         FROM "Delivery" d JOIN "Event" e ON e.id = d."eventId"
        WHERE d."siteId" = $1 AND e.name = 'order.created' AND d.status = 'SUCCEEDED'`,
      [quiet.siteId],
    );
    const sorted = rows.map((r) => Number(r.ms)).sort((a, b) => a - b);
    return {
      label,
      p50: percentile(sorted, 50),
      p99: percentile(sorted, 99),
      max: sorted.at(-1) ?? Number.NaN,
      notes: flood
        ? `${FLOOD} events emitted by the noisy site in ${floodSeconds.toFixed(1)} s; ${noisyBacklog.rows[0].n} of its deliveries still waiting when the quiet site's last event was emitted; all drained ${drained.toFixed(1)} s after the flood began; ${sorted.length} of ${QUIET_EVENTS} quiet deliveries succeeded`
        : `no flood; ${sorted.length} of ${QUIET_EVENTS} quiet deliveries succeeded`,
    };
  } finally {
    await db.end();
    await server.stop();
  }
}

async function main(): Promise<void> {
  console.log(`\n## Delivery fairness between sites (${await machine()})\n`);
  console.log(
    `One addon (a 10 ms handler) installed on two sites; one server per row (default settings: DELIVERY_CONCURRENCY 32, at most 8 running deliveries of one addon), its own database. The noisy site emits ${FLOOD} events at once (50 in flight), then the quiet site emits ${QUIET_EVENTS}, one every ${QUIET_EVERY_MS} ms. Latency: a quiet delivery's event commit to its delivery's completion (database clock).\n`,
  );
  const base = process.env.BENCH_FAIRNESS_BASE;
  const rows: Row[] = [];
  const load = loadavg()[0].toFixed(1);
  rows.push(await scenario('quiet site alone (floor)', false));
  if (base) rows.push(await scenario(`quiet site during the flood, base build (${base})`, true, base));
  rows.push(await scenario('quiet site during the flood, this build', true));
  console.log('| row | p50 ms | p99 ms | max ms | notes |');
  console.log('| --- | ---: | ---: | ---: | --- |');
  for (const r of rows)
    console.log(
      `| ${r.label} | ${r.p50.toFixed(0)} | ${r.p99.toFixed(0)} | ${r.max.toFixed(0)} | ${r.notes} |`,
    );
  console.log(`\n(load average over 1 minute: ${load} before, ${loadavg()[0].toFixed(1)} after)`);
}

runMain(main);
