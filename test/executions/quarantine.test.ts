import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { generateApiKey } from '../../src/auth/api-key.js';
import { loadConfig } from '../../src/config/app-config.js';
import { createApp, type App } from '../../src/app/create-app.js';
import { AddonQuarantinedError } from '../../src/errors/index.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';
import { startTestServer, testRedisEnv, type TestServer } from '../support/test-server.js';
import { GraphQLClient } from '../support/graphql-client.js';
import { givenDeveloper, givenPublished, givenSite, manifest } from '../support/fixtures.js';
import {
  AddonQuarantinesDocument,
  EmitEventDocument,
  ExecuteAddonFunctionDocument,
  ExecutionLineageDocument,
  InstallAddonDocument,
  InstallationSafetyDocument,
  ChangeAddonVersionAcceptingDocument,
  UninstallAddonDocument,
} from '../generated/graphql.js';

const THRESHOLD = 3;
const BACKOFF_MS = 1500;

/** `work` answers at once, spins into its CPU limit with `spin`, throws with `fail`. */
const SOURCE = `module.exports = { functions: {
  work: (d, ctx) => {
    if (d && d.spin) { for (;;) {} }
    if (d && d.fail) throw new Error('declined');
    return { ok: true, site: ctx.site.id };
  },
}, handlers: { onOrder: () => ({ handled: true }) } };`;

interface Instance {
  app: App;
  url: string;
  logs: string[];
}

/** A server over `databaseUrl` whose log lines are kept. */
async function startInstance(databaseUrl: string, adminKey: string): Promise<Instance> {
  const logs: string[] = [];
  const stream = new PassThrough();
  stream.on('data', (chunk: Buffer) => logs.push(...chunk.toString('utf8').split('\n').filter(Boolean)));
  const app = await createApp(
    loadConfig({
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: '0',
      DATABASE_URL: databaseUrl,
      ...testRedisEnv(databaseUrl),
      ADMIN_API_KEY: adminKey,
      MIGRATE_ON_START: 'false',
      LOG_LEVEL: 'info',
      RATE_LIMIT_DEFAULT: '0',
      QUARANTINE_THRESHOLD: String(THRESHOLD),
      QUARANTINE_WINDOW_MS: '60000',
      QUARANTINE_BACKOFF_MS: String(BACKOFF_MS),
      QUARANTINE_POLL_MS: '200',
      // Two quick attempts: a delivery that spent its attempts on a quarantine would be DEAD at once.
      DELIVERY_MAX_ATTEMPTS: '2',
      DELIVERY_BACKOFF_BASE_MS: '50',
      DELIVERY_POLL_MS: '50',
    }),
    { logStream: stream },
  );
  return { app, url: await app.listen(), logs };
}

/** Polls `read` until `done` holds (generous bound for a loaded machine). */
async function eventually<T>(read: () => Promise<T>, done: (value: T) => boolean, what: string): Promise<T> {
  let value = await read();
  for (let i = 0; i < 100 && !done(value); i += 1) {
    await sleep(100);
    value = await read();
  }
  assert.ok(done(value), `${what}: ${JSON.stringify(value)}`);
  return value;
}

