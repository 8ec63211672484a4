// Noisy-neighbour benchmark (issue 28): an honest tenant, site B, calls addons at a fixed rate
// through the public HTTP API of a real server (its site key, as a client would), while an
// attacker with a developer key and site A runs one hostile class at a time; a quiet phase with
// no attacker comes right before each class (interleaved: a shared machine's weather moves
// within minutes). Per class: B's success, B's p50 and p99, B's p99 over the quiet phase's p99
// just before, sandbox worker restarts, the workers' peak RSS, and the hostile calls' outcomes.
// Target: B 100% and p99 within 2x of quiet, for every class.
// Run: npm run bench -- noisy-neighbour (BENCH_SECONDS per phase, default 4; BENCH_ROUNDS,
// default 2; BENCH_RATE of B's calls per second, default 100; BENCH_LABEL names the section, e.g.
// before / after a change, so both stay in bench/RESULTS.md).
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { Agent, createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpus, loadavg } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { HONEST_SOURCE, HOSTILE, tally } from '../test/sandbox/support/neighbour.js';
import { gql, givenBenchSite, machine, percentile, startBenchServer } from './support/bench-server.js';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2);
const RATE = Number(process.env.BENCH_RATE ?? 100);
/** B's calls that take longer than this count as failed (a client would have given up). */
const CLIENT_TIMEOUT_MS = 10_000;
/** How long the flood's calls wait for the slow upstream (item 3). */
const SLOW_UPSTREAM_MS = 3000;
const TARGET_RATIO = 2;
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

const EXECUTE =
  'mutation($a: ID!, $f: String!, $d: JSON!) { executeAddonFunction(addonId: $a, function: $f, data: $d) }';

interface Answer {
  code: string;
  ms: number;
  data: unknown;
}

