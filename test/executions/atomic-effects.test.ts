import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenDeveloper, givenPublished, givenSite, manifest } from '../support/fixtures.js';
import type { GraphQLClient } from '../support/graphql-client.js';
import { EventsDocument, ExecuteAddonFunctionDocument, InstallAddonDocument } from '../generated/graphql.js';
import { eventually } from '../events/helpers.js';

/* eslint-disable @typescript-eslint/no-explicit-any -- addon outputs are JSON read field by field */

/** A dependency that writes and emits, then fails when asked to. */
const DEPENDENCY = `module.exports = { functions: {
  write: async (d, ctx) => {
    await ctx.storage.set('dep:' + d.tag, d.tag);
    await ctx.events.emit('dep.wrote', { tag: d.tag });
    if (d.fail) throw new Error('dependency failed');
    return { wrote: d.tag };
  },
} };`;

/** Every way a call can end after it wrote and emitted, and what it reads of its own writes. */
const SHOP = (dependency: string) => `module.exports = { functions: {
  ok: async (d, ctx) => {
    await ctx.storage.set('k:' + d.tag, { tag: d.tag });
    const { id } = await ctx.events.emit('shop.did', { tag: d.tag });
    return { id };
  },
  fail: async (d, ctx) => {
    await ctx.storage.set('k:' + d.tag, { tag: d.tag });
    await ctx.events.emit('shop.did', { tag: d.tag });
    throw new Error('failed after writing');
  },
  spin: async (d, ctx) => {
    await ctx.storage.set('k:' + d.tag, { tag: d.tag });
    await ctx.events.emit('shop.did', { tag: d.tag });
    for (;;) {}
  },
  crash: async (d, ctx) => {
    await ctx.storage.set('k:' + d.tag, { tag: d.tag });
    await ctx.events.emit('shop.did', { tag: d.tag });
    __sandboxCrashWorkerForTest();
    return new Promise(() => {});
  },
  own: async (d, ctx) => {
    await ctx.storage.set('own:b', 2);
    await ctx.storage.set('own:d', 4);
    await ctx.storage.delete('own:c');
    await ctx.storage.set('own:a', 'replaced');
    const read = { a: await ctx.storage.get('own:a'), b: await ctx.storage.get('own:b'), c: await ctx.storage.get('own:c') };
    const pages = [];
    let cursor;
    do {
      const page = await ctx.storage.list({ prefix: 'own:', limit: 2, cursor });
      pages.push(page.keys);
      cursor = page.cursor ?? undefined;
    } while (cursor);
    const deleted = await ctx.storage.delete('own:d');
    const afterDelete = await ctx.storage.list({ prefix: 'own:' });
    return { read, pages, deleted, afterDelete: afterDelete.keys };
  },
  seed: async (d, ctx) => {
    for (const key of d.keys) await ctx.storage.set(key, key);
    return true;
  },
  big: async (d, ctx) => {
    for (let i = 0; i < d.count; i += 1) await ctx.storage.set('big:' + i, 'x'.repeat(200 * 1024));
    return true;
  },
  'call-then-fail': async (d, ctx) => {
    const result = await ctx.addons.call(${JSON.stringify(dependency)}, 'write', { tag: d.tag, fail: d.dependencyFails })
      .catch((error) => ({ error: error.code }));
    await ctx.storage.set('caller:' + d.tag, result);
    await ctx.events.emit('shop.did', { tag: d.tag });
    if (d.callerFails) throw new Error('caller failed');
    return result;
  },
} };`;

