// Issue 31 benchmark: time to ready of a restarted instance. `npm run bench -- startup`.
//
// Three ways to start, each from a stopped server: `node dist/src/main.js` with DATABASE_URL and
// REDIS_URL (migrations already applied), `npm start` (the same, through the start script), and
// the embedded mode (no DATABASE_URL, PGlite data already initialised). Time to ready: spawn to the
// first 200 of /readyz, polled every 10 ms. With BENCH_BASE_REF (e.g. main) that ref is built in a
// worktree and started the same way, alternating with this tree round by round (a shared machine's
// speed moves within minutes). BENCH_ROUNDS (default 5) rounds.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateApiKey } from '../src/auth/api-key.js';
import { freePort } from '../test/support/free-port.js';
import { machine, median } from './support/bench-server.js';
import { buildRef, type Build } from './tools/compare-builds.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const MODES = ['node', 'npm start', 'embedded'] as const;
type Mode = (typeof MODES)[number];

interface Target {
  build: Build;
  /** The build's checkout (where `npm start` runs). */
  dir: string;
  databaseUrl: string;
  dataDir: string;
  drop(): Promise<void>;
}

interface Start {
  ms: number;
  /** The ready line's start steps, when the build logs them. */
  steps: Record<string, number> | null;
}

/** Starts one server, waits for /readyz 200, kills it; resolves with the time it took. */
async function startOnce(target: Target, mode: Mode): Promise<Start> {
  const port = await freePort();
  const env: Record<string, string | undefined> = {
    ...process.env,
    NODE_ENV: mode === 'embedded' ? 'development' : 'production',
    LOG_LEVEL: 'info',
    HOST: '127.0.0.1',
    PORT: String(port),
    ADMIN_API_KEY: generateApiKey(),
    DATA_DIR: target.dataDir,
    DATABASE_URL: mode === 'embedded' ? '' : target.databaseUrl,
    REDIS_URL: mode === 'embedded' ? '' : (process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379'),
    REDIS_KEY_PREFIX: `bench-startup-${port}:`,
  };
  const started = performance.now();
  const child =
    mode === 'npm start'
      ? spawn('npm', ['start', '--silent'], {
          cwd: target.dir,
          env,
          stdio: ['ignore', 'pipe', 'ignore'],
          detached: true,
        })
      : spawn(
          target.build.nodePath,
          ['--no-node-snapshot', '--max-semi-space-size=32', '--v8-pool-size=1', target.build.mainJs],
          { cwd: target.dir, env, stdio: ['ignore', 'pipe', 'ignore'], detached: true },
        );
  let output = '';
  child.stdout!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  try {
    for (;;) {
      if (child.exitCode !== null)
        throw new Error(`${target.build.label} (${mode}) exited with ${child.exitCode}`);
      try {
        if ((await fetch(`http://127.0.0.1:${port}/readyz`)).ok) break;
      } catch {
        // not listening yet
      }
      if (performance.now() - started > 120_000)
        throw new Error(`${target.build.label} (${mode}): not ready in 120 s`);
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    const ms = performance.now() - started;
    await new Promise((resolve) => setTimeout(resolve, 50));
    const line = output.split('\n').find((l) => l.includes('"startupSteps"'));
    const steps = line
      ? ((JSON.parse(line) as { startupSteps: Record<string, number> }).startupSteps ?? null)
      : null;
    return { ms, steps };
  } finally {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    process.kill(-child.pid!, 'SIGKILL');
    await exited;
  }
}

async function target(build: Build, dir: string): Promise<Target> {
  const { createTestDatabase } = (await import(build.testDatabaseJs)) as {
    createTestDatabase(): Promise<{ url: string; drop(): Promise<void> }>;
  };
  const database = await createTestDatabase();
  const dataDir = mkdtempSync(path.join(tmpdir(), 'themepress-startup-'));
  return {
    build,
    dir,
    databaseUrl: database.url,
    dataDir,
    drop: async () => {
      await database.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

const fmt = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return `${median(sorted).toFixed(0)} (${sorted[0].toFixed(0)}-${sorted[sorted.length - 1].toFixed(0)})`;
};

async function main(): Promise<void> {
  const head: Build = {
    label: `working tree (Node ${process.version})`,
    nodePath: process.execPath,
    mainJs: path.join(repoRoot, 'dist/src/main.js'),
    testDatabaseJs: path.join(repoRoot, 'dist/test/support/test-database.js'),
  };
  const baseRef = process.env.BENCH_BASE_REF;
  const base = baseRef ? buildRef(baseRef) : null;
  const targets: Target[] = [];
  try {
    if (base) targets.push(await target(base.build, path.resolve(path.dirname(base.build.mainJs), '../..')));
    targets.push(await target(head, repoRoot));
    // Not measured: the embedded data folder's first start (PGlite's initdb, the migrations).
    for (const t of targets) await startOnce(t, 'embedded');
    const results = new Map<string, Start[]>();
    for (let round = 0; round < ROUNDS; round += 1) {
      for (const mode of MODES) {
        // Alternating which build goes first.
        const order = round % 2 === 0 ? targets : [...targets].reverse();
        for (const t of order) {
          const key = `${t.build.label}\u0000${mode}`;
          const list = results.get(key) ?? [];
          list.push(await startOnce(t, mode));
          results.set(key, list);
        }
      }
    }

    const out: string[] = [];
    out.push(`## Time to ready of a restarted instance (${await machine()})`, '');
    out.push(
      `Spawn to the first 200 of \`/readyz\` (polled every 10 ms), ${ROUNDS} rounds, builds alternating; ` +
        'milliseconds, median (min-max). `node`: `node dist/src/main.js` with DATABASE_URL and REDIS_URL, ' +
        'migrations applied; `npm start`: the same through the start script; `embedded`: no DATABASE_URL, ' +
        'the PGlite data folder initialised by an earlier start. The machine is shared with other ' +
        'engineers running tests.',
      '',
      '| build | start | time to ready, ms |',
      '| --- | --- | ---: |',
    );
    for (const t of targets) {
      for (const mode of MODES) {
        out.push(
          `| ${t.build.label} | ${mode} | ${fmt(results.get(`${t.build.label}\u0000${mode}`)!.map((s) => s.ms))} |`,
        );
      }
    }
    out.push(
      '',
      "Where the working tree spends it (the ready line's start steps, medians, ms; the rest of the time is Node starting and loading the modules):",
      '',
    );
    for (const mode of MODES) {
      const starts = results.get(`${head.label}\u0000${mode}`)!.filter((s) => s.steps);
      if (starts.length === 0) continue;
      const names = Object.keys(starts[0].steps!);
      const cells = names.map(
        (name) => `${name} ${median(starts.map((s) => s.steps![name] ?? 0)).toFixed(0)}`,
      );
      out.push(`- ${mode}: ${cells.join(', ')}`);
    }
    process.stdout.write(`${out.join('\n')}\n`);
  } finally {
    for (const t of targets) await t.drop();
    base?.remove();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
