// `npm run bench:compare -- <git ref> [execute] [effects] [render] [field]`: the benchmarked operations served by a
// build of <git ref> and by a build of this working tree, side by side in alternating rounds.
//
// Why: this machine is shared and its speed moves by 2x within minutes, so a change measured in one
// run and its parent in another tells nothing. Here both servers run at once, every round visits
// every (build, operation) pair in rotating order, and the ratios are paired by round. The output
// goes to stdout only; bench/RESULTS.md keeps the benchmarks' own sections.
//
// BENCH_ROUNDS (default 10) rounds of BENCH_SECONDS (default 2) seconds per pair.
// BENCH_BASE_NODE=<path to node>: the base build is installed (`npm ci`, its own native modules),
// built and served with that Node instead of sharing this checkout's node_modules and Node (a
// runtime move measured side by side: the last Node 20 build against this tree on Node 24).
// BENCH_FLOOR=1: the bare Apollo Server reference (the design with nothing of ours in it: no
// authentication, lookups, records or metrics) answers `{ __typename }` and `execute` in the same
// rounds, so both builds can be read against the floor of the design on the machine of the moment.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  givenBenchSite,
  machine,
  median,
  startBenchServer,
  type BenchServer,
} from '../support/bench-server.js';
import {
  bodies,
  CHECKOUT_MANIFEST,
  CHECKOUT_SOURCE,
  publishAndInstall,
  publishEcho,
  publishEffects,
} from '../support/fixtures.js';
import { cpuCell, interleaved, type Scenario } from '../support/interleaved.js';
import { startBareApollo } from '../support/bare-apollo.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 10);
const SECONDS = Number(process.env.BENCH_SECONDS ?? 2);
const OPERATIONS = ['execute', 'effects', 'render', 'field'] as const;
type Operation = (typeof OPERATIONS)[number];

export interface Build {
  label: string;
  /** The Node that serves the build. */
  nodePath: string;
  /** The build's server entry point. */
  mainJs: string;
  /** The build's own test-database module, which migrates with the build's own migrations. */
  testDatabaseJs: string;
}

/**
 * A worktree of `ref` beside this one, built with this checkout's node_modules, or with its own
 * (installed by `nodePath`'s npm) when it runs on another Node.
 */
export function buildRef(ref: string, nodePath?: string): { build: Build; remove(): void } {
  const dir = mkdtempSync(path.join(tmpdir(), 'themepress-compare-'));
  const git = (...args: string[]) => execFileSync('git', args, { cwd: repoRoot, stdio: 'pipe' });
  git('worktree', 'add', '--detach', dir, ref);
  const remove = () => {
    git('worktree', 'remove', '--force', dir);
    rmSync(dir, { recursive: true, force: true });
  };
  const node = nodePath ?? process.execPath;
  try {
    if (nodePath) {
      // npm runs on the Node first on PATH, so native modules are built or picked for that Node.
      const env = { ...process.env, PATH: `${path.dirname(nodePath)}${path.delimiter}${process.env.PATH}` };
      execFileSync('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], {
        cwd: dir,
        stdio: 'inherit',
        env,
      });
    } else {
      symlinkSync(path.join(repoRoot, 'node_modules'), path.join(dir, 'node_modules'), 'dir');
      // The Prisma client is generated (and git-ignored); the ref's schema may differ from this one.
      execFileSync(node, ['scripts/prisma-generate.mjs'], { cwd: dir, stdio: 'ignore' });
    }
    execFileSync(node, [path.join(dir, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], {
      cwd: dir,
      stdio: 'inherit',
    });
  } catch (error) {
    remove();
    throw error;
  }
  const short = git('rev-parse', '--short', ref).toString().trim();
  const version = execFileSync(node, ['--version']).toString().trim();
  return {
    build: {
      label: `${ref} (${short}, Node ${version})`,
      nodePath: node,
      mainJs: path.join(dir, 'dist/src/main.js'),
      testDatabaseJs: path.join(dir, 'dist/test/support/test-database.js'),
    },
    remove,
  };
}

