// What one site's reads over its own history cost the others. Site A has a busy day on record
// (BENCH_SCAN_ROWS execution records, 1,000,000 by default) and asks, as fast as its rate limit
// lets it over 32 connections, for its day's dashboard figures or for executions matching nothing
// (each scans its own rows); meanwhile site B, with no history, lists its executions every 20 ms.
// Reported per phase: B's latency, what A got, and the most PostgreSQL backends busy at once for
// the server's database. `BENCH_SCANS_BASE=<other build>/dist/src/main.js` adds that build's
// server, same load, in the same run.
import { Agent, request } from 'node:http';
import { loadavg } from 'node:os';
import pg from 'pg';
import { gql, givenBenchSite, machine, percentile, startBenchServer } from './support/bench-server.js';
import { runMain } from './support/run-main.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const ROWS = Number(process.env.BENCH_SCAN_ROWS ?? 1_000_000);
const CONNECTIONS = 32;
const PROBE_EVERY_MS = 20;

const SCANS = {
  none: null,
  'dashboardStats(windowSeconds: 86400)': '{ dashboardStats(windowSeconds: 86400) { executions p95Ms } }',
  'executions(entry: no match)': '{ executions(entry: "no-such-entry", first: 20) { edges { cursor } } }',
} as const;
type Scan = keyof typeof SCANS;

interface Row {
  build: string;
  scan: Scan;
  honestAnswered: number;
  honestP50: number;
  honestP99: number;
  honestMax: number;
  honestFailed: number;
  attacker: string;
  busyBackendsPeak: number;
  drainSeconds: number;
}

/** One POST of `query` with `key` on `agent`; resolves to its status and whether it had errors. */
function post(url: string, agent: Agent, key: string, query: string): Promise<string> {
  return new Promise((resolve) => {
    const req = request(
      `${url}/graphql`,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      },
      (res) => {
        let body = '';
        res.on('data', (chunk: Buffer) => (body += chunk.toString()));
        res.on('end', () => {
          const code = /"code":"([A-Z_]+)"/.exec(body)?.[1];
          resolve(`HTTP ${res.statusCode}${code ? ` ${code}` : ''}`);
        });
      },
    );
    req.on('error', () => resolve('error'));
    req.end(JSON.stringify({ query }));
  });
}

/** Execution records of one day for `siteId`, spread over 8 addons, one in 17 failed. */
async function seedHistory(client: pg.Client, siteId: string): Promise<void> {
  await client.query(
    `INSERT INTO "Execution" (id, "addonId", "addonName", "addonVersionId", version, "siteId", kind, entry,
                              status, "durationMs", "cpuTimeMs", logs, "createdAt")
     SELECT gen_random_uuid(), ('00000000-0000-0000-0000-00000000000' || (i % 8))::uuid, 'addon-' || (i % 8),
            gen_random_uuid(), '1.0.0', $1::uuid, 'function', 'f',
            CASE WHEN i % 17 = 0 THEN 'EXECUTION_TIMEOUT' ELSE 'SUCCESS' END, random() * 50, random() * 10,
            '[]'::jsonb, (now() AT TIME ZONE 'UTC') - (i % 86000) * interval '1 second'
       FROM generate_series(1, $2::int) i`,
    [siteId, ROWS],
  );
  await client.query('ANALYZE "Execution"');
}

async function busyBackends(client: pg.Client, database: string): Promise<number> {
  const { rows } = await client.query<{ n: number }>(
    `SELECT count(*)::int AS n FROM pg_stat_activity
      WHERE datname = $1 AND state = 'active' AND pid <> pg_backend_pid()`,
    [database],
  );
  return rows[0].n;
}

