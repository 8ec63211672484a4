// Issue 28, black box: while a hostile addon runs on one site, an honest addon on another site,
// called throughout, keeps every call right and within its own time limit; workers are replaced
// only when the hostile version's own calls failed; and a hostile call fails where a limit should
// have stopped it. Nothing here depends on how the sandbox keeps those promises.
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { performance } from 'node:perf_hooks';
import { call, createPool, makeBundle, sleep } from './helpers.js';
import {
  HONEST_SOURCE,
  HONEST_TIMEOUT_MS,
  HOSTILE,
  honestNeighbour,
  keepCalling,
  NeighbourCapabilities,
  outcomeOf,
  tally,
  watchWorkerPids,
  type NeighbourLoop,
  type NeighbourReport,
  type PidReport,
} from './support/neighbour.js';
import type { AddonBundle, AddonLimits, SandboxPool, SandboxPoolOptions } from '../../src/sandbox/index.js';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenDeveloper, givenPublished, givenSite, manifest } from '../support/fixtures.js';
import { InstallAddonDocument } from '../generated/graphql.js';

/** Limits under which a spinner's spins are legal: only the sandbox's fairness is on trial. */
const ROOMY: Partial<AddonLimits> = { cpuTimeMs: 10_000, timeoutMs: 30_000 };
/** How long a spinner spins within {@link ROOMY}: long enough to hold a thread past 1 s. */
const SPIN_MS = 1300;
/** The variations' spinners: still longer than the honest addon's time limit. */
const SHORT_SPIN_MS = 1100;

const pools: SandboxPool[] = [];
// Each case gets fresh workers and leaves none behind (spinners, kept memory) for the next.
afterEach(() => Promise.all(pools.splice(0).map((p) => p.close())));

async function newPool(
  caps = new NeighbourCapabilities(),
  opts: Partial<SandboxPoolOptions> = {},
): Promise<SandboxPool> {
  const pool = createPool(caps, opts);
  pools.push(pool);
  await pool.start();
  return pool;
}

interface Outcome {
  report: NeighbourReport;
  pids: PidReport;
  /** The hostile calls' outcomes: `OK` or an error code. */
  hostile: string[];
}

/**
 * Starts the honest neighbour and the PID watcher, lets the neighbour make a few calls, runs the
 * attack, keeps the neighbour calling `afterMs` longer (the aftermath: replaced workers, disposed
 * isolates), and returns what everyone saw.
 */
async function underAttack(
  pool: SandboxPool,
  attack: () => Promise<string[]>,
  { neighbour = honestNeighbour(pool), afterMs = 300 }: { neighbour?: NeighbourLoop; afterMs?: number } = {},
): Promise<Outcome> {
  const pids = watchWorkerPids(pool);
  for (let i = 0; i < 200 && neighbour.calls < 5; i++) await sleep(10);
  let hostile: string[];
  try {
    hostile = await attack();
    await sleep(afterMs);
  } catch (err) {
    await neighbour.stop();
    pids.stop();
    throw err;
  }
  const report = await neighbour.stop();
  return { report, pids: pids.stop(), hostile };
}

/** The promises every case checks: the neighbour unharmed, and workers replaced only for cause. */
function assertNeighbourUnharmed({ report, pids, hostile }: Outcome): void {
  const total = report.ok + report.failures.length;
  assert.equal(
    report.failures.length,
    0,
    `the honest neighbour lost ${report.failures.length} of ${total} calls ` +
      `(${JSON.stringify(tally(report.failures.map((f) => f.code)))}; first: ${report.failures[0]?.message}); ` +
      `hostile outcomes ${JSON.stringify(tally(hostile))}`,
  );
  assert.ok(report.ok >= 5, `the honest neighbour made only ${report.ok} calls`);
  const slowest = Math.max(...report.latenciesMs);
  assert.ok(
    slowest <= HONEST_TIMEOUT_MS,
    `the slowest honest call took ${slowest.toFixed(0)} ms, past its own time limit of ${HONEST_TIMEOUT_MS} ms ` +
      `(hostile outcomes ${JSON.stringify(tally(hostile))})`,
  );
  if (pids.changed) {
    assert.ok(
      hostile.some((o) => o !== 'OK'),
      `workers were replaced (PIDs ${pids.initial.join(',')} -> seen ${pids.seen.join(',')}) although every hostile call succeeded`,
    );
  }
}