/** The scenarios of each build, in order: `{ __typename }` (the baseline of its ratios), then the operations. */
const scenarioNames = (operations: Operation[]) => ['typename', ...operations] as const;

/** Starts a build's server on a database migrated by that build, with the benchmark addons. */
async function startBuild(
  build: Build,
  operations: Operation[],
): Promise<{ server: BenchServer; scenarios: Scenario[]; drop(): Promise<void> }> {
  const { createTestDatabase } = (await import(build.testDatabaseJs)) as {
    createTestDatabase(): Promise<{ url: string; drop(): Promise<void> }>;
  };
  const database = await createTestDatabase();
  // The execution benchmark's setting: rate limiting on, at a limit load never reaches.
  const server = await startBenchServer({
    databaseUrl: database.url,
    mainJs: build.mainJs,
    nodePath: build.nodePath,
  });
  const { url, adminKey } = server;
  const keys = await givenBenchSite(url, adminKey);
  if (operations.includes('execute')) await publishEcho(url, keys, 'bench-echo');
  if (operations.includes('effects')) await publishEffects(url, keys, 'bench-effects');
  if (operations.includes('render') || operations.includes('field'))
    await publishAndInstall(url, keys, CHECKOUT_MANIFEST, CHECKOUT_SOURCE);
  const headers = { 'content-type': 'application/json', authorization: `Bearer ${keys.siteKey}` };
  const scenario = (operation: string, body: string): Scenario => ({
    name: `${build.label} ${operation}`,
    request: { url: `${url}/graphql`, method: 'POST', headers, body },
    serverPid: server.process.pid,
  });
  const body = {
    typename: bodies.typename,
    execute: bodies.execute('bench-echo'),
    effects: bodies.effects('bench-effects'),
    render: bodies.renderWidget,
    field: bodies.widgetRender,
  };
  const scenarios = scenarioNames(operations).map((name) => scenario(name, body[name]));
  for (const { request } of scenarios) {
    const response = await fetch(request.url!, { method: 'POST', headers, body: request.body as string });
    const answer = (await response.json()) as { errors?: unknown };
    if (answer.errors) throw new Error(`${build.label}: warm-up failed: ${JSON.stringify(answer.errors)}`);
  }
  return { server, scenarios, drop: () => database.drop() };
}