describe('quarantine: a circuit breaker per addon version and site', () => {
  let database: TestDatabase;
  let first: Instance;
  let admin: GraphQLClient;
  let developer: GraphQLClient;
  const adminKey = generateApiKey();

  before(async () => {
    database = await createTestDatabase();
    first = await startInstance(database.url, adminKey);
    admin = new GraphQLClient(first.url, adminKey);
    developer = (await givenDeveloper(admin)).client;
  });
  after(async () => {
    await first?.app.close();
    await database?.drop();
  });

  /** A fresh addon version installed on two sites, A and B. */
  async function givenSharedAddon() {
    const m = manifest({
      configSchema: { type: 'object' },
      widgets: [],
      functions: [{ name: 'work' }],
      events: { handles: { 'order.created': 'onOrder' } },
      limits: { cpuTimeMs: 100, timeoutMs: 2000 },
    });
    const name = m.name as string;
    await givenPublished(developer, m, SOURCE);
    const a = await givenSite(admin);
    const b = await givenSite(admin);
    await a.client.ok(InstallAddonDocument, { id: name, config: {} });
    await b.client.ok(InstallAddonDocument, { id: name, config: {} });
    const call = (site: typeof a, data: unknown = {}) =>
      site.client.request(ExecuteAddonFunctionDocument, { addonId: name, function: 'work', data });
    const row = (siteId: string) =>
      first.app.database.prisma.addonQuarantine.findFirst({ where: { addonName: name, siteId } });
    return { m, name, a, b, call, row };
  }

  /** Spins `THRESHOLD` calls on site A into their CPU limit, then waits for the breaker to open. */
  async function openOnA(addon: Awaited<ReturnType<typeof givenSharedAddon>>) {
    for (let i = 0; i < THRESHOLD; i += 1) {
      const spun = await addon.call(addon.a, { spin: true });
      assert.equal(spun.errors?.[0].extensions?.code, 'EXECUTION_TIMEOUT');
    }
    return eventually(
      () => addon.row(addon.a.siteId),
      (r) => r?.state === 'OPEN',
      'the breaker opens',
    );
  }

  it('opens after repeated limit failures on one site: that site is refused with ADDON_QUARANTINED and a retry-after, recorded, listed, counted and logged once; another site of the same version is not affected', async () => {
    // given
    const addon = await givenSharedAddon();
    // when
    const opened = await openOnA(addon);
    const refused = await addon.call(addon.a);
    const otherSite = await addon.call(addon.b);
    const rest = await fetch(`${first.url}/api/addons/${addon.name}/execute`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${addon.a.key}` },
      body: JSON.stringify({ action: 'work', data: {} }),
    });
    // then: refused on A, with when to come back
    const error = refused.errors?.[0];
    assert.equal(error?.extensions?.code, 'ADDON_QUARANTINED');
    assert.equal(error?.extensions?.reason, 'EXECUTION_TIMEOUT');
    const retryAfter = error?.extensions?.retryAfterSeconds as number;
    assert.ok(
      retryAfter >= 1 && retryAfter <= Math.ceil(BACKOFF_MS / 1000),
      `retryAfterSeconds ${retryAfter}`,
    );
    assert.match(error!.message, /quarantined on this site/);
    assert.equal(rest.status, 503);
    assert.ok(Number(rest.headers.get('retry-after')) >= 1);
    assert.equal(((await rest.json()) as { error: { code: string } }).error.code, 'ADDON_QUARANTINED');
    // and B runs the same version as before
    assert.deepEqual(otherSite.data?.executeAddonFunction, { ok: true, site: addon.b.siteId });
    assert.equal(opened?.trips, 1);
    assert.equal(opened?.lastReason, 'EXECUTION_TIMEOUT');
    // the execution records say so
    await first.app.runtime.recorder.flush();
    const records = (await addon.a.client.ok(ExecutionLineageDocument, { addon: addon.name, first: 20 }))
      .executions.edges;
    assert.ok(
      records.some((e) => e.node.status === 'ADDON_QUARANTINED' && /quarantined/.test(e.node.errorMessage!)),
    );
    // listed for A (query and installation), not for B
    const listedA = (await addon.a.client.ok(AddonQuarantinesDocument, {})).addonQuarantines;
    assert.deepEqual(
      listedA.map((q) => [q.addonName, q.state, q.lastReason, q.trips]),
      [[addon.name, 'OPEN', 'EXECUTION_TIMEOUT', 1]],
    );
    assert.deepEqual((await addon.b.client.ok(AddonQuarantinesDocument, {})).addonQuarantines, []);
    const installationA = (await addon.a.client.ok(InstallationSafetyDocument, {})).installations[0];
    const installationB = (await addon.b.client.ok(InstallationSafetyDocument, {})).installations[0];
    assert.equal(installationA.quarantine?.state, 'OPEN');
    assert.equal(installationB.quarantine, null);
    // counted in bounded metrics
    const metrics = await (await fetch(`${first.url}/metrics`)).text();
    assert.match(metrics, /addon_quarantine_transitions_total\{to="OPEN"\} [1-9]/);
    assert.match(metrics, /addon_quarantine_refusals_total [1-9]/);
    assert.match(metrics, /addon_quarantines_open [1-9]/);
    // one log line for the change
    const lines = first.logs.filter((l) => l.includes(addon.name) && l.includes('CLOSED -> OPEN'));
    assert.equal(lines.length, 1, lines.join('\n'));
    assert.equal(JSON.parse(lines[0]).quarantine.siteId, addon.a.siteId);
  });

  it('recovers by itself: after the backoff one probe call runs, and its success closes the breaker', async () => {
    // given
    const addon = await givenSharedAddon();
    await openOnA(addon);
    // when: the backoff passes
    await sleep(BACKOFF_MS + 300);
    const probe = await addon.call(addon.a);
    const next = await addon.call(addon.a);
    // then
    assert.deepEqual(probe.data?.executeAddonFunction, { ok: true, site: addon.a.siteId });
    assert.deepEqual(next.data?.executeAddonFunction, { ok: true, site: addon.a.siteId });
    const row = await addon.row(addon.a.siteId);
    assert.equal(row?.state, 'CLOSED');
    assert.deepEqual((await addon.a.client.ok(AddonQuarantinesDocument, {})).addonQuarantines, []);
    const changes = first.logs
      .filter((l) => l.includes(addon.name) && l.includes('circuit breaker'))
      .map((l) => (JSON.parse(l) as { msg: string }).msg.replace(/^.*circuit breaker /, ''));
    assert.deepEqual(changes, ['CLOSED -> OPEN', 'OPEN -> HALF_OPEN', 'HALF_OPEN -> CLOSED']);
  });

  it('reopens for twice the backoff when the probe exhausts its limit again', async () => {
    // given
    const addon = await givenSharedAddon();
    await openOnA(addon);
    await sleep(BACKOFF_MS + 300);
    // when: the probe spins again
    const probe = await addon.call(addon.a, { spin: true });
    const reopened = await eventually(
      () => addon.row(addon.a.siteId),
      (r) => r?.state === 'OPEN' && r.trips === 2,
      'the breaker reopens',
    );
    const refused = await addon.call(addon.a);
    // then
    assert.equal(probe.errors?.[0].extensions?.code, 'EXECUTION_TIMEOUT');
    const backoff = reopened!.openUntil!.getTime() - reopened!.changedAt.getTime();
    assert.ok(Math.abs(backoff - 2 * BACKOFF_MS) < 50, `second backoff ${backoff} ms`);
    assert.equal(refused.errors?.[0].extensions?.code, 'ADDON_QUARANTINED');
    assert.ok((refused.errors?.[0].extensions?.retryAfterSeconds as number) >= 2);
  });

  it('is shared by every instance: another instance refuses the site at once, and of concurrent callers on both only one gets the probe', async () => {
    // given: a second instance of the same deployment
    const second = await startInstance(database.url, adminKey);
    try {
      const addon = await givenSharedAddon();
      const secondA = new GraphQLClient(second.url, addon.a.key);
      const secondB = new GraphQLClient(second.url, addon.b.key);
      const viaSecond = (client: GraphQLClient) =>
        client.request(ExecuteAddonFunctionDocument, { addonId: addon.name, function: 'work', data: {} });
      // when: the first instance opens the breaker
      const opened = await openOnA(addon);
      // then: the second refuses site A (it heard of it, or read it) and still serves site B
      const refused = await eventually(
        () => viaSecond(secondA),
        (r) => r.errors?.[0].extensions?.code === 'ADDON_QUARANTINED',
        'the second instance refuses',
      );
      assert.equal(refused.errors?.[0].extensions?.reason, 'EXECUTION_TIMEOUT');
      assert.equal((await viaSecond(secondB)).errors, undefined);
      // when: the backoff is over and callers on both instances ask at once
      await sleep(BACKOFF_MS + 300);
      const key = {
        addonVersionId: opened!.addonVersionId,
        siteId: addon.a.siteId,
        addonId: opened!.addonId,
        addonName: addon.name,
        version: '1.0.0',
      };
      const outcomes = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) =>
          (async () => (i % 2 === 0 ? first : second).app.services.quarantine.admit(key, () => 2000))(),
        ),
      );
      // then: exactly one probe, the others refused
      const probes = outcomes.filter((o) => o.status === 'fulfilled' && o.value.probe);
      const refusedNow = outcomes.filter(
        (o) => o.status === 'rejected' && o.reason instanceof AddonQuarantinedError,
      );
      assert.equal(probes.length, 1);
      assert.equal(refusedNow.length, 9);
    } finally {
      await second.app.close();
    }
  });

  it('never opens for the addon’s own errors or the caller’s mistakes', async () => {
    // given
    const addon = await givenSharedAddon();
    // when: more failed calls than the threshold, none of them a limit
    for (let i = 0; i < THRESHOLD + 2; i += 1) {
      const failed = await addon.call(addon.a, { fail: true });
      assert.equal(failed.errors?.[0].extensions?.code, 'ADDON_ERROR');
      const missing = await addon.a.client.request(ExecuteAddonFunctionDocument, {
        addonId: addon.name,
        function: 'nope',
        data: {},
      });
      assert.equal(missing.errors?.[0].extensions?.code, 'NOT_FOUND');
    }
    const after = await addon.call(addon.a);
    // then
    assert.deepEqual(after.data?.executeAddonFunction, { ok: true, site: addon.a.siteId });
    assert.equal(await addon.row(addon.a.siteId), null);
  });

  it('keeps a delivery to a quarantined handler pending until the breaker lets it run, without spending its attempts', async () => {
    // given: the version quarantined on site A, deliveries allowed two attempts 50 ms apart
    const addon = await givenSharedAddon();
    await openOnA(addon);
    // when: an event its handler takes is emitted on site A
    const { emitEvent } = await addon.a.client.ok(EmitEventDocument, { name: 'order.created', data: {} });
    // then: the delivery waits out the breaker, then runs (as its probe) and succeeds
    const delivery = await eventually(
      () =>
        first.app.database.prisma.delivery.findFirst({
          where: { eventId: emitEvent.id },
          include: { attemptLog: { orderBy: { startedAt: 'asc' } } },
        }),
      (d) => d?.status === 'SUCCEEDED' || d?.status === 'DEAD',
      'the delivery to finish',
    );
    assert.equal(delivery?.status, 'SUCCEEDED');
    assert.equal(delivery?.attemptLog[0]?.status, 'ADDON_QUARANTINED');
    assert.equal(delivery?.attemptLog.at(-1)?.status, 'SUCCEEDED');
    const waited =
      Date.parse(String(delivery?.completedAt?.toISOString())) -
      Date.parse(String(delivery?.createdAt.toISOString()));
    assert.ok(waited >= BACKOFF_MS / 2, `it waited for the breaker (${waited} ms)`);
  });

  it('never refuses lifecycle hooks: a quarantined site can move to a fixed version, which runs at once, or uninstall', async () => {
    // given: quarantined on A and B
    const addon = await givenSharedAddon();
    await openOnA(addon);
    for (let i = 0; i < THRESHOLD; i += 1) await addon.call(addon.b, { spin: true });
    await eventually(
      () => addon.row(addon.b.siteId),
      (r) => r?.state === 'OPEN',
      'B opens',
    );
    await givenPublished(
      developer,
      { ...addon.m, version: '1.0.1' },
      SOURCE.replace('for (;;) {}', 'return 0;'),
    );
    // when
    const moved = await addon.a.client.ok(ChangeAddonVersionAcceptingDocument, {
      id: addon.name,
      version: '1.0.1',
    });
    const fixed = await addon.call(addon.a, { spin: true });
    const uninstalled = await addon.b.client.request(UninstallAddonDocument, { id: addon.name });
    // then
    assert.equal(moved.changeAddonVersion.version.version, '1.0.1');
    assert.equal(fixed.data?.executeAddonFunction, 0);
    assert.equal(uninstalled.errors, undefined);
    assert.equal(uninstalled.data?.uninstallAddon, true);
  });
});

describe('quarantine: worker crashes count against the version blamed for them', () => {
  let server: TestServer;
  let developer: GraphQLClient;

  before(async () => {
    // One worker, so a crash takes down every call in flight.
    server = await startTestServer({
      SANDBOX_WORKERS: '1',
      SANDBOX_ALLOW_CRASH_TEST: 'true',
      QUARANTINE_THRESHOLD: '2',
      QUARANTINE_BACKOFF_MS: '600000',
    });
    developer = (await givenDeveloper(server.admin)).client;
  });
  after(() => server?.close());

  it('does not count a crash shared with another version’s calls (the bystander runs again), and quarantines a version that crashes its worker alone', async () => {
    // given: a crasher and a bystander that waits on the host, on one site and one worker
    const crasher = manifest({
      configSchema: { type: 'object' },
      widgets: [],
      functions: [{ name: 'crash' }],
    });
    const bystander = manifest({
      configSchema: { type: 'object' },
      widgets: [],
      permissions: ['storage.read'],
      functions: [{ name: 'wait' }],
      // Room to run again after a crash that names no culprit (docs/decisions/0008).
      limits: { timeoutMs: 5000 },
    });
    await givenPublished(
      developer,
      crasher,
      `module.exports = { functions: { crash: () => { __sandboxCrashWorkerForTest(); return 1; } } };`,
    );
    await givenPublished(
      developer,
      bystander,
      `module.exports = { functions: { wait: async (d, ctx) => {
        const until = Date.now() + d.ms;
        // At most 900 reads: a run again after a crash starts its count over (1000 SDK calls a call).
        let reads = 0;
        while (Date.now() < until && reads++ < 900) await ctx.storage.get('k');
        return 'waited';
      } } };`,
    );
    const site = await givenSite(server.admin);
    await site.client.ok(InstallAddonDocument, { id: crasher.name as string, config: {} });
    await site.client.ok(InstallAddonDocument, { id: bystander.name as string, config: {} });
    const call = (addon: Record<string, unknown>, fn: string, data: unknown = {}) =>
      site.client.request(ExecuteAddonFunctionDocument, {
        addonId: addon.name as string,
        function: fn,
        data,
      });
    const rows = () =>
      server.app.database.prisma.addonQuarantine.findMany({
        where: { siteId: site.siteId },
        orderBy: { addonName: 'asc' },
      });
    const waitReady = async () =>
      eventually(
        () => call(bystander, 'wait', { ms: 0 }),
        (r) => r.errors === undefined,
        'the worker is back',
      );

    // when: the crasher kills the worker while the bystander has a call in flight on it
    await waitReady();
    const waiting = call(bystander, 'wait', { ms: 1500 });
    await sleep(300);
    const crashed = await call(crasher, 'crash');
    // then: no culprit is named by that crash, so both run again on the worker's replacement, one
    // at a time: the crasher crashes it alone (held responsible: one crash counted), the bystander
    // finishes, and is never held responsible
    assert.equal(crashed.errors?.[0].extensions?.code, 'SANDBOX_CRASHED');
    const waited = await waiting;
    assert.deepEqual(waited.data?.executeAddonFunction, 'waited', JSON.stringify(waited.errors));
    await sleep(500);
    assert.ok(!(await rows()).some((q) => q.addonName === bystander.name));

    // when: the crasher kills the worker twice more with nothing else on it (its breaker may open
    // before the second: its crash of the replacement counted too)
    for (let i = 0; i < 2; i += 1) {
      await waitReady();
      const code = (await call(crasher, 'crash')).errors?.[0].extensions?.code;
      assert.ok(code === 'SANDBOX_CRASHED' || (i === 1 && code === 'ADDON_QUARANTINED'), String(code));
    }
    // then: it is quarantined for crashing workers; the bystander still runs
    const opened = await eventually(
      rows,
      (r) => r.some((q) => q.state === 'OPEN'),
      'the crasher is quarantined',
    );
    assert.deepEqual(
      opened.map((q) => [q.addonName, q.state, q.lastReason]),
      [[crasher.name, 'OPEN', 'SANDBOX_CRASHED']],
    );
    const refused = await call(crasher, 'crash');
    assert.equal(refused.errors?.[0].extensions?.code, 'ADDON_QUARANTINED');
    assert.match(refused.errors![0].message, /crashing sandbox workers/);
    await waitReady();
  });
});
