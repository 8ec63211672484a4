import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenDeveloper, givenInstalledAddon, givenSite } from '../support/fixtures.js';
import type { GraphQLClient } from '../support/graphql-client.js';
import {
  EmitEventDocument,
  EventsDocument,
  ExecuteAddonFunctionDocument,
  InstallAddonDocument,
} from '../generated/graphql.js';
import { eventually } from './helpers.js';

/* eslint-disable @typescript-eslint/no-explicit-any -- addon outputs are JSON read field by field */

const EMITTER = `module.exports = { functions: {
  emit: async (d, ctx) => {
    const first = await ctx.events.emit('order.paid', { n: d.n }, d.key === undefined ? undefined : { idempotencyKey: d.key });
    const again = d.twice ? await ctx.events.emit('order.paid', { n: d.n + 1 }, { idempotencyKey: d.key }) : null;
    if (d.fail) throw new Error('failed after emitting');
    return { first, again };
  },
  bad: async (d, ctx) => {
    try { await ctx.events.emit('order.paid', {}, d.options); return 'stored'; }
    catch (error) { return error.code; }
  },
} };`;

const emitterManifest = {
  permissions: ['events.emit'],
  functions: [{ name: 'emit' }, { name: 'bad' }],
  events: { emits: ['order.paid'] },
};