async function main(): Promise<void> {
  const [ref, ...rest] = process.argv.slice(2);
  if (!ref) throw new Error('usage: npm run bench:compare -- <git ref> [execute] [effects] [render] [field]');
  const unknown = rest.filter((op) => !(OPERATIONS as readonly string[]).includes(op));
  if (unknown.length)
    throw new Error(`unknown operations: ${unknown.join(', ')} (known: ${OPERATIONS.join(', ')})`);
  const operations: Operation[] = rest.length ? (rest as Operation[]) : [...OPERATIONS];

  process.stderr.write(`building ${ref} in a worktree...\n`);
  const base = buildRef(ref, process.env.BENCH_BASE_NODE);
  const head: Build = {
    label: `working tree (Node ${process.version})`,
    nodePath: process.execPath,
    mainJs: path.join(repoRoot, 'dist/src/main.js'),
    testDatabaseJs: path.join(repoRoot, 'dist/test/support/test-database.js'),
  };
  const started: Array<Awaited<ReturnType<typeof startBuild>>> = [];
  let floor: Awaited<ReturnType<typeof startBareApollo>> | null = null;
  const floorNames = (['typename', 'execute'] as const).filter(
    (name) => name === 'typename' || operations.includes(name),
  );
  try {
    if (process.env.BENCH_FLOOR === '1') floor = await startBareApollo();
    for (const build of [base.build, head]) started.push(await startBuild(build, operations));
    const bare = floor;
    const floorScenarios: Scenario[] = bare
      ? floorNames.map((name) => ({
          name: `floor ${name}`,
          request: {
            url: bare.url,
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: name === 'typename' ? bodies.typename : bodies.execute('bench-echo'),
          },
          serverPid: bare.child.pid,
        }))
      : [];
    const scenarios = [...started.flatMap((s) => s.scenarios), ...floorScenarios];
    // Warm-up round (JIT, isolates, caches), not reported.
    await interleaved(scenarios, { rounds: 1, seconds: 2 });
    const rows = await interleaved(scenarios, { rounds: ROUNDS, seconds: SECONDS });
    const names = scenarioNames(operations);
    const perBuild = names.length;
    const [baseRows, headRows, floorRows] = [
      rows.slice(0, perBuild),
      rows.slice(perBuild, 2 * perBuild),
      rows.slice(2 * perBuild),
    ];
    const floorLabel = 'floor: bare Apollo Server, one isolate worker, nothing else';
    const pairedRatio = (a: number[], b: number[]) => median(a.map((x, i) => x / b[i]));

    const out: string[] = [];
    out.push(`## ${base.build.label} against the working tree (${await machine()})`, '');
    out.push(
      `One server per build, each on its own database, both running throughout; autocannon, 10 connections; ` +
        `${ROUNDS} alternating rounds of ${SECONDS} s per (build, operation); medians. "vs typename" pairs each ` +
        `round's throughput with the same build's \`{ __typename }\` in that round.`,
      '',
    );
    out.push(
      '| operation | build | req/s | vs typename | API CPU µs/req | workers CPU µs/req | errors |',
      '| --- | --- | ---: | ---: | ---: | ---: | ---: |',
    );
    for (let i = 0; i < perBuild; i += 1) {
      for (const [label, list] of [
        [base.build.label, baseRows],
        [head.label, headRows],
      ] as const) {
        const row = list[i];
        const ratio =
          i === 0 ? '100 %' : `${(pairedRatio(row.roundRps, list[0].roundRps) * 100).toFixed(1)} %`;
        out.push(
          `| ${names[i]} | ${label} | ${row.rps.toFixed(0)} | ${ratio} | ${cpuCell(row.cpu?.server)} | ${cpuCell(row.cpu?.children)} | ${row.errors} |`,
        );
      }
      const f = floorNames.indexOf(names[i] as (typeof floorNames)[number]);
      if (f >= 0 && floorRows[f]) {
        const row = floorRows[f];
        const ratio =
          f === 0 ? '100 %' : `${(pairedRatio(row.roundRps, floorRows[0].roundRps) * 100).toFixed(1)} %`;
        out.push(
          `| ${names[i]} | ${floorLabel} | ${row.rps.toFixed(0)} | ${ratio} | ${cpuCell(row.cpu?.server)} | ${cpuCell(row.cpu?.children)} | ${row.errors} |`,
        );
      }
    }
    out.push(
      '',
      'Working tree against the base, paired by round (above 1: the working tree serves more):',
      '',
    );
    for (let i = 0; i < perBuild; i += 1) {
      out.push(
        `- ${names[i]}: ${pairedRatio(headRows[i].roundRps, baseRows[i].roundRps).toFixed(3)}× throughput`,
      );
    }
    if (floorRows.length > 0) {
      out.push('', 'Each build against the floor, paired by round (1: as fast as the bare design):', '');
      floorNames.forEach((name, f) => {
        const i = names.indexOf(name);
        const against = (rowsOf: typeof rows) =>
          pairedRatio(rowsOf[i].roundRps, floorRows[f].roundRps).toFixed(3);
        out.push(`- ${name}: base ${against(baseRows)}×, working tree ${against(headRows)}×`);
      });
    }
    process.stdout.write(`${out.join('\n')}\n`);
  } finally {
    floor?.child.kill();
    for (const { server, drop } of started) {
      await server.stop();
      await drop();
    }
    base.remove();
  }
}

// Imported by bench/startup.ts for buildRef: only run as the command.
if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  main().catch((error: unknown) => {
    console.error(error);
    process.exit(1);
  });
}