describe('the effects of one call commit together, or not at all', () => {
  let server: TestServer;
  let developer: GraphQLClient;
  let site: Awaited<ReturnType<typeof givenSite>>;
  let shop: string;
  let dependency: string;

  before(async () => {
    server = await startTestServer({ SANDBOX_ALLOW_CRASH_TEST: 'true' });
    developer = (await givenDeveloper(server.admin)).client;
    const dep = manifest({
      configSchema: { type: 'object' },
      widgets: [],
      permissions: ['storage.read', 'storage.write', 'events.emit'],
      functions: [{ name: 'write' }],
      events: { emits: ['dep.wrote'] },
    });
    dependency = dep.name as string;
    await givenPublished(developer, dep, DEPENDENCY);
    const m = manifest({
      configSchema: { type: 'object' },
      widgets: [],
      permissions: ['storage.read', 'storage.write', 'events.emit', 'addons.call'],
      dependencies: { [dependency]: '^1.0.0' },
      functions: ['ok', 'fail', 'spin', 'crash', 'own', 'seed', 'big', 'call-then-fail'].map((name) => ({
        name,
      })),
      events: { emits: ['shop.did'] },
      limits: { timeoutMs: 1500 },
    });
    shop = m.name as string;
    await givenPublished(developer, m, SHOP(dependency));
    site = await givenSite(server.admin);
    await site.client.ok(InstallAddonDocument, { id: dependency, config: {} });
    await site.client.ok(InstallAddonDocument, { id: shop, config: {} });
  });
  after(() => server.close());

  const run = (fn: string, data: unknown) =>
    site.client.request(ExecuteAddonFunctionDocument, { addonId: shop, function: fn, data });
  const stored = async (prefix: string) =>
    (
      await server.app.database.prisma.addonStorage.findMany({
        where: { siteId: site.siteId, key: { startsWith: prefix } },
        orderBy: { key: 'asc' },
        select: { key: true, value: true },
      })
    ).map((row) => [row.key, row.value]);
  const emitted = async (name: string) =>
    (await site.client.ok(EventsDocument, { names: [name], first: 500 })).events.edges.map(
      (e) => (e.node.data as { tag: string }).tag,
    );

  it('stores the writes and events of a call that succeeds', async () => {
    // when
    const result = await run('ok', { tag: 'ok-1' });
    // then
    const id = (result.data?.executeAddonFunction as { id: string }).id;
    assert.deepEqual(await stored('k:ok-'), [['k:ok-1', { tag: 'ok-1' }]]);
    const events = await site.client.ok(EventsDocument, { names: ['shop.did'], first: 500 });
    assert.deepEqual(
      events.events.edges.filter((e) => (e.node.data as any).tag === 'ok-1').map((e) => e.node.id),
      [id],
    );
  });

  it('leaves nothing of a call that throws, times out or dies with its worker', async () => {
    // when
    const failed = await run('fail', { tag: 'fail-1' });
    const timedOut = await run('spin', { tag: 'spin-1' });
    const crashed = await run('crash', { tag: 'crash-1' });
    // then
    assert.equal(failed.errors?.[0].extensions?.code, 'ADDON_ERROR');
    assert.equal(timedOut.errors?.[0].extensions?.code, 'EXECUTION_TIMEOUT');
    assert.equal(crashed.errors?.[0].extensions?.code, 'SANDBOX_CRASHED');
    for (const tag of ['fail-1', 'spin-1', 'crash-1']) {
      assert.deepEqual(await stored(`k:${tag}`), [], `no write of ${tag}`);
    }
    const tags = await emitted('shop.did');
    assert.deepEqual(
      tags.filter((tag) => !tag.startsWith('ok-') && !tag.startsWith('call-')),
      [],
      'no event of a failed call',
    );
  });

  it("reads the call's own writes and deletes over what is stored, in get, list (paged) and delete", async () => {
    // given: a, c and e stored by an earlier call
    await site.client.ok(ExecuteAddonFunctionDocument, {
      addonId: shop,
      function: 'seed',
      data: { keys: ['own:a', 'own:c', 'own:e'] },
    });
    // when
    const { data } = await run('own', {});
    // then
    const out = data?.executeAddonFunction as any;
    assert.deepEqual(out.read, { a: 'replaced', b: 2, c: null });
    assert.deepEqual(out.pages, [
      ['own:a', 'own:b'],
      ['own:d', 'own:e'],
    ]);
    assert.equal(out.deleted, true);
    assert.deepEqual(out.afterDelete, ['own:a', 'own:b', 'own:e']);
    assert.deepEqual(await stored('own:'), [
      ['own:a', 'replaced'],
      ['own:b', 2],
      ['own:e', 'own:e'],
    ]);
  });

  it("commits a dependency's effects with its caller's: none when the caller fails, none of a failed dependency", async () => {
    // when: the caller fails after a dependency that succeeded; a dependency fails and the caller carries on
    const callerFails = await run('call-then-fail', { tag: 'call-1', callerFails: true });
    const dependencyFails = await run('call-then-fail', { tag: 'call-2', dependencyFails: true });
    const bothSucceed = await run('call-then-fail', { tag: 'call-3' });
    // then
    assert.equal(callerFails.errors?.[0].extensions?.code, 'ADDON_ERROR');
    assert.deepEqual(dependencyFails.data?.executeAddonFunction, { error: 'ADDON_ERROR' });
    assert.deepEqual(bothSucceed.data?.executeAddonFunction, { wrote: 'call-3' });
    assert.deepEqual(await stored('caller:'), [
      ['caller:call-2', { error: 'ADDON_ERROR' }],
      ['caller:call-3', { wrote: 'call-3' }],
    ]);
    const depRows = await server.app.database.prisma.addonStorage.findMany({
      where: { siteId: site.siteId, key: { startsWith: 'dep:' } },
      select: { key: true },
    });
    assert.deepEqual(
      depRows.map((r) => r.key),
      ['dep:call-3'],
    );
    assert.deepEqual(await emitted('dep.wrote'), ['call-3']);
    assert.deepEqual(
      (await emitted('shop.did')).filter((tag) => tag.startsWith('call-')),
      ['call-2', 'call-3'],
    );
  });

  it('bounds what one call holds until it commits, and counts it against the storage quota', async () => {
    // when: 45 values of 200 KiB (9 MiB) in one call
    const tooMuch = await run('big', { count: 45 });
    // then
    assert.equal(tooMuch.errors?.[0].extensions?.code, 'STORAGE_QUOTA_EXCEEDED');
    assert.match(tooMuch.errors![0].message, /at most 8388608 bytes/);
    assert.deepEqual(await stored('big:'), []);
  });

  it('commits the effects of calls running at once, each whole', async () => {
    // when: twenty calls at once, every third failing
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, (_, i) => run(i % 3 === 0 ? 'fail' : 'ok', { tag: `many-${i}` })),
    );
    // then
    const expected = outcomes.flatMap((_, i) => (i % 3 === 0 ? [] : [`many-${i}`]));
    assert.deepEqual(
      outcomes.map((o) => (o.errors ? 'failed' : 'ok')),
      outcomes.map((_, i) => (i % 3 === 0 ? 'failed' : 'ok')),
    );
    const keys = (await stored('k:many-')).map(([key]) => (key as string).slice(2));
    assert.deepEqual(keys.sort(), [...expected].sort());
    await eventually(async () => {
      const tags = (await emitted('shop.did')).filter((tag) => tag.startsWith('many-'));
      return tags.length === expected.length ? tags : undefined;
    }, 'the events of the calls that succeeded');
    assert.deepEqual(
      (await emitted('shop.did')).filter((tag) => tag.startsWith('many-')).sort(),
      [...expected].sort(),
    );
  });
});
