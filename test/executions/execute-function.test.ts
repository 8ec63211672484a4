import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startTestServer, type TestServer } from '../support/test-server.js';
import {
  givenDeveloper,
  givenInstalledAddon,
  givenPublished,
  givenSite,
  manifest,
} from '../support/fixtures.js';
import type { GraphQLClient } from '../support/graphql-client.js';
import {
  ChangeAddonVersionDocument,
  ExecuteAddonFunctionDocument,
  ExecuteReadonlyAddonFunctionDocument,
  ExecutionsDocument,
  InstallAddonDocument,
  InstallationsDocument,
  SetAddonEnabledDocument,
  UninstallAddonDocument,
} from '../generated/graphql.js';

const ECHO = `module.exports = { functions: {
  echo: (data, ctx) => ({ data, config: ctx.config, site: ctx.site.id, addon: ctx.addon }),
  write: async (data) => ({ wrote: data }),
  slow: async (data, ctx) => { ctx.log('slow call', data); return 'done'; },
  fail: (data, ctx) => { ctx.log('about to decline', data); throw new Error('declined'); },
} };`;

describe('executeAddonFunction', () => {
  let server: TestServer;
  let developer: GraphQLClient;

  before(async () => {
    server = await startTestServer();
    developer = (await givenDeveloper(server.admin)).client;
  });
  after(() => server.close());

  const functions = [
    { name: 'echo', readonly: true },
    { name: 'write' },
    { name: 'slow', readonly: true },
    { name: 'fail' },
    {
      name: 'typed',
      inputSchema: {
        type: 'object',
        required: ['amount'],
        properties: { amount: { type: 'number', minimum: 1 }, currency: { type: 'string', default: 'KRW' } },
      },
    },
  ];
  const TYPED = ECHO.replace('slow:', 'typed: (data) => data, slow:');

  it('runs a function for the caller site with its config, through the mutation, the query and REST', async () => {
    // given
    const { site, name } = await givenInstalledAddon(
      server.admin,
      developer,
      {
        functions,
        configSchema: { type: 'object', properties: { mode: { type: 'string', default: 'test' } } },
      },
      TYPED,
    );
    // when
    const mutation = await site.client.ok(ExecuteAddonFunctionDocument, {
      addonId: name,
      function: 'echo',
      data: { hello: 'world', n: [1, 2] },
    });
    const query = await site.client.ok(ExecuteReadonlyAddonFunctionDocument, {
      addonId: name,
      function: 'echo',
      data: 7,
    });
    const rest = await fetch(`${server.url}/api/addons/${name}/execute`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${site.key}` },
      body: JSON.stringify({ action: 'write', data: { x: 1 } }),
    });
    // then
    assert.deepEqual(mutation.executeAddonFunction, {
      data: { hello: 'world', n: [1, 2] },
      config: { mode: 'test' },
      site: site.siteId,
      addon: { name, version: '1.0.0' },
    });
    assert.equal((query.executeAddonFunction as { data: number }).data, 7);
    assert.equal(rest.status, 200);
    assert.deepEqual(await rest.json(), { result: { wrote: { x: 1 } } });
  });

  it('refuses a non-readonly function through Query, an undeclared function, and bad input, naming the field', async () => {
    const { site, name } = await givenInstalledAddon(server.admin, developer, { functions }, TYPED);
    const viaQuery = await site.client.request(ExecuteReadonlyAddonFunctionDocument, {
      addonId: name,
      function: 'write',
      data: {},
    });
    const undeclared = await site.client.request(ExecuteAddonFunctionDocument, {
      addonId: name,
      function: 'nope',
      data: {},
    });
    const badInput = await site.client.request(ExecuteAddonFunctionDocument, {
      addonId: name,
      function: 'typed',
      data: { amount: 0 },
    });
    const defaulted = await site.client.ok(ExecuteAddonFunctionDocument, {
      addonId: name,
      function: 'typed',
      data: { amount: 5 },
    });
    const restNoAction = await fetch(`${server.url}/api/addons/${name}/execute`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${site.key}` },
      body: JSON.stringify({ data: {} }),
    });
    assert.equal(viaQuery.errors?.[0].extensions?.code, 'BAD_USER_INPUT');
    assert.match(viaQuery.errors![0].message, /not readonly/);
    assert.equal(undeclared.errors?.[0].extensions?.code, 'NOT_FOUND');
    assert.equal(badInput.errors?.[0].extensions?.code, 'BAD_USER_INPUT');
    assert.deepEqual(
      (badInput.errors?.[0].extensions?.fields as { field: string }[]).map((f) => f.field),
      ['data.amount'],
    );
    assert.deepEqual(defaulted.executeAddonFunction, { amount: 5, currency: 'KRW' });
    assert.equal(restNoAction.status, 400);
  });

  it('needs an enabled installation on the caller site', async () => {
    const { site, name } = await givenInstalledAddon(server.admin, developer, { functions }, TYPED);
    const otherSite = await givenSite(server.admin);
    const elsewhere = await otherSite.client.request(ExecuteAddonFunctionDocument, {
      addonId: name,
      function: 'echo',
      data: {},
    });
    await site.client.ok(SetAddonEnabledDocument, { id: name, enabled: false });
    const disabled = await site.client.request(ExecuteAddonFunctionDocument, {
      addonId: name,
      function: 'echo',
      data: {},
    });
    const anonymous = await server.anonymous.request(ExecuteAddonFunctionDocument, {
      addonId: name,
      function: 'echo',
      data: {},
    });
    assert.equal(elsewhere.errors?.[0].extensions?.code, 'NOT_FOUND');
    assert.equal(disabled.errors?.[0].extensions?.code, 'CONFLICT');
    assert.equal(anonymous.errors?.[0].extensions?.code, 'UNAUTHENTICATED');
  });

  it('records every execution with status and logs, listable per site with filters', async () => {
    // given
    const { site, name } = await givenInstalledAddon(server.admin, developer, { functions }, TYPED);
    await site.client.ok(ExecuteAddonFunctionDocument, { addonId: name, function: 'slow', data: { a: 1 } });
    await site.client.request(ExecuteAddonFunctionDocument, { addonId: name, function: 'typed', data: {} });
    const failed = await site.client.request(ExecuteAddonFunctionDocument, {
      addonId: name,
      function: 'fail',
      data: {},
    });
    // when: records are written in batches, so wait for the flush
    await server.app.runtime.recorder.flush();
    const listed = await site.client.ok(ExecutionsDocument, { addon: name, kind: 'function', first: 10 });
    const failures = await site.client.ok(ExecutionsDocument, { addon: name, entry: 'fail' });
    const all = await site.client.ok(ExecutionsDocument, { addon: name, first: 10 });
    const otherSite = await givenSite(server.admin);
    const foreign = await otherSite.client.ok(ExecutionsDocument, { addon: name });
    // then: the failing function ran once (its error is reported as is, not by a second run), and
    // its record keeps what it logged before failing
    assert.equal(failed.errors?.[0]?.extensions?.code, 'ADDON_ERROR');
    assert.deepEqual(
      failures.executions.edges.map((e) => [
        e.node.status,
        (e.node.logs as { level: string; message: string }[]).map((l) => `${l.level}: ${l.message}`),
      ]),
      [['ADDON_ERROR', ['info: about to decline {}']]],
    );
    // The failed input validation never reached the sandbox, so one record for the other calls.
    const [record] = listed.executions.edges.map((e) => e.node).filter((node) => node.entry !== 'fail');
    assert.equal(listed.executions.edges.length, 2);
    assert.equal(record.entry, 'slow');
    assert.equal(record.kind, 'function');
    assert.equal(record.status, 'SUCCESS');
    assert.equal(record.siteId, site.siteId);
    assert.ok(record.durationMs > 0);
    assert.match(JSON.stringify(record.logs), /slow call/);
    assert.equal(foreign.executions.edges.length, 0);
    // The install hook ran too (a module without one succeeds with null).
    assert.deepEqual(
      all.executions.edges.map((e) => `${e.node.kind}:${e.node.entry}`),
      ['function:fail', 'function:slow', 'hook:install'],
    );
    // The hook loaded the module for this site; the function call after it found it warm.
    assert.deepEqual(
      all.executions.edges.map((e) => e.node.cold),
      [false, false, true],
    );
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(
      metrics,
      /addon_executions_total\{addon_id="[^"]+",function_name="function:slow",status="SUCCESS"\} 1/,
    );
    assert.match(
      metrics,
      /addon_response_time_seconds_bucket\{le="0.5",addon_id="[^"]+",function_name="function:slow"\} 1/,
    );
  });
});