/** POSTs one GraphQL operation; resolves with the first error's code (or OK), the time and the data. */
function execute(
  baseUrl: string,
  agent: Agent,
  key: string,
  variables: Record<string, unknown>,
): Promise<Answer> {
  const body = Buffer.from(JSON.stringify({ query: EXECUTE, variables }));
  const started = performance.now();
  return new Promise((resolve) => {
    const req = request(
      `${baseUrl}/graphql`,
      {
        method: 'POST',
        agent,
        timeout: CLIENT_TIMEOUT_MS,
        headers: {
          'content-type': 'application/json',
          'content-length': body.length,
          authorization: `Bearer ${key}`,
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          const ms = performance.now() - started;
          try {
            const parsed = JSON.parse(text) as {
              data?: { executeAddonFunction?: unknown };
              errors?: { extensions?: { code?: string } }[];
            };
            const code = parsed.errors?.length ? (parsed.errors[0].extensions?.code ?? 'UNKNOWN') : 'OK';
            resolve({ code, ms, data: parsed.data?.executeAddonFunction });
          } catch {
            resolve({ code: `HTTP ${res.statusCode}`, ms, data: null });
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('client timeout')));
    req.on('error', (error) =>
      resolve({
        code: error.message === 'client timeout' ? 'CLIENT_TIMEOUT' : 'CONNECTION_ERROR',
        ms: performance.now() - started,
        data: null,
      }),
    );
    req.end(body);
  });
}

/** The server's counter of sandbox worker restarts (crashes and kills). */
async function workerRestarts(baseUrl: string): Promise<number> {
  const text = await (await fetch(`${baseUrl}/metrics`)).text();
  return Number(/^sandbox_worker_crashes_total (\S+)$/m.exec(text)?.[1] ?? NaN);
}

/** Sum of the resident memory of a process's direct children (the sandbox workers), in bytes. */
function childrenRss(pid: number): number {
  try {
    let total = 0;
    for (const child of readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)) {
      if (!child) continue;
      try {
        const rssKb = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${child}/status`, 'utf8'))?.[1];
        total += Number(rssKb ?? 0) * 1024;
      } catch {
        // exited meanwhile (a replaced worker)
      }
    }
    return total;
  } catch {
    return NaN;
  }
}

/** What B saw over one phase. */
interface HonestPhase {
  latencies: number[];
  codes: string[];
  /** Calls sent in this phase and not answered yet. */
  pending: Set<Promise<void>>;
}

/**
 * Site B's open loop: one call every 1000 / RATE ms, whatever the answers (latency counts from
 * when the call was due), in turn to its own addon's `add` and `add-after-read` (a storage read) and
 * to the shared addon's `add`. A wrong answer counts as WRONG_ANSWER.
 */
function honestLoop(baseUrl: string, siteKey: string, addons: { own: string; shared: string }) {
  const agent = new Agent({ keepAlive: true, maxSockets: 256 });
  let phase: HonestPhase | null = null;
  let running = true;
  const pending = new Set<Promise<void>>();
  const targets = [
    { a: addons.own, f: 'add' },
    { a: addons.own, f: 'add-after-read' },
    { a: addons.shared, f: 'add' },
  ];
  const start = performance.now();
  let n = 0;
  const tick = () => {
    if (!running) return;
    const due = start + n * (1000 / RATE);
    const current = phase;
    const target = targets[n % targets.length];
    const k = (n += 1);
    const sent = execute(baseUrl, agent, siteKey, { ...target, d: { a: k, b: 1 } }).then((answer) => {
      const right = answer.code !== 'OK' || (answer.data as { sum?: unknown } | null)?.sum === k + 1;
      current?.latencies.push(performance.now() - due);
      current?.codes.push(right ? answer.code : 'WRONG_ANSWER');
    });
    pending.add(sent);
    current?.pending.add(sent);
    void sent.finally(() => {
      pending.delete(sent);
      current?.pending.delete(sent);
    });
    setTimeout(tick, Math.max(0, start + n * (1000 / RATE) - performance.now()));
  };
  tick();
  return {
    /** Starts recording into a new phase; calls already in flight are charged to the old one. */
    record(): HonestPhase {
      phase = { latencies: [], codes: [], pending: new Set() };
      return phase;
    },
    /** Stops recording; resolves when every call of `ended` has been answered (or given up). */
    async pause(ended: HonestPhase) {
      if (phase === ended) phase = null;
      await Promise.all([...ended.pending]);
    },
    async stop() {
      running = false;
      await Promise.all(pending);
      agent.destroy();
    },
  };
}

interface HostileClass {
  name: string;
  /** Closed loops of the attacker, each calling `once` until the phase ends. */
  loops: number;
  /** One hostile call (or a short sequence); resolves with the outcome of each call. */
  once: (loop: number, iteration: number) => Promise<string[]>;
  /** Stop each loop after this many iterations (memory hogs: the host's memory is shared). */
  maxIterations?: number;
  /** Run after the phase (e.g. free what a memory hog kept). */
  cleanup?: () => Promise<void>;
  /** A limit should stop every hostile call of this class: one that succeeds misses the target. */
  limited?: boolean;
}

interface Row {
  name: string;
  calls: number;
  successPct: number;
  bFailures: string;
  p50: number;
  p99: number;
  quietP99: number;
  restarts: number;
  peakRssMb: number;
  hostile: string;
  /** Hostile calls that succeeded although a limit should have stopped them. */
  unlimited: number;
}

async function main(): Promise<void> {
  const loadBefore = loadavg()[0];
  const slowUpstream = createServer((req, res) => {
    setTimeout(() => res.end('slow'), SLOW_UPSTREAM_MS);
  });
  await new Promise<void>((resolve) => slowUpstream.listen(0, '127.0.0.1', resolve));
  const upstream = `127.0.0.1:${(slowUpstream.address() as AddressInfo).port}`;
  const server = await startBenchServer({
    env: { RATE_LIMIT_DEFAULT: '0', SANDBOX_FETCH_PRIVATE_NETWORKS: 'true' },
  });
  const attackerAgent = new Agent({ keepAlive: true, maxSockets: 256 });
  try {
    const { url, adminKey } = server;
    // Site A and the attacker's developer key; site B with a key of its own.
    const attacker = await givenBenchSite(url, adminKey);
    const victim = await givenBenchSite(url, adminKey);
    const publish = async (devKey: string, manifest: Record<string, unknown>, source: string) =>
      gql(url, devKey, 'mutation($i: RegisterAddonInput!) { registerAddon(input: $i) { addon { id } } }', {
        i: { manifest, source },
      });
    const install = (siteKey: string, name: string) =>
      gql(url, siteKey, 'mutation($id: ID!) { installAddon(id: $id, config: {}) { success } }', { id: name });
    const addon = (name: string, extra: Record<string, unknown>) => ({
      name,
      version: '1.0.0',
      category: 'UTILITIES',
      ...extra,
    });
    const ROOMY = { cpuTimeMs: 10_000, timeoutMs: 30_000 };
    const fns = (...names: string[]) => names.map((name) => ({ name }));

    await publish(
      victim.devKey,
      // Room for B's own calls piling up behind a stall: the shared addon keeps the default 16.
      addon('nn-honest', {
        permissions: ['storage.read'],
        functions: fns('add', 'add-after-read'),
        limits: { maxConcurrentCalls: 64 },
      }),
      HONEST_SOURCE,
    );
    await install(victim.siteKey, 'nn-honest');
    // The shared addon (items 3 and 3b): `hold` waits for a slow upstream, `spin` never ends.
    const sharedSource = HOSTILE.shared.replace(
      "hold: async (d, ctx) => { await ctx.storage.get('slow'); return 'held'; },",
      `hold: async (d, ctx) => { const r = await ctx.http.fetch('http://${upstream}/'); return r.status; },`,
    );
    if (sharedSource === HOSTILE.shared) throw new Error('the shared addon source changed: update the bench');
    await publish(
      victim.devKey,
      addon('nn-shared', {
        permissions: ['storage.read', 'http.fetch'],
        http: { allow: [upstream] },
        functions: fns('add', 'add-after-read', 'hold', 'spin'),
        limits: { timeoutMs: SLOW_UPSTREAM_MS + 2000, cpuTimeMs: 500 },
      }),
      sharedSource,
    );
    await install(victim.siteKey, 'nn-shared');
    await install(attacker.siteKey, 'nn-shared');
    const hostileAddons: [string, Record<string, unknown>, string][] = [
      ['nn-spinner', { functions: fns('spin', 'quick'), limits: ROOMY }, HOSTILE.asyncSpinner],
      [
        'nn-gamer',
        {
          functions: fns('quick', 'spin', 'spin-after-answer'),
          permissions: ['storage.read'],
          limits: ROOMY,
        },
        HOSTILE.policyGamer,
      ],
      [
        'nn-hog',
        { functions: fns('wasm', 'grow', 'buffer', 'spin'), limits: { cpuTimeMs: 3000, timeoutMs: 5000 } },
        HOSTILE.memoryHog,
      ],
      [
        'nn-dependency',
        { functions: fns('work'), permissions: ['storage.write'], limits: ROOMY },
        HOSTILE.dependency,
      ],
      [
        'nn-caller',
        {
          functions: fns('call'),
          dependencies: { 'nn-dependency': '*' },
          limits: { timeoutMs: 500, cpuTimeMs: 500 },
        },
        HOSTILE.caller,
      ],
      [
        'nn-crasher',
        {
          functions: fns('heap', 'stack', 'catastrophic'),
          limits: { memoryMb: 128, cpuTimeMs: 4000, timeoutMs: 5000 },
        },
        HOSTILE.crasher,
      ],
    ];
    for (const [name, extra, source] of hostileAddons) {
      await publish(attacker.devKey, addon(name, extra), source);
      await install(attacker.siteKey, name);
    }

    const attack = (a: string, f: string, d: unknown) =>
      execute(url, attackerAgent, attacker.siteKey, { a, f, d }).then((answer) => answer.code);
    const classes: HostileClass[] = [
      {
        name: '1. async spinner: 6 calls at once spinning 2.5 s each (cpuTimeMs 10000, timeoutMs 30000)',
        loops: 6,
        once: async () => [await attack('nn-spinner', 'spin', { ms: 2500 })],
      },
      {
        name: '2. sync-start gaming: 4 quick calls, then a 3 s spin',
        loops: 1,
        once: async () => {
          const outcomes: string[] = [];
          for (let i = 0; i < 4; i++) outcomes.push(await attack('nn-gamer', 'quick', {}));
          outcomes.push(await attack('nn-gamer', 'spin', { ms: 3000 }));
          return outcomes;
        },
      },
      {
        name: `3. site A holds 20 calls of the shared addon (each waits ${SLOW_UPSTREAM_MS / 1000} s for an upstream)`,
        loops: 20,
        once: async () => [await attack('nn-shared', 'hold', {})],
      },
      {
        name: '3b. site A times out on the shared addon (2 loops of an endless loop, cpuTimeMs 500)',
        limited: true,
        loops: 2,
        once: async () => [await attack('nn-shared', 'spin', {})],
      },
      {
        name: '4. WebAssembly memory hog: keeps a 256 MiB `WebAssembly.Memory` per call (memoryMb 64), 4 calls',
        limited: true,
        loops: 1,
        maxIterations: 4,
        once: async () => [await attack('nn-hog', 'wasm', { pages: 4096 })],
        // A timeout disposes the isolate, and the memories it kept with it.
        cleanup: async () => {
          await attack('nn-hog', 'spin', {});
          await attack('nn-hog', 'spin', {});
        },
      },
      {
        name: '5. dependency outliving its caller: caller times out at 500 ms, its dependency spins 5 s',
        limited: true,
        loops: 2,
        once: async () => [await attack('nn-caller', 'call', { dep: 'nn-dependency', ms: 5000 })],
      },
      {
        // The floor: an attacker's request volume alone (a quarantined attacker's calls are refused
        // as cheaply as these), so the classes above can be read against what volume costs B.
        name: 'floor: 6 closed loops of calls refused before the sandbox (a function the addon does not export)',
        loops: 6,
        once: async () => [await attack('nn-gamer', 'not-exported', {})],
      },
      {
        name: 'crasher: heap exhaustion (memoryMb 128) and stack overflow, in turn',
        limited: true,
        loops: 2,
        once: async (loop, i) => [await attack('nn-crasher', (loop + i) % 2 === 0 ? 'heap' : 'stack', {})],
      },
    ];

    // Warm: B's addons loaded on both workers before the first measured phase.
    const honest = honestLoop(url, victim.siteKey, { own: 'nn-honest', shared: 'nn-shared' });
    await new Promise((resolve) => setTimeout(resolve, 2000));
    const serverPid = server.process.pid!;
    const rows: Row[][] = classes.map(() => []);
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    /**
     * Waits (up to 20 s) until both workers are up and what the last class left running (a
     * dependency outliving its caller, say) has ended: at most B's own few calls in flight.
     */
    const settle = async () => {
      let calm = 0;
      for (let i = 0; i < 200 && calm < 5; i++) {
        const text = await (await fetch(`${url}/metrics`)).text();
        const workers = Number(/^sandbox_workers (\S+)$/m.exec(text)?.[1]);
        const inFlight = Number(/^sandbox_calls_in_flight (\S+)$/m.exec(text)?.[1]);
        calm = workers >= 2 && inFlight <= 3 ? calm + 1 : 0;
        await sleep(100);
      }
    };
    for (let round = 0; round < ROUNDS; round += 1) {
      for (let k = 0; k < classes.length; k += 1) {
        const index = (round + k) % classes.length;
        const cls = classes[index];
        process.stderr.write(`  round ${round + 1}: ${cls.name}\n`);
        await settle();
        const quiet = honest.record();
        await sleep(SECONDS * 1000);
        const measured = honest.record();
        const restartsBefore = await workerRestarts(url);
        let peakRss = childrenRss(serverPid);
        const rssTimer = setInterval(() => (peakRss = Math.max(peakRss, childrenRss(serverPid))), 250);
        const until = performance.now() + SECONDS * 1000;
        const outcomes: string[] = [];
        // The attacker's loops run for the phase; the calls still in flight at its end are
        // awaited, and B keeps being measured one second more (what the attack leaves behind).
        await Promise.all(
          Array.from({ length: cls.loops }, async (_, loop) => {
            for (let i = 0; performance.now() < until && i < (cls.maxIterations ?? Infinity); i++) {
              outcomes.push(...(await cls.once(loop, i)));
            }
          }),
        );
        await sleep(1000);
        await honest.pause(measured);
        await honest.pause(quiet);
        clearInterval(rssTimer);
        const restarts = (await workerRestarts(url)) - restartsBefore;
        await cls.cleanup?.();
        const okCount = measured.codes.filter((c) => c === 'OK').length;
        const sorted = [...measured.latencies].sort((a, b) => a - b);
        const failures = tally(measured.codes.filter((c) => c !== 'OK'));
        rows[index].push({
          name: cls.name,
          calls: measured.codes.length,
          successPct: (100 * okCount) / Math.max(1, measured.codes.length),
          bFailures: Object.entries(failures)
            .map(([code, count]) => `${code} ×${count}`)
            .join(', '),
          p50: percentile(sorted, 50),
          p99: percentile(sorted, 99),
          quietP99: percentile(
            [...quiet.latencies].sort((a, b) => a - b),
            99,
          ),
          restarts,
          peakRssMb: peakRss / 2 ** 20,
          hostile: Object.entries(tally(outcomes))
            .map(([code, count]) => `${code} ×${count}`)
            .join(', '),
          unlimited: cls.limited ? outcomes.filter((o) => o === 'OK').length : 0,
        });
      }
    }
    await honest.stop();

    // One row per class: the round with the worst B success, then the worst ratio (the promise
    // is about every round, so the worst one is what counts).
    const worst = rows.map((runs) =>
      runs.reduce((a, b) =>
        b.successPct < a.successPct ||
        (b.successPct === a.successPct && b.p99 / b.quietP99 > a.p99 / a.quietP99)
          ? b
          : a,
      ),
    );
    const missed = (r: Row) =>
      [
        r.successPct < 100 ? 'B failed' : '',
        r.p99 / r.quietP99 > TARGET_RATIO ? `p99 > ${TARGET_RATIO}x` : '',
        r.unlimited > 0 ? `${r.unlimited} hostile OK` : '',
      ].filter(Boolean);
    const met = worst.filter((r) => missed(r).length === 0).length;
    const git = (...args: string[]) => execFileSync('git', args, { cwd: repoRoot, encoding: 'utf8' }).trim();
    const head = git('rev-parse', '--short', 'HEAD');
    const srcCommit = git('log', '-1', '--format=%h %s', '--', 'src').slice(0, 100);
    const dirty = git('status', '--porcelain', '--', 'src') !== '';
    // Which main the measured sandbox is: the merge base with main, when src/ is the same there
    // (a "before" run on a branch, or a run on main itself).
    let mainNote = '';
    try {
      const base = git('merge-base', 'HEAD', 'main');
      const same = git('diff', '--name-only', base, '--', 'src') === '';
      mainNote = same
        ? ` (as on main at ${base.slice(0, 7)})`
        : ` (changed since main at ${base.slice(0, 7)})`;
    } catch {
      // no branch named main here
    }
    const label = process.env.BENCH_LABEL ? ` — ${process.env.BENCH_LABEL}` : '';
    console.log(`## Noisy neighbours: an honest site while another site attacks${label} (${await machine()})

Build: HEAD ${head}; \`src/\`${mainNote} as of ${srcCommit}${dirty ? ' (with uncommitted changes to src/)' : ''}.
One server process (NODE_ENV=production, rate limits off, 2 sandbox workers). Site B calls, at a
fixed ${RATE}/s (open loop, latency from when each call was due), its own addon's \`add\` and
\`add-after-read\` (a storage read) and a shared addon's \`add\`, in turn, through
\`executeAddonFunction\` with its site key. Site A, with its own developer key, runs each hostile
class for ${SECONDS} s; B is measured from the class's start until 1 s after the attacker's last
call ended, and over ${SECONDS} s with no attacker just before (quiet). ${ROUNDS} round(s), classes
rotated; the row of each class is its worst round. "restarts" counts sandbox worker processes that
died (sandbox_worker_crashes_total); "peak RSS" is the workers' summed resident memory. Target:
B 100% and p99 at most ${TARGET_RATIO}x the quiet p99, and, for the classes a limit should stop
(3b, 4, 5, crasher), no hostile call succeeding. The machine was shared with other engineers' test
runs (1-minute load average ${loadBefore.toFixed(1)} at the start, ${loadavg()[0].toFixed(1)} at the end, on ${cpus().length} cores): the
latencies are indicative only.

| hostile class (site A) | B calls | B success | B failures | B p50 ms | B p99 ms | quiet p99 ms | p99 ratio | restarts | peak RSS MB | hostile outcomes | target |
| --- | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |
${worst
  .map(
    (r) =>
      `| ${r.name} | ${r.calls} | ${r.successPct.toFixed(1)}% | ${r.bFailures || '–'} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.quietP99.toFixed(1)} | ${(r.p99 / r.quietP99).toFixed(1)}x | ${r.restarts} | ${r.peakRssMb.toFixed(0)} | ${r.hostile} | ${missed(r).join(', ') || 'met'} |`,
  )
  .join('\n')}

Classes meeting the target: ${met} of ${worst.length}. Not run: permission-less upgrades (item 6,
not load), and a worker killed from inside (the production server has no such hook).`);
  } finally {
    attackerAgent.destroy();
    await server.stop();
    slowUpstream.close();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