/** Asserts that every hostile call failed with an error code (a limit should have stopped each). */
function assertAllFailed(hostile: string[]): void {
  assert.ok(hostile.length > 0);
  assert.deepEqual(
    hostile.filter((o) => o === 'OK' || o.startsWith('THROWN')),
    [],
    `hostile outcomes ${JSON.stringify(tally(hostile))}`,
  );
}

/** Runs `count` calls, each `staggerMs` after the previous (as requests arriving over HTTP would). */
async function staggered(count: number, staggerMs: number, one: (i: number) => Promise<unknown>) {
  const calls: Promise<string>[] = [];
  for (let i = 0; i < count; i++) {
    calls.push(outcomeOf(one(i)));
    await sleep(staggerMs);
  }
  return Promise.all(calls);
}

describe('noisy neighbours: item 1, async spinners', () => {
  it('six async functions spinning 1.3 s each within their limits leave another site alone', async () => {
    const pool = await newPool();
    const spinner = makeBundle(HOSTILE.asyncSpinner, { limits: ROOMY });
    const outcome = await underAttack(pool, () =>
      staggered(6, 20, () => call(pool, spinner, 'spin', { ms: SPIN_MS }, { siteId: 'site-a' })),
    );
    assertNeighbourUnharmed(outcome);
  });

  it('async spinners past their CPU limit fail, and leave another site alone', async () => {
    const pool = await newPool();
    const spinner = makeBundle(HOSTILE.asyncSpinner, { limits: { cpuTimeMs: 600, timeoutMs: 30_000 } });
    const outcome = await underAttack(pool, () =>
      staggered(6, 20, () => call(pool, spinner, 'spin', { ms: 4000 }, { siteId: 'site-a' })),
    );
    assertNeighbourUnharmed(outcome);
    assertAllFailed(outcome.hostile);
  });

  it('async widget renders that spin leave another site alone', async () => {
    const pool = await newPool();
    const widget = makeBundle(HOSTILE.widgetSpinner, { limits: ROOMY });
    const outcome = await underAttack(pool, () =>
      staggered(4, 20, () =>
        call(
          pool,
          widget,
          'spin',
          { ms: SHORT_SPIN_MS },
          { kind: 'widget', siteId: 'site-a', widgetConfig: {} },
        ),
      ),
    );
    assertNeighbourUnharmed(outcome);
  });

  it('async event handlers that spin leave another site alone', async () => {
    const pool = await newPool();
    const handler = makeBundle(HOSTILE.handlerSpinner, { limits: ROOMY });
    const outcome = await underAttack(pool, () =>
      staggered(4, 20, () =>
        call(
          pool,
          handler,
          'onSpin',
          { name: 'spin', data: { ms: SHORT_SPIN_MS } },
          { kind: 'handler', siteId: 'site-a' },
        ),
      ),
    );
    assertNeighbourUnharmed(outcome);
  });

  it('async install hooks that spin leave another site alone', async () => {
    const pool = await newPool();
    const hook = makeBundle(HOSTILE.hookSpinner, { limits: ROOMY });
    const outcome = await underAttack(pool, () =>
      staggered(4, 20, (i) =>
        call(pool, hook, 'install', null, {
          kind: 'hook',
          siteId: `site-a${i}`,
          config: { ms: SHORT_SPIN_MS },
        }),
      ),
    );
    assertNeighbourUnharmed(outcome);
  });

  it('one attacker spinning from four sites at once leaves another site alone', async () => {
    const pool = await newPool();
    const spinner = makeBundle(HOSTILE.asyncSpinner, { limits: ROOMY });
    const outcome = await underAttack(pool, () =>
      staggered(4, 20, (i) =>
        call(pool, spinner, 'spin', { ms: SHORT_SPIN_MS }, { siteId: `attacker-${i}` }),
      ),
    );
    assertNeighbourUnharmed(outcome);
  });
});

