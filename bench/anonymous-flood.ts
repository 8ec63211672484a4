// What one address costs without a key: an anonymous caller sends requests as fast as 64
// connections carry them (keys nobody issued over HTTP and in WebSocket `connection_init`, sockets
// that never initialise, readiness probes, metrics scrapes), while another site reads its own
// record every 20 ms with its key. Reported per phase: that site's latency,
// what the attacker got, and the database transactions the server ran (pg_stat_database), which
// says whether unknown keys reached PostgreSQL. The floor phase sends the same requests with no key
// (anonymous, refused by the rate limit once the address's window is spent). Default rate limits.
// `BENCH_ANONYMOUS_BASE=<other build>/dist/src/main.js` adds that build's server, same load.
import { randomBytes } from 'node:crypto';
import { Agent, request } from 'node:http';
import { loadavg } from 'node:os';
import pg from 'pg';
import WebSocket from 'ws';
import { gql, givenBenchSite, machine, percentile, rssMb, startBenchServer } from './support/bench-server.js';
import { runMain } from './support/run-main.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const CONNECTIONS = 64;
const PROBE_EVERY_MS = 20;
/** Sockets without `connection_init` the attacker keeps open at most (file descriptors). */
const MAX_HELD = 10_000;
/** Sockets one address may hold (LIVE_MAX_CONNECTIONS_PER_KEY's default). */
const LIVE_SOCKETS = 16;

type Attack =
  | 'none'
  | 'no key'
  | 'unknown keys (HTTP)'
  | 'unknown keys (WebSocket)'
  | 'sockets without init'
  | 'large messages (WebSocket)'
  | 'GET /readyz'
  | 'GET /metrics';

interface Row {
  build: string;
  attack: Attack;
  honestP50: number;
  honestP99: number;
  honestFailed: number;
  honestAnswered: number;
  attempts: number;
  outcomes: string;
  transactionsPerSecond: number;
  rssPeakMb: number;
}

const unknownKey = () => `tp_${randomBytes(24).toString('base64url')}`;

/** A `subscribe` message of about 1 MiB (a comment pads the document), the most a frame may carry. */
const LARGE_SUBSCRIBE = (id: number) =>
  JSON.stringify({
    id: String(id),
    type: 'subscribe',
    payload: { query: `subscription { events { id } } #${'x'.repeat(1_000_000)}` },
  });

/**
 * One socket with no key that, once acknowledged, sends {@link LARGE_SUBSCRIBE} messages back to
 * back (each once the previous one is written) until the socket closes or `running()` is false;
 * resolves to how it ended and counts the messages it wrote in `sent`.
 */
function largeMessages(url: string, running: () => boolean, sent: { n: number }): Promise<string> {
  return new Promise((resolve) => {
    const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
    let settled = false;
    const done = (outcome: string) => {
      if (settled) return;
      settled = true;
      socket.terminate();
      resolve(outcome);
    };
    const next = (id: number): void => {
      if (!running()) return done('stopped');
      socket.send(LARGE_SUBSCRIBE(id), (error) => {
        if (error) return done(running() ? 'send failed' : 'stopped');
        sent.n += 1;
        next(id + 1);
      });
    };
    socket.on('unexpected-response', (_req, res) => done(`HTTP ${res.statusCode}`));
    socket.on('error', () => done('error'));
    socket.on('close', (code) => done(`close ${code}`));
    socket.once('message', () => next(1));
    socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: {} })));
  });
}

