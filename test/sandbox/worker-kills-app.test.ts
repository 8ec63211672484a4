import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { generateApiKey } from '../../src/auth/api-key.js';
import { createApp, type App } from '../../src/app/create-app.js';
import { loadConfig } from '../../src/config/app-config.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';
import { GraphQLClient } from '../support/graphql-client.js';
import { testRedisEnv } from '../support/test-server.js';
import { givenDeveloper, givenPublished, givenSite, manifest } from '../support/fixtures.js';
import {
  DashboardSandboxDocument,
  ExecuteAddonFunctionDocument,
  InstallAddonDocument,
  type DashboardSandboxQuery,
} from '../generated/graphql.js';

const CRASHER = `module.exports = { functions: {
  crash: (d) => { __sandboxCrashWorkerForTest(); return new Promise(() => {}); },
  ping: () => 'pong',
} };`;

const KILLS = `query { dashboardStats { workerKills { reason workerId culprits { addonName version siteId } failedCalls retriedCalls rssMb } } }`;

type KillsResponse = {
  dashboardStats: {
    workerKills: {
      reason: string;
      culprits: { addonName: string; version: string; siteId: string }[];
      failedCalls: number;
    }[];
  };
};

describe('worker kills in the server: logged, counted, on the dashboard', () => {
  let database: TestDatabase;
  let app: App;
  let admin: GraphQLClient;
  let url: string;
  const logLines: string[] = [];

  before(async () => {
    database = await createTestDatabase();
    const adminKey = generateApiKey();
    const config = loadConfig({
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: '0',
      DATABASE_URL: database.url,
      ...testRedisEnv(database.url),
      ADMIN_API_KEY: adminKey,
      MIGRATE_ON_START: 'false',
      LOG_LEVEL: 'warn',
      RATE_LIMIT_DEFAULT: '0',
      SANDBOX_ALLOW_CRASH_TEST: 'true',
    });
    const logStream = new Writable({
      write(chunk: Buffer, _encoding, done) {
        logLines.push(...chunk.toString('utf8').split('\n').filter(Boolean));
        done();
      },
    });
    app = await createApp(config, { logStream });
    url = await app.listen();
    admin = new GraphQLClient(url, adminKey);
  });
  after(async () => {
    await app?.close();
    await database?.drop();
  });

  it('a crash is logged once with addon, version and site, counted by reason, and shown to whom it concerns', async () => {
    // given: a published addon that crashes its worker, installed on one of two sites
    const developer = (await givenDeveloper(admin)).client;
    const m = manifest({
      configSchema: { type: 'object' },
      widgets: [],
      functions: [{ name: 'crash' }, { name: 'ping' }],
      limits: { timeoutMs: 3000 },
    });
    const addonName = m.name as string;
    await givenPublished(developer, m, CRASHER);
    const site = await givenSite(admin);
    const otherSite = await givenSite(admin);
    await site.client.ok(InstallAddonDocument, { id: addonName, config: {} });
    // when: a call crashes the worker
    const crashed = await site.client.request(ExecuteAddonFunctionDocument, {
      addonId: addonName,
      function: 'crash',
      data: { secret: 'do-not-log-me' },
    });
    // then: the call fails with SANDBOX_CRASHED
    assert.equal(crashed.errors?.[0]?.extensions?.code, 'SANDBOX_CRASHED');
    // and one log line names the addon, version and site, and not the input
    const kills = logLines.filter((line) => line.includes('sandbox worker'));
    assert.equal(kills.length, 1, kills.join('\n'));
    const logged = JSON.parse(kills[0]) as Record<string, unknown>;
    assert.equal(logged.component, 'sandbox');
    assert.equal(logged.reason, 'crashed');
    assert.deepEqual(
      (logged.guilty as { addon: string; version: string; siteId: string }[]).map((g) => [
        g.addon,
        g.version,
        g.siteId,
      ]),
      [[addonName, '1.0.0', site.siteId]],
    );
    assert.doesNotMatch(kills[0], /do-not-log-me/);
    // and the metric counts it by reason
    const metrics = await (await fetch(`${url}/metrics`)).text();
    assert.match(metrics, /sandbox_worker_kills_total\{reason="crashed"\} 1/);
    // and the dashboard lists it for the admin and the site, not for another site
    const forAdmin = (await admin.raw<KillsResponse>(KILLS)).data!.dashboardStats.workerKills;
    assert.deepEqual(
      forAdmin.map((k) => [k.reason, k.failedCalls, k.culprits.map((c) => [c.addonName, c.siteId])]),
      [['crashed', 1, [[addonName, site.siteId]]]],
    );
    const forSite = (await site.client.raw<KillsResponse>(KILLS)).data!.dashboardStats.workerKills;
    assert.equal(forSite.length, 1);
    const forOther = (await otherSite.client.raw<KillsResponse>(KILLS)).data!.dashboardStats.workerKills;
    assert.deepEqual(forOther, []);
    // and the addon works again on the replacement
    const pong = await site.client.ok(ExecuteAddonFunctionDocument, {
      addonId: addonName,
      function: 'ping',
      data: {},
    });
    assert.equal(pong.executeAddonFunction, 'pong');
  });

  it("shows admins this instance's isolates kept and the memory each takes, and other keys nothing", async () => {
    // given: an addon installed on two sites, each called once (an isolate per version and site)
    const developer = (await givenDeveloper(admin)).client;
    const m = manifest({ configSchema: { type: 'object' }, widgets: [], functions: [{ name: 'ping' }] });
    await givenPublished(developer, m, `module.exports = { functions: { ping: () => 'pong' } };`);
    const sites = [await givenSite(admin), await givenSite(admin)];
    for (const site of sites) {
      await site.client.ok(InstallAddonDocument, { id: m.name as string, config: {} });
      await site.client.ok(ExecuteAddonFunctionDocument, {
        addonId: m.name as string,
        function: 'ping',
        data: {},
      });
    }
    // when: the admin reads the dashboard (workers report their isolates within moments)
    let sandbox: DashboardSandboxQuery['dashboardStats']['sandbox'] = null;
    for (let i = 0; i < 40; i += 1) {
      sandbox = (await admin.ok(DashboardSandboxDocument)).dashboardStats.sandbox;
      if (sandbox && sandbox.isolates >= 2) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // then: both isolates are counted, each measured in MB, within the budget of both workers
    assert.ok(sandbox, 'the admin sees the sandbox');
    assert.ok(sandbox.isolates >= 2, `${sandbox.isolates} isolates`);
    assert.equal(sandbox.workers, 2);
    assert.ok(
      sandbox.memoryPerIsolateMb !== null &&
        sandbox.memoryPerIsolateMb > 0.1 &&
        sandbox.memoryPerIsolateMb < 64,
    );
    assert.ok(sandbox.isolateMemoryMb <= sandbox.isolateMemoryBudgetMb);
    assert.ok(sandbox.isolateMemoryBudgetMb >= 2 * 256, `${sandbox.isolateMemoryBudgetMb} MB budget`);
    assert.ok(sandbox.workersRssMb > 10);
    // and a site key sees no instance-wide figures
    assert.equal((await sites[0].client.ok(DashboardSandboxDocument)).dashboardStats.sandbox, null);
  });
});