describe('noisy neighbours: item 2, gaming the start policy', () => {
  /**
   * Quick calls (the first is cold, so four earn three quick starts in a row), then one that spins
   * `ms` on whatever thread starts it; `rounds` times.
   */
  async function game(pool: SandboxPool, gamer: AddonBundle, fn: string, rounds: number, ms: number) {
    const outcomes: string[] = [];
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < 4; i++) {
        outcomes.push(await outcomeOf(call(pool, gamer, 'quick', null, { siteId: 'site-a' })));
      }
      outcomes.push(await outcomeOf(call(pool, gamer, fn, { ms }, { siteId: 'site-a' })));
    }
    return outcomes;
  }

  it('quick calls then a 1.5 s spin, twice, leave another site alone', async () => {
    const pool = await newPool();
    const gamer = makeBundle(HOSTILE.policyGamer, { limits: ROOMY });
    const outcome = await underAttack(pool, () => game(pool, gamer, 'spin', 2, 1500));
    assertNeighbourUnharmed(outcome);
  });

  it('quick calls then a 1.5 s spin after an SDK answer leave another site alone', async () => {
    const pool = await newPool();
    const gamer = makeBundle(HOSTILE.policyGamer, { limits: ROOMY, permissions: ['storage.read'] });
    const outcome = await underAttack(pool, () => game(pool, gamer, 'spin-after-answer', 1, 1500));
    assertNeighbourUnharmed(outcome);
  });
});

describe('noisy neighbours: item 3, one addon shared by several sites', () => {
  /** The shared addon: slow calls may wait 3 s for the host, spins end at 300 ms of CPU. */
  const sharedBundle = () =>
    makeBundle(HOSTILE.shared, {
      permissions: ['storage.read'],
      limits: { timeoutMs: 3000, cpuTimeMs: 300 },
    });

  it('site A holding 20 slow calls does not get site B refused', async () => {
    const caps = new NeighbourCapabilities();
    caps.readDelays.set('slow', 1500);
    const pool = await newPool(caps);
    const shared = sharedBundle();
    const outcome = await underAttack(
      pool,
      () => staggered(20, 2, () => call(pool, shared, 'hold', null, { siteId: 'site-a' })),
      { neighbour: honestNeighbour(pool, { bundles: [shared] }) },
    );
    assertNeighbourUnharmed(outcome);
  });

  it("site A's calls timing out do not fail site B's calls of the same version", async () => {
    const pool = await newPool();
    const shared = sharedBundle();
    const outcome = await underAttack(
      pool,
      async () => {
        const outcomes: string[] = [];
        for (let i = 0; i < 4; i++) {
          outcomes.push(
            ...(await staggered(2, 5, () => call(pool, shared, 'spin', null, { siteId: 'site-a' }))),
          );
        }
        return outcomes;
      },
      { neighbour: honestNeighbour(pool, { bundles: [shared] }) },
    );
    assertNeighbourUnharmed(outcome);
    assertAllFailed(outcome.hostile);
  });
});

describe('noisy neighbours: item 4, memory outside the heap', () => {
  /** 16 MB isolates: every hog below asks for 64 MiB or more at once. */
  const MEMORY_MB = 16;
  const HOG_MIB = 64;
  /**
   * The memory a version may keep, in MiB, before its calls must fail: 4x its limit, above the
   * 2-3x isolated-vm documents for its heap limit.
   */
  const TOLERATED_MIB = 4 * MEMORY_MB;

  async function hog(fn: string, input: unknown, calls: number) {
    const pool = await newPool();
    const hogger = makeBundle(HOSTILE.memoryHog, { limits: { ...ROOMY, memoryMb: MEMORY_MB } });
    const outcome = await underAttack(pool, async () => {
      const outcomes: string[] = [];
      for (let i = 0; i < calls; i++)
        outcomes.push(await outcomeOf(call(pool, hogger, fn, input, { siteId: 'site-a' })));
      return outcomes;
    });
    assertNeighbourUnharmed(outcome);
    const kept = outcome.hostile.filter((o) => o === 'OK').length * HOG_MIB;
    assert.ok(
      kept <= TOLERATED_MIB,
      `calls that kept ${kept} MiB in a ${MEMORY_MB} MB isolate succeeded (${JSON.stringify(tally(outcome.hostile))})`,
    );
    assert.ok(outcome.hostile.some((o) => o !== 'OK' && !o.startsWith('THROWN')));
  }

  it('WebAssembly.Memory objects kept past memoryMb fail', () => hog('wasm', { pages: HOG_MIB * 16 }, 3));

  it('a WebAssembly.Memory grown past memoryMb fails', () => hog('grow', { pages: HOG_MIB * 16 }, 3));

  it('ArrayBuffers kept past memoryMb fail', () => hog('buffer', { mb: HOG_MIB }, 3));
});