describe('the addon SDK through GraphQL', () => {
  let server: TestServer;
  let developer: GraphQLClient;
  let upstream: Server;
  let upstreamHost: string;

  before(async () => {
    server = await startTestServer();
    developer = (await givenDeveloper(server.admin)).client;
    upstream = createServer((req, res) => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ path: req.url, method: req.method }));
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    upstreamHost = `127.0.0.1:${(upstream.address() as AddressInfo).port}`;
  });
  after(async () => {
    upstream.close();
    await server.close();
  });

  const run = (client: GraphQLClient, addonId: string, fn: string, data: unknown = {}) =>
    client.request(ExecuteAddonFunctionDocument, { addonId, function: fn, data });

  const STORAGE = `module.exports = { functions: {
    put: async (d, ctx) => { await ctx.storage.set(d.key, d.value); return true; },
    get: (d, ctx) => ctx.storage.get(d.key),
    del: (d, ctx) => ctx.storage.delete(d.key),
    list: (d, ctx) => ctx.storage.list({ prefix: d.prefix }),
  } };`;
  const storageFns = ['put', 'get', 'del', 'list'].map((name) => ({ name }));

  it('gives each addon and site its own storage', async () => {
    // given: one addon installed on two sites
    const { site, name } = await givenInstalledAddon(
      server.admin,
      developer,
      { permissions: ['storage.read', 'storage.write'], functions: storageFns },
      STORAGE,
    );
    const other = await givenSite(server.admin);
    await other.client.ok(InstallAddonDocument, { id: name, config: {} });
    // when
    await run(site.client, name, 'put', { key: 'cart:1', value: { items: [1, 2] } });
    await run(site.client, name, 'put', { key: 'cart:2', value: 'b' });
    await run(site.client, name, 'put', { key: 'other', value: 3 });
    const got = await run(site.client, name, 'get', { key: 'cart:1' });
    const listed = await run(site.client, name, 'list', { prefix: 'cart:' });
    const otherSite = await run(other.client, name, 'get', { key: 'cart:1' });
    const deleted = await run(site.client, name, 'del', { key: 'cart:1' });
    const afterDelete = await run(site.client, name, 'get', { key: 'cart:1' });
    // then
    assert.deepEqual(got.data?.executeAddonFunction, { items: [1, 2] });
    assert.deepEqual(listed.data?.executeAddonFunction, { keys: ['cart:1', 'cart:2'], cursor: null });
    assert.equal(otherSite.data?.executeAddonFunction, null);
    assert.equal(deleted.data?.executeAddonFunction, true);
    assert.equal(afterDelete.data?.executeAddonFunction, null);
  });

  it('refuses undeclared SDK use with PERMISSION_DENIED naming the permission', async () => {
    const { site, name } = await givenInstalledAddon(
      server.admin,
      developer,
      {
        permissions: ['storage.read'],
        functions: [...storageFns, { name: 'emit' }, { name: 'fetch' }, { name: 'call' }],
      },
      STORAGE.replace(
        'put:',
        `emit: (d, ctx) => ctx.events.emit('x.happened', {}),
         fetch: (d, ctx) => ctx.http.fetch('http://${'${d.host}'}/'),
         call: (d, ctx) => ctx.addons.call('anything', 'f', {}),
         put:`,
      ),
    );
    const put = await run(site.client, name, 'put', { key: 'k', value: 1 });
    const emit = await run(site.client, name, 'emit');
    const fetched = await run(site.client, name, 'fetch', { host: upstreamHost });
    const called = await run(site.client, name, 'call');
    assert.equal(put.errors?.[0].extensions?.code, 'PERMISSION_DENIED');
    assert.match(put.errors![0].message, /storage\.write/);
    assert.equal(emit.errors?.[0].extensions?.code, 'PERMISSION_DENIED');
    assert.match(emit.errors![0].message, /events\.emit/);
    assert.equal(fetched.errors?.[0].extensions?.code, 'PERMISSION_DENIED');
    assert.match(fetched.errors![0].message, /http\.fetch/);
    assert.equal(called.errors?.[0].extensions?.code, 'PERMISSION_DENIED');
  });

  it('stores declared events, checking their data against the declared schema', async () => {
    const { site, name } = await givenInstalledAddon(
      server.admin,
      developer,
      {
        permissions: ['events.emit'],
        events: {
          emits: [
            { name: 'payment.completed', schema: { type: 'object', required: ['orderId'] } },
            'payment.failed',
          ],
        },
        functions: [{ name: 'pay' }, { name: 'bad' }, { name: 'undeclared' }],
      },
      `module.exports = { functions: {
        pay: (d, ctx) => ctx.events.emit('payment.completed', { orderId: d.orderId }),
        bad: (d, ctx) => ctx.events.emit('payment.completed', { nope: true }),
        undeclared: (d, ctx) => ctx.events.emit('refund.processed', {}),
      } };`,
    );
    const paid = await run(site.client, name, 'pay', { orderId: 'o-1' });
    const bad = await run(site.client, name, 'bad');
    const undeclared = await run(site.client, name, 'undeclared');
    const stored = await server.app.database.prisma.event.findMany({ where: { source: name } });
    assert.equal(paid.errors, undefined);
    assert.equal((paid.data?.executeAddonFunction as { id: string }).id, stored[0].id);
    assert.deepEqual(
      stored.map((e) => [e.name, e.siteId, e.data]),
      [['payment.completed', site.siteId, { orderId: 'o-1' }]],
    );
    assert.equal(bad.errors?.[0].extensions?.code, 'BAD_USER_INPUT');
    assert.match(bad.errors![0].message, /orderId/);
    assert.equal(undeclared.errors?.[0].extensions?.code, 'PERMISSION_DENIED');
    assert.match(undeclared.errors![0].message, /refund\.processed/);
  });

  it('calls a declared dependency installed on the same site', async () => {
    // given: inventory, and a shop addon that depends on it
    const inventory = manifest({
      configSchema: { type: 'object' },
      widgets: [],
      functions: [{ name: 'stock' }],
    });
    await givenPublished(
      developer,
      inventory,
      `module.exports = { functions: { stock: (d, ctx) => ({ sku: d.sku, left: 3, site: ctx.site.id }) } };`,
    );
    const shop = manifest({
      configSchema: { type: 'object' },
      widgets: [],
      permissions: ['addons.call'],
      dependencies: { [inventory.name as string]: '^1.0.0' },
      functions: [{ name: 'check' }, { name: 'missing' }],
    });
    await givenPublished(
      developer,
      shop,
      `module.exports = { functions: {
        check: (d, ctx) => ctx.addons.call(${JSON.stringify(inventory.name)}, 'stock', { sku: d.sku }),
        missing: (d, ctx) => ctx.addons.call(${JSON.stringify(inventory.name)}, 'nope', {}),
      } };`,
    );
    const site = await givenSite(server.admin);
    await site.client.ok(InstallAddonDocument, { id: inventory.name as string, config: {} });
    await site.client.ok(InstallAddonDocument, { id: shop.name as string, config: {} });
    // when
    const checked = await run(site.client, shop.name as string, 'check', { sku: 'A1' });
    const missing = await run(site.client, shop.name as string, 'missing');
    // then
    assert.deepEqual(checked.data?.executeAddonFunction, { sku: 'A1', left: 3, site: site.siteId });
    assert.ok(missing.errors?.[0]);
    assert.match(missing.errors![0].message, /nope/);
  });

  it('fetches allow-listed hosts only', async () => {
    const { site, name } = await givenInstalledAddon(
      server.admin,
      developer,
      { permissions: ['http.fetch'], http: { allow: [upstreamHost] }, functions: [{ name: 'get' }] },
      `module.exports = { functions: { get: async (d, ctx) => {
        const r = await ctx.http.fetch(d.url, { method: 'POST', body: 'x' });
        return { status: r.status, body: await r.json() };
      } } };`,
    );
    const allowed = await run(site.client, name, 'get', { url: `http://${upstreamHost}/orders?id=1` });
    const denied = await run(site.client, name, 'get', { url: 'http://127.0.0.2:9/' });
    assert.deepEqual(allowed.data?.executeAddonFunction, {
      status: 200,
      body: { path: '/orders?id=1', method: 'POST' },
    });
    assert.equal(denied.errors?.[0].extensions?.code, 'PERMISSION_DENIED');
  });

  it('applies the manifest limits with clear codes, and the addon keeps working after', async () => {
    const { site, name } = await givenInstalledAddon(
      server.admin,
      developer,
      {
        limits: { timeoutMs: 300, memoryMb: 16, maxOutputBytes: 2000 },
        functions: [{ name: 'loop' }, { name: 'hang' }, { name: 'big' }, { name: 'ok' }],
      },
      `module.exports = { functions: {
        loop: () => { for (;;) {} },
        hang: () => new Promise(() => {}),
        big: () => 'x'.repeat(10000),
        ok: () => 'fine',
      } };`,
    );
    // The memory bomb has time limits of its own: V8 collects again and again as the heap nears
    // its limit (about 70 ms here when idle), which a loaded machine stretched past 300 ms, and
    // once past the default 500 ms of CPU time.
    const bomber = await givenInstalledAddon(
      server.admin,
      developer,
      {
        limits: { timeoutMs: 5000, cpuTimeMs: 5000, memoryMb: 16 },
        functions: [{ name: 'bomb' }, { name: 'ok' }],
      },
      `module.exports = { functions: {
        bomb: () => { const a = []; for (;;) a.push(new Array(100000).fill(1)); },
        ok: () => 'fine',
      } };`,
    );
    const codes: Record<string, string | undefined> = {};
    for (const fn of ['loop', 'hang', 'big']) {
      codes[fn] = (await run(site.client, name, fn)).errors?.[0].extensions?.code;
    }
    codes.bomb = (await run(bomber.site.client, bomber.name, 'bomb')).errors?.[0].extensions?.code;
    const ok = await run(site.client, name, 'ok');
    const bomberOk = await run(bomber.site.client, bomber.name, 'ok');
    assert.deepEqual(codes, {
      loop: 'EXECUTION_TIMEOUT',
      hang: 'EXECUTION_TIMEOUT',
      bomb: 'MEMORY_LIMIT_EXCEEDED',
      big: 'OUTPUT_TOO_LARGE',
    });
    assert.equal(ok.data?.executeAddonFunction, 'fine');
    assert.equal(bomberOk.data?.executeAddonFunction, 'fine');
  });

  it('runs install, upgrade and uninstall hooks; a failing hook rolls the change back with its error', async () => {
    // given
    const hooks = `module.exports = {
      hooks: {
        install: async (ctx) => { await ctx.storage.set('installed', ctx.config.flavour); },
        upgrade: async (from, ctx) => { await ctx.storage.set('upgradedFrom', from); },
      },
      functions: { read: async (d, ctx) => ({ installed: await ctx.storage.get('installed'), upgradedFrom: await ctx.storage.get('upgradedFrom') }) },
    };`;
    const m = manifest({
      permissions: ['storage.read', 'storage.write'],
      configSchema: { type: 'object', properties: { flavour: { type: 'string', default: 'vanilla' } } },
      widgets: [],
      functions: [{ name: 'read' }],
    });
    await givenPublished(developer, m, hooks);
    await givenPublished(developer, { ...m, version: '1.1.0' }, hooks);
    const failing = manifest({ widgets: [], functions: [] });
    await givenPublished(
      developer,
      failing,
      `module.exports = { hooks: { install: () => { throw new Error('cannot reach the bank'); } } };`,
    );
    const site = await givenSite(server.admin);
    // when
    await site.client.ok(InstallAddonDocument, { id: m.name as string, config: {}, version: '1.0.0' });
    const afterInstall = await run(site.client, m.name as string, 'read');
    await site.client.ok(ChangeAddonVersionDocument, { id: m.name as string, version: '1.1.0' });
    const afterUpgrade = await run(site.client, m.name as string, 'read');
    const failed = await site.client.request(InstallAddonDocument, {
      id: failing.name as string,
      config: {},
    });
    await site.client.ok(UninstallAddonDocument, { id: m.name as string });
    // then
    assert.deepEqual(afterInstall.data?.executeAddonFunction, { installed: 'vanilla', upgradedFrom: null });
    assert.deepEqual(afterUpgrade.data?.executeAddonFunction, {
      installed: 'vanilla',
      upgradedFrom: '1.0.0',
    });
    assert.equal(failed.errors?.[0].extensions?.code, 'ADDON_ERROR');
    assert.match(failed.errors![0].message, /cannot reach the bank/);
    const { installations } = await site.client.ok(InstallationsDocument, {});
    assert.deepEqual(installations, []);
    const storage = await server.app.database.prisma.addonStorage.count({ where: { siteId: site.siteId } });
    assert.equal(storage, 0);
  });
});