describe('idempotent emits', () => {
  let server: TestServer;
  let developer: GraphQLClient;

  before(async () => {
    server = await startTestServer();
    developer = (await givenDeveloper(server.admin)).client;
  });
  after(() => server.close());

  /**
   * Events listed for `name` once the listing has caught up to `expected`: the listing reads up to
   * the oldest transaction still running anywhere, so a concurrent test's open transaction can hold
   * back what was just stored. Returns the count seen last (more than expected fails at once).
   */
  const count = async (client: GraphQLClient, name: string, expected: number) => {
    let seen = 0;
    await eventually(async () => {
      seen = (await client.ok(EventsDocument, { names: [name], first: 500 })).events.edges.length;
      return seen >= expected ? seen : undefined;
    }, `${expected} ${name} events listed`).catch(() => undefined);
    return seen;
  };

  it('returns the first event to a retry of Mutation.emitEvent with the same key, per site', async () => {
    // given
    const site = await givenSite(server.admin);
    const other = await givenSite(server.admin);
    // when
    const first = await site.client.ok(EmitEventDocument, {
      name: 'order.created',
      data: { n: 1 },
      idempotencyKey: 'o-1',
    });
    const retry = await site.client.ok(EmitEventDocument, {
      name: 'order.created',
      data: { n: 2 },
      idempotencyKey: 'o-1',
    });
    const elsewhere = await other.client.ok(EmitEventDocument, {
      name: 'order.created',
      data: { n: 3 },
      idempotencyKey: 'o-1',
    });
    const byAdmin = await server.admin.ok(EmitEventDocument, {
      name: 'order.created',
      data: { n: 4 },
      siteId: site.siteId,
      idempotencyKey: 'o-1',
    });
    const unkeyed = await Promise.all(
      [1, 2].map((n) => site.client.ok(EmitEventDocument, { name: 'order.created', data: { n } })),
    );
    // then
    assert.equal(retry.emitEvent.id, first.emitEvent.id);
    assert.deepEqual(retry.emitEvent.data, { n: 1 }, 'the first event, as stored');
    assert.equal(
      byAdmin.emitEvent.id,
      first.emitEvent.id,
      'the key belongs to the site, whoever emits there',
    );
    assert.notEqual(elsewhere.emitEvent.id, first.emitEvent.id);
    assert.notEqual(unkeyed[0].emitEvent.id, unkeyed[1].emitEvent.id);
    assert.equal(await count(site.client, 'order.created', 3), 3);
    assert.equal(await count(other.client, 'order.created', 1), 1);
  });

  it('stores one event for many concurrent emits with the same key, and answers each with it', async () => {
    // given
    const site = await givenSite(server.admin);
    // when
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, n) =>
        site.client.ok(EmitEventDocument, { name: 'order.raced', data: { n }, idempotencyKey: 'race' }),
      ),
    );
    // then
    assert.equal(new Set(answers.map((a) => a.emitEvent.id)).size, 1);
    assert.equal(await count(site.client, 'order.raced', 1), 1);
  });

  it('takes the key as Idempotency-Key over REST (POST /api/events): 201, then 200 with the first event', async () => {
    // given
    const site = await givenSite(server.admin);
    const post = (body: unknown, headers: Record<string, string> = {}) =>
      fetch(`${server.url}/api/events`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${site.key}`, ...headers },
        body: JSON.stringify(body),
      });
    // when
    const created = await post({ name: 'order.shipped', data: { n: 1 } }, { 'idempotency-key': 'ship-1' });
    const replayed = await post({ name: 'order.shipped', data: { n: 2 } }, { 'idempotency-key': 'ship-1' });
    const inBody = await post({ name: 'order.shipped', data: { n: 3 }, idempotencyKey: 'ship-1' });
    const mismatch = await post(
      { name: 'order.shipped', data: {}, idempotencyKey: 'ship-2' },
      { 'idempotency-key': 'ship-3' },
    );
    const tooLong = await post({ name: 'order.shipped', data: {} }, { 'idempotency-key': 'k'.repeat(201) });
    const anonymous = await fetch(`${server.url}/api/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ name: 'order.shipped', data: {} }),
    });
    // then
    const first = (await created.json()) as any;
    const again = (await replayed.json()) as any;
    assert.equal(created.status, 201);
    assert.equal(replayed.status, 200);
    assert.equal(replayed.headers.get('idempotent-replayed'), 'true');
    assert.equal(again.event.id, first.event.id);
    assert.deepEqual(again.event.data, { n: 1 });
    assert.equal(((await inBody.json()) as any).event.id, first.event.id);
    assert.equal(mismatch.status, 400);
    assert.deepEqual(
      ((await mismatch.json()) as any).error.fields.map((f: any) => f.field),
      ['Idempotency-Key'],
    );
    assert.equal(tooLong.status, 400);
    assert.deepEqual(
      ((await tooLong.json()) as any).error.fields.map((f: any) => f.field),
      ['idempotencyKey'],
    );
    assert.equal(anonymous.status, 401);
    assert.equal(await count(site.client, 'order.shipped', 1), 1);
  });

  it('returns the first event to ctx.events.emit with a key the addon used on the site, in a later call or the same one', async () => {
    // given: one emitter installed on two sites
    const { site, name } = await givenInstalledAddon(server.admin, developer, emitterManifest, EMITTER);
    const other = await givenSite(server.admin);
    await other.client.ok(InstallAddonDocument, { id: name, config: {} });
    const emit = (client: GraphQLClient, data: unknown) =>
      client.request(ExecuteAddonFunctionDocument, { addonId: name, function: 'emit', data });
    // when
    const first = (await emit(site.client, { n: 1, key: 'pay-1', twice: true })).data
      ?.executeAddonFunction as any;
    const retry = (await emit(site.client, { n: 5, key: 'pay-1' })).data?.executeAddonFunction as any;
    const failed = await emit(site.client, { n: 7, key: 'pay-2', fail: true });
    const afterFailure = (await emit(site.client, { n: 8, key: 'pay-2' })).data?.executeAddonFunction as any;
    const otherSite = (await emit(other.client, { n: 9, key: 'pay-1' })).data?.executeAddonFunction as any;
    const platformSameKey = await site.client.ok(EmitEventDocument, {
      name: 'order.paid',
      data: {},
      idempotencyKey: 'pay-1',
    });
    // then
    assert.equal(first.first.duplicate, false);
    assert.deepEqual(first.again, { id: first.first.id, duplicate: true }, 'within one call');
    assert.deepEqual(retry.first, { id: first.first.id, duplicate: true }, 'in a later call');
    assert.equal(failed.errors?.[0].extensions?.code, 'ADDON_ERROR');
    assert.equal(afterFailure.first.duplicate, false, 'a failed call stored neither its event nor its key');
    assert.equal(otherSite.first.duplicate, false);
    assert.notEqual(
      platformSameKey.emitEvent.id,
      first.first.id,
      'keys are per emitter: the platform is another',
    );
    const stored = await site.client.ok(EventsDocument, { names: ['order.paid'], source: name, first: 50 });
    assert.deepEqual(
      stored.events.edges.map((e) => e.node.data),
      [{ n: 1 }, { n: 8 }],
    );
  });

  it('refuses a malformed key or options of ctx.events.emit with BAD_USER_INPUT', async () => {
    const { site, name } = await givenInstalledAddon(server.admin, developer, emitterManifest, EMITTER);
    const bad = async (options: unknown) =>
      (
        await site.client.ok(ExecuteAddonFunctionDocument, {
          addonId: name,
          function: 'bad',
          data: { options },
        })
      ).executeAddonFunction;
    assert.equal(await bad({ idempotencyKey: '' }), 'BAD_USER_INPUT');
    assert.equal(await bad({ idempotencyKey: 'k'.repeat(201) }), 'BAD_USER_INPUT');
    assert.equal(await bad({ idempotencyKey: 42 }), 'BAD_USER_INPUT');
    assert.equal(await bad({ idempotencyKey: 'line\nbreak' }), 'BAD_USER_INPUT');
    assert.equal(await bad('not an object'), 'BAD_USER_INPUT');
    assert.equal(await count(site.client, 'order.paid', 0), 0);
  });

  it('keeps keys for the window, then forgets them: a later emit with the key is a new event', async () => {
    // given: a key given 25 hours ago (the window is 24)
    const site = await givenSite(server.admin);
    const first = await site.client.ok(EmitEventDocument, {
      name: 'order.old',
      data: {},
      idempotencyKey: 'old',
    });
    const recent = await site.client.ok(EmitEventDocument, {
      name: 'order.old',
      data: {},
      idempotencyKey: 'recent',
    });
    await server.app.database.prisma.eventIdempotencyKey.updateMany({
      where: { eventId: first.emitEvent.id },
      data: { createdAt: new Date(Date.now() - 25 * 3_600_000) },
    });
    // when
    const forgotten = await server.app.services.events.forgetIdempotencyKeys(24);
    const again = await site.client.ok(EmitEventDocument, {
      name: 'order.old',
      data: {},
      idempotencyKey: 'old',
    });
    const stillKept = await site.client.ok(EmitEventDocument, {
      name: 'order.old',
      data: {},
      idempotencyKey: 'recent',
    });
    // then
    assert.ok(forgotten >= 1);
    assert.notEqual(again.emitEvent.id, first.emitEvent.id);
    assert.equal(stillKept.emitEvent.id, recent.emitEvent.id);
  });
});