describe('noisy neighbours: item 5, nothing outlives its caller', () => {
  /** A caller with a 500 ms limit and dependencies that would run 1 s more. */
  async function chain(length: number) {
    const caps = new NeighbourCapabilities();
    const pool = await newPool(caps);
    const names = Array.from({ length }, (_, i) => `dep-${i}`);
    const deps = names.map((name, i) =>
      makeBundle(HOSTILE.dependency, {
        addonName: name,
        addonId: `id-${name}-${process.hrtime.bigint()}`,
        permissions: ['storage.write'],
        dependencies: i + 1 < length ? { [names[i + 1]]: '*' } : {},
        limits: ROOMY,
      }),
    );
    for (const dep of deps) caps.addons.set(dep.addonName, dep);
    const caller = makeBundle(HOSTILE.caller, {
      dependencies: { [names[0]]: '*' },
      limits: { timeoutMs: 500, cpuTimeMs: 500 },
    });
    const outcome = await underAttack(
      pool,
      () =>
        staggered(2, 20, () =>
          call(
            pool,
            caller,
            'call',
            { dep: names[0], next: names[1], rest: names.slice(2), ms: 1000 },
            {
              siteId: 'site-a',
            },
          ),
        ),
      // Past the moment the last dependency would have written, had it kept running.
      { afterMs: 1500 },
    );
    assertNeighbourUnharmed(outcome);
    assertAllFailed(outcome.hostile);
    const late = [...caps.store.keys()].filter((key) => key.endsWith('\u0000late'));
    assert.deepEqual(late, [], 'a dependency call kept running after its caller had failed, and wrote');
  }

  it('a dependency call is cancelled when its caller times out', () => chain(1));

  it('a chain of three dependency calls is cancelled when the first caller times out', () => chain(3));
});

describe('noisy neighbours: floods and crashes', () => {
  it('promise-job floods fail, at once or after an SDK answer, and leave another site alone', async () => {
    const pool = await newPool();
    const flooder = makeBundle(HOSTILE.promiseFlood, {
      permissions: ['storage.read'],
      limits: { timeoutMs: 1500, cpuTimeMs: 500, memoryMb: 32 },
    });
    const outcome = await underAttack(pool, () =>
      staggered(6, 20, (i) =>
        call(pool, flooder, ['flood', 'flood-after-answer', 'fan-out'][i % 3], null, { siteId: 'site-a' }),
      ),
    );
    assertNeighbourUnharmed(outcome);
    assertAllFailed(outcome.hostile);
  });

  it('heap exhaustion, stack overflow and a killed worker fail only the crasher', async () => {
    const pool = await newPool(new NeighbourCapabilities(), { allowCrashTest: true });
    const crasher = makeBundle(HOSTILE.crasher, {
      limits: { timeoutMs: 5000, cpuTimeMs: 4000, memoryMb: 32 },
    });
    const outcome = await underAttack(pool, () =>
      staggered(6, 50, (i) =>
        call(pool, crasher, ['heap', 'stack', 'catastrophic'][i % 3], null, { siteId: 'site-a' }),
      ),
    );
    assertNeighbourUnharmed(outcome);
    assertAllFailed(outcome.hostile);
  });
});

