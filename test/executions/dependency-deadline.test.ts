import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { performance } from 'node:perf_hooks';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenDeveloper, givenPublished, givenSite, manifest } from '../support/fixtures.js';
import type { GraphQLClient } from '../support/graphql-client.js';
import {
  ExecuteAddonFunctionDocument,
  ExecutionLineageDocument,
  InstallAddonDocument,
} from '../generated/graphql.js';

/** The caller's own time limit. */
const CALLER_TIMEOUT_MS = 1500;
/**
 * Slack for "stopped within the caller's deadline": the supervisor's hard deadline grace (2 s,
 * src/sandbox/worker-supervisor.ts) plus room for a loaded 2-core machine.
 */
const GRACE_MS = 4000;

const DEPENDENCY = `module.exports = { functions: {
  spin: (d, ctx) => { const t = Date.now(); while (Date.now() - t < 30000) {} return 'spun'; },
  'async-spin': async (d, ctx) => {
    await ctx.storage.get('x');
    const t = Date.now(); while (Date.now() - t < 30000) {} return 'spun';
  },
  quick: (d) => ({ quick: d }),
} };`;

const CALLER = (dependency: string) => `module.exports = { functions: {
  'call-spin': async (d, ctx) => ctx.addons.call(${JSON.stringify(dependency)}, d.fn || 'spin', {}),
  'call-quick': async (d, ctx) => ctx.addons.call(${JSON.stringify(dependency)}, 'quick', d),
} };`;

interface Lineage {
  id: string;
  entry: string;
  status: string;
  errorMessage: string | null;
  durationMs: number;
  parentExecutionId: string | null;
}

describe('nothing outlives its caller: dependency calls get the caller’s remaining deadline', () => {
  let server: TestServer;
  let developer: GraphQLClient;
  let site: Awaited<ReturnType<typeof givenSite>>;
  let caller: string;
  let dependency: string;

  before(async () => {
    // The two callers' timeouts below stay under the threshold; the breaker rows show what counted.
    server = await startTestServer({ QUARANTINE_THRESHOLD: '3', QUARANTINE_BACKOFF_MS: '60000' });
    developer = (await givenDeveloper(server.admin)).client;
    const dep = manifest({
      configSchema: { type: 'object' },
      widgets: [],
      permissions: ['storage.read'],
      functions: [{ name: 'spin' }, { name: 'async-spin' }, { name: 'quick' }],
      // Its own limits would let it run for 30 s (10 s of CPU).
      limits: { timeoutMs: 30_000, cpuTimeMs: 10_000 },
    });
    dependency = dep.name as string;
    await givenPublished(developer, dep, DEPENDENCY);
    const m = manifest({
      configSchema: { type: 'object' },
      widgets: [],
      permissions: ['addons.call'],
      dependencies: { [dependency]: '^1.0.0' },
      functions: [{ name: 'call-spin' }, { name: 'call-quick' }],
      limits: { timeoutMs: CALLER_TIMEOUT_MS },
    });
    caller = m.name as string;
    await givenPublished(developer, m, CALLER(dependency));
    site = await givenSite(server.admin);
    await site.client.ok(InstallAddonDocument, { id: dependency, config: {} });
    await site.client.ok(InstallAddonDocument, { id: caller, config: {} });
  });
  after(() => server.close());

  const records = async (addon: string): Promise<Lineage[]> => {
    await server.app.runtime.recorder.flush();
    return (await site.client.ok(ExecutionLineageDocument, { addon, first: 50 })).executions.edges.map(
      (e) => e.node as Lineage,
    );
  };

  for (const fn of ['spin', 'async-spin']) {
    it(`stops a dependency that spins for 30 s ${fn === 'spin' ? 'from its start' : 'after an SDK answer'} within the caller's deadline plus grace, and records it as cancelled by its caller`, async () => {
      // given: the caller has 1.5 s; its dependency would spin for 30 s
      const started = performance.now();
      // when
      const result = await site.client.request(ExecuteAddonFunctionDocument, {
        addonId: caller,
        function: 'call-spin',
        data: { fn },
      });
      const callerElapsed = performance.now() - started;
      // then: the caller failed on its own time limit, at about its deadline
      assert.equal(result.errors?.[0].extensions?.code, 'EXECUTION_TIMEOUT', JSON.stringify(result.errors));
      assert.ok(callerElapsed < CALLER_TIMEOUT_MS + GRACE_MS, `caller answered after ${callerElapsed} ms`);
      // and the dependency stopped within the caller's deadline plus grace, said why, and names its caller
      let dep: Lineage | undefined;
      let parent: Lineage | undefined;
      for (let i = 0; i < 50 && !(dep && parent); i += 1) {
        dep = (await records(dependency)).find((r) => r.entry === fn);
        parent = (await records(caller)).find((r) => r.id === dep?.parentExecutionId);
        if (!(dep && parent)) await new Promise((resolve) => setTimeout(resolve, 100));
      }
      assert.ok(dep, 'the dependency call has a record');
      assert.equal(dep.status, 'EXECUTION_CANCELLED');
      assert.match(dep.errorMessage ?? '', /caller's deadline passed/);
      assert.ok(dep.durationMs < CALLER_TIMEOUT_MS + GRACE_MS, `dependency ran ${dep.durationMs} ms`);
      assert.ok(parent, 'parentExecutionId names the caller’s record');
      assert.equal(parent.entry, 'call-spin');
      assert.equal(parent.status, 'EXECUTION_TIMEOUT');
      // the dependency's worker is free again: a quick call answers
      const quick = await site.client.ok(ExecuteAddonFunctionDocument, {
        addonId: caller,
        function: 'call-quick',
        data: { n: 1 },
      });
      assert.deepEqual(quick.executeAddonFunction, { quick: { n: 1 } });
      await server.app.runtime.recorder.flush();
      const ofThisRun = (await records(dependency)).filter((r) => r.entry === fn);
      assert.equal(ofThisRun.length, 1);
    });
  }

  it('lets a dependency that finishes in time succeed, linked to its caller, and counts a caller’s timeout against the caller only', async () => {
    // given: both cancellation tests above ran (two callers timed out, two dependency calls cancelled)
    // when
    const viaCaller = await site.client.ok(ExecuteAddonFunctionDocument, {
      addonId: caller,
      function: 'call-quick',
      data: { n: 2 },
    });
    const direct = await site.client.ok(ExecuteAddonFunctionDocument, {
      addonId: dependency,
      function: 'quick',
      data: 3,
    });
    // then
    assert.deepEqual(viaCaller.executeAddonFunction, { quick: { n: 2 } });
    assert.deepEqual(direct.executeAddonFunction, { quick: 3 });
    const quick = (await records(dependency)).filter((r) => r.entry === 'quick' && r.status === 'SUCCESS');
    assert.ok(quick.some((r) => r.parentExecutionId !== null));
    assert.ok(quick.some((r) => r.parentExecutionId === null));
    // Failures are counted after the call has answered: wait for the second.
    let breakers = await server.app.database.prisma.addonQuarantine.findMany({
      where: { siteId: site.siteId },
    });
    for (let i = 0; i < 50 && breakers[0]?.failures !== 2; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      breakers = await server.app.database.prisma.addonQuarantine.findMany({
        where: { siteId: site.siteId },
      });
    }
    assert.deepEqual(
      breakers.map((b) => [b.addonName, b.state, b.failures, b.lastReason]),
      [[caller, 'CLOSED', 2, 'EXECUTION_TIMEOUT']],
    );
  });
});