async function phase(
  url: string,
  database: string,
  stats: pg.Client,
  a: { siteKey: string },
  b: { siteKey: string },
  build: string,
  scan: Scan,
): Promise<Row> {
  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const outcomes = new Map<string, number>();
  let running = true;
  const query = SCANS[scan];
  const attacker = async () => {
    while (running && query) {
      const outcome = await post(url, agent, a.siteKey, query);
      outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
    }
  };
  const honest: number[] = [];
  let honestFailed = 0;
  const probes = async () => {
    while (running) {
      const started = performance.now();
      try {
        await gql(url, b.siteKey, '{ executions(first: 5) { edges { cursor } } }');
        honest.push(performance.now() - started);
      } catch {
        honestFailed += 1;
      }
      await new Promise((r) => setTimeout(r, PROBE_EVERY_MS));
    }
  };
  let busyBackendsPeak = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      busyBackendsPeak = Math.max(busyBackendsPeak, await busyBackends(stats, database));
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  const attackers = Array.from({ length: query ? CONNECTIONS : 0 }, attacker);
  const honestDone = probes();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  running = false;
  await honestDone;
  // What A left running delays whoever comes next: the phase ends once it is done.
  const stopped = performance.now();
  await Promise.all(attackers);
  const drainSeconds = (performance.now() - stopped) / 1000;
  sampling = false;
  await sampler;
  agent.destroy();
  honest.sort((x, y) => x - y);
  return {
    build,
    scan,
    honestAnswered: honest.length,
    honestP50: percentile(honest, 50),
    honestP99: percentile(honest, 99),
    honestMax: honest.at(-1) ?? 0,
    honestFailed,
    attacker:
      [...outcomes]
        .sort(([x], [y]) => x.localeCompare(y))
        .map(([what, n]) => `${what}: ${n}`)
        .join(', ') || '-',
    busyBackendsPeak,
    drainSeconds,
  };
}

async function run(build: string, mainJs?: string): Promise<Row[]> {
  const server = await startBenchServer({
    mainJs,
    env: {
      // Ten times the default, so B's probes fit a window; A's first 100 of a window already
      // arrive together at the default.
      RATE_LIMIT_DEFAULT: '1000',
      REDIS_KEY_PREFIX: `bench-scans-${process.pid}-${Date.now()}:`,
    },
  });
  const stats = new pg.Client({ connectionString: server.databaseUrl });
  await stats.connect();
  try {
    const database = new URL(server.databaseUrl).pathname.slice(1);
    const a = await givenBenchSite(server.url, server.adminKey);
    const b = await givenBenchSite(server.url, server.adminKey);
    await seedHistory(stats, a.siteId);
    const rows: Row[] = [];
    for (const scan of Object.keys(SCANS) as Scan[])
      rows.push(await phase(server.url, database, stats, a, b, build, scan));
    return rows;
  } finally {
    await stats.end();
    await server.stop();
  }
}

async function main(): Promise<void> {
  console.log(`\n## What one site's reads of its own history cost another (${await machine()})\n`);
  console.log(
    `One server per build (\`RATE_LIMIT_DEFAULT=1000\`, a minute's window; other settings default: \`DATABASE_POOL_MAX=10\`), phases of ${SECONDS} s in this order. Site A has ${ROWS.toLocaleString('en')} execution records of the last day and keeps ${CONNECTIONS} connections busy asking for its day's dashboard figures or for its executions of an entry that has none (each reads its own rows), until its rate limit refuses it; site B, with no history, lists its executions every ${PROBE_EVERY_MS} ms. A phase ends once A's last request is answered (drain). Busy backends: the most PostgreSQL connections of the server's database running a statement at once (sampled every 50 ms).\n`,
  );
  const load = loadavg()[0].toFixed(1);
  const base = process.env.BENCH_SCANS_BASE;
  const rows = base ? await run(`base (${base})`, base) : [];
  rows.push(...(await run('this build')));
  console.log(
    '| build | site A asks | B answers | B p50 ms | B p99 ms | B max ms | B failed | A got | busy backends | drain s |',
  );
  console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |');
  for (const r of rows)
    console.log(
      `| ${r.build} | ${r.scan} | ${r.honestAnswered} | ${r.honestP50.toFixed(1)} | ${r.honestP99.toFixed(1)} | ${r.honestMax.toFixed(0)} | ${r.honestFailed} | ${r.attacker} | ${r.busyBackendsPeak} | ${r.drainSeconds.toFixed(1)} |`,
    );
  console.log(`\n(load average over 1 minute: ${load} before, ${loadavg()[0].toFixed(1)} after)`);
}

runMain(main);