/** One POST of `{ __typename }` on `agent` (or a GET of `path`); resolves to its status. */
function send(url: string, agent: Agent, key: string | null, path?: string): Promise<number> {
  return new Promise((resolve) => {
    const body = path ? undefined : JSON.stringify({ query: '{ __typename }' });
    const headers: Record<string, string> = path ? {} : { 'content-type': 'application/json' };
    if (key) headers.authorization = `Bearer ${key}`;
    const method = path ? 'GET' : 'POST';
    const req = request(`${url}${path ?? '/graphql'}`, { method, agent, headers }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('error', () => resolve(0));
    req.end(body);
  });
}

/**
 * One socket that sends `connection_init` with an unknown key and resolves to how it ended; or,
 * with `init` false, one that sends nothing and resolves once it is open (in `held` while open).
 */
function socketAttempt(url: string, init: boolean, held: Set<WebSocket>): Promise<string> {
  return new Promise((resolve) => {
    const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
    let settled = false;
    const done = (outcome: string, keep = false) => {
      if (settled) return;
      settled = true;
      if (keep) {
        held.add(socket);
        socket.once('close', () => held.delete(socket));
      } else socket.terminate();
      resolve(outcome);
    };
    socket.on('unexpected-response', (_req, res) => done(`HTTP ${res.statusCode}`));
    socket.on('error', () => done('error'));
    socket.on('close', (code) => done(`close ${code}`));
    socket.on('message', () => done('acknowledged'));
    socket.on('open', () => {
      if (!init) return done('opened', true);
      const payload = { authorization: `Bearer ${unknownKey()}` };
      socket.send(JSON.stringify({ type: 'connection_init', payload }));
    });
  });
}

async function transactions(client: pg.Client, database: string): Promise<number> {
  const { rows } = await client.query<{ n: string }>(
    'SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = $1',
    [database],
  );
  return Number(rows[0].n);
}

async function phase(
  server: Awaited<ReturnType<typeof startBenchServer>>,
  site: { siteId: string; siteKey: string },
  build: string,
  attack: Attack,
  stats: pg.Client,
): Promise<Row> {
  const database = new URL(server.databaseUrl).pathname.slice(1);
  const pid = server.process.pid!;
  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const outcomes = new Map<string, number>();
  const count = (outcome: string) => outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
  let running = true;
  let attempts = 0;
  const held = new Set<WebSocket>();
  const largeSent = { n: 0 };
  const attacker = async () => {
    while (running) {
      attempts += 1;
      if (attack === 'no key') count(`HTTP ${await send(server.url, agent, null)}`);
      else if (attack === 'unknown keys (HTTP)') count(`HTTP ${await send(server.url, agent, unknownKey())}`);
      else if (attack === 'GET /readyz' || attack === 'GET /metrics')
        count(`HTTP ${await send(server.url, agent, null, attack.slice(4))}`);
      else if (attack === 'unknown keys (WebSocket)') count(await socketAttempt(server.url, true, held));
      else if (attack === 'large messages (WebSocket)')
        count(await largeMessages(server.url, () => running, largeSent));
      else if (held.size < MAX_HELD) count(await socketAttempt(server.url, false, held));
      else await new Promise((r) => setTimeout(r, 10));
    }
  };
  const honest: number[] = [];
  let honestFailed = 0;
  const probes = async () => {
    while (running) {
      const started = performance.now();
      try {
        await gql(server.url, site.siteKey, 'query($id: ID!) { site(id: $id) { id name } }', {
          id: site.siteId,
        });
        honest.push(performance.now() - started);
      } catch {
        honestFailed += 1;
      }
      await new Promise((r) => setTimeout(r, PROBE_EVERY_MS));
    }
  };
  let rssPeakMb = rssMb(pid);
  const sampler = setInterval(() => (rssPeakMb = Math.max(rssPeakMb, rssMb(pid))), 100);
  const before = await transactions(stats, database);
  const started = performance.now();
  // Large messages from as many sockets as an address may hold; the other attacks use every connection.
  const loops = attack === 'none' ? 0 : attack === 'large messages (WebSocket)' ? LIVE_SOCKETS : CONNECTIONS;
  const work = [probes(), ...Array.from({ length: loops }, attacker)];
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  running = false;
  const seconds = (performance.now() - started) / 1000;
  const after = await transactions(stats, database);
  await Promise.all(work);
  for (const socket of held) socket.terminate();
  clearInterval(sampler);
  agent.destroy();
  honest.sort((a, b) => a - b);
  return {
    build,
    attack,
    honestP50: percentile(honest, 50),
    honestP99: percentile(honest, 99),
    honestFailed,
    honestAnswered: honest.length,
    attempts,
    outcomes:
      [...outcomes, ...(largeSent.n > 0 ? [['messages of 1 MiB written', largeSent.n] as const] : [])]
        .map(([what, n]) => `${what}: ${n}`)
        .join(', ') || '-',
    transactionsPerSecond: (after - before) / seconds,
    rssPeakMb,
  };
}

async function run(build: string, mainJs?: string): Promise<Row[]> {
  // Default rate limits but the probing site's, which is not what is measured; counters of its own
  // in Redis, so one build's run does not spend the next one's windows.
  const server = await startBenchServer({
    mainJs,
    env: {
      RATE_LIMIT_DEFAULT: '100',
      RATE_LIMIT_SITE: '1000000',
      // A tenth of the default, so that the limit's steady state shows within a phase.
      RATE_LIMIT_KEY_LOOKUPS: '100',
      REDIS_KEY_PREFIX: `bench-auth-${process.pid}-${Date.now()}:`,
    },
  });
  const stats = new pg.Client({ connectionString: server.databaseUrl });
  await stats.connect();
  try {
    const site = await givenBenchSite(server.url, server.adminKey);
    const rows: Row[] = [];
    const attacks: Attack[] = [
      'none',
      'no key',
      'unknown keys (HTTP)',
      'unknown keys (WebSocket)',
      'sockets without init',
      'large messages (WebSocket)',
      'GET /readyz',
      'GET /metrics',
    ];
    // BENCH_ATTACKS=<comma-separated attack names> runs those only (after the quiet phase).
    const only = process.env.BENCH_ATTACKS?.split(',');
    for (const attack of attacks.filter((a) => a === 'none' || !only || only.includes(a)))
      rows.push(await phase(server, site, build, attack, stats));
    return rows;
  } finally {
    await stats.end();
    await server.stop();
  }
}

async function main(): Promise<void> {
  console.log(`\n## What one address costs without a key (${await machine()})\n`);
  console.log(
    `One server per build (default rate limits, 100 requests a minute per anonymous address; on this build 100 look-ups of uncached keys a minute per address, a tenth of the default, so that a phase shows the limit's steady state), phases of ${SECONDS} s in this order. An attacker on 127.0.0.1 keeps ${CONNECTIONS} connections busy: \`{ __typename }\` over HTTP with no key or a new unknown key each, a WebSocket with a new unknown key in \`connection_init\` each, sockets that never send \`connection_init\`, kept open (at most ${MAX_HELD.toLocaleString('en')}), ${LIVE_SOCKETS} sockets with no key writing \`subscribe\` messages of 1 MiB back to back, or \`GET /readyz\` or \`/metrics\` (no rate limit: load balancers and Prometheus call them). Meanwhile a site reads its own record (\`site(id)\`, its key) every ${PROBE_EVERY_MS} ms. Transactions: every statement PostgreSQL ran for the server's database, per second.\n`,
  );
  const load = loadavg()[0].toFixed(1);
  const base = process.env.BENCH_ANONYMOUS_BASE;
  const rows = base ? await run(`base (${base})`, base) : [];
  rows.push(...(await run('this build')));
  console.log(
    '| build | attack | site answers | site p50 ms | site p99 ms | site failed | attempts | attacker got | DB transactions/s | API RSS peak MB |',
  );
  console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |');
  for (const r of rows)
    console.log(
      `| ${r.build} | ${r.attack} | ${r.honestAnswered} | ${r.honestP50.toFixed(1)} | ${r.honestP99.toFixed(1)} | ${r.honestFailed} | ${r.attempts} | ${r.outcomes} | ${r.transactionsPerSecond.toFixed(0)} | ${r.rssPeakMb.toFixed(0)} |`,
    );
  console.log(`\n(load average over 1 minute: ${load} before, ${loadavg()[0].toFixed(1)} after)`);
}

runMain(main);