describe('noisy neighbours: through the public API of a real server', () => {
  let server: TestServer;
  /** The attacker: a developer key and site A. */
  let developer: Awaited<ReturnType<typeof givenDeveloper>>;
  let siteA: Awaited<ReturnType<typeof givenSite>>;
  /** Site B with its honest addon installed. */
  let siteB: Awaited<ReturnType<typeof givenSite>>;
  let honestName: string;

  before(async () => {
    server = await startTestServer();
    developer = await givenDeveloper(server.admin);
    siteA = await givenSite(server.admin);
    siteB = await givenSite(server.admin);
    const honest = manifest({
      permissions: ['storage.read'],
      widgets: [],
      functions: [{ name: 'add' }, { name: 'add-after-read' }],
    });
    honestName = honest.name as string;
    await givenPublished(developer.client, honest, HONEST_SOURCE);
    await siteB.client.ok(InstallAddonDocument, { id: honestName, config: {} });
  });
  after(() => server?.close());

  const EXECUTE =
    'mutation($a: ID!, $f: String!, $d: JSON!) { executeAddonFunction(addonId: $a, function: $f, data: $d) }';

  /** Runs a function as a client would; throws an error carrying the answer's code when it failed. */
  async function execute(site: { client: TestServer['admin'] }, addon: string, fn: string, data: unknown) {
    const answer = await site.client.raw<{ executeAddonFunction: unknown }>(EXECUTE, {
      a: addon,
      f: fn,
      d: data,
    });
    if (answer.errors?.length) {
      const code = String(answer.errors[0].extensions?.code ?? 'UNKNOWN');
      throw Object.assign(new Error(answer.errors[0].message), { code });
    }
    return answer.data?.executeAddonFunction;
  }

  /** Site B calling its honest addon over HTTP, as its frontend would. */
  const honestOverHttp = () =>
    keepCalling(async (n) => {
      const output = (await execute(siteB, honestName, n % 2 === 0 ? 'add' : 'add-after-read', {
        a: n,
        b: 1,
      })) as { sum?: unknown } | null;
      if (output?.sum !== n + 1) throw new Error(`wrong sum ${JSON.stringify(output)}`);
    });

  /** Publishes `source` with the attacker's developer key and installs it on site A. */
  async function givenHostile(overrides: Record<string, unknown>, source: string): Promise<string> {
    const m = manifest({ permissions: [], widgets: [], ...overrides });
    await givenPublished(developer.client, m, source);
    await siteA.client.ok(InstallAddonDocument, { id: m.name as string, config: {} });
    return m.name as string;
  }

  it('async spinners sent by one site with a developer key leave another site alone', async () => {
    const spinner = await givenHostile(
      { functions: [{ name: 'spin' }, { name: 'quick' }], limits: ROOMY },
      HOSTILE.asyncSpinner,
    );
    const outcome = await underAttack(
      server.app.runtime.pool,
      () => staggered(6, 20, () => execute(siteA, spinner, 'spin', { ms: SPIN_MS })),
      { neighbour: honestOverHttp() },
    );
    assertNeighbourUnharmed(outcome);
  });

  it('a dependency call ends, and its record says it failed, soon after its caller timed out', async () => {
    const dependency = await givenHostile(
      { functions: [{ name: 'work' }], permissions: ['storage.write'], limits: ROOMY },
      HOSTILE.dependency,
    );
    const caller = await givenHostile(
      {
        functions: [{ name: 'call' }],
        dependencies: { [dependency]: '*' },
        limits: { timeoutMs: 500, cpuTimeMs: 500 },
      },
      HOSTILE.caller,
    );
    let failedAt = 0;
    const outcome = await underAttack(
      server.app.runtime.pool,
      async () => {
        // The dependency would spin 8 s; its caller has 0.5 s.
        const outcomes = [await outcomeOf(execute(siteA, caller, 'call', { dep: dependency, ms: 8000 }))];
        failedAt = performance.now();
        return outcomes;
      },
      { neighbour: honestOverHttp(), afterMs: 0 },
    );
    assertNeighbourUnharmed(outcome);
    assertAllFailed(outcome.hostile);
    // Its record is written when it ends; 3 s after the caller failed is generous for a
    // cancellation, and far short of the 8 s it would run on its own.
    let status: string | null = null;
    while (status === null && performance.now() - failedAt < 3000) {
      const answer = await siteA.client.raw<{ executions: { edges: { node: { status: string } }[] } }>(
        'query($a: String) { executions(addon: $a, kind: "function", entry: "work", first: 1) { edges { node { status } } } }',
        { a: dependency },
      );
      status = answer.data?.executions.edges[0]?.node.status ?? null;
      if (status === null) await sleep(100);
    }
    assert.notEqual(status, null, 'the dependency call was still running 3 s after its caller had failed');
    assert.notEqual(status, 'SUCCESS', 'the dependency call succeeded after its caller had failed');
  });
});
