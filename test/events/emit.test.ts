import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenDeveloper, givenInstalledAddon, givenSite } from '../support/fixtures.js';
import type { GraphQLClient } from '../support/graphql-client.js';
import {
  EmitEventDocument,
  EventsDocument,
  ExecuteAddonFunctionDocument,
  OnEventsDocument,
} from '../generated/graphql.js';
import type { GenerationBump } from '../../src/events/effects.repository.js';
import { eventually, liveClient, subscribe, untilListening } from './helpers.js';

const PAYMENTS = `module.exports = { functions: {
  pay: async (data, ctx) => {
    try {
      const { id } = await ctx.events.emit(data.name || 'payment.completed', data.event);
      return { id };
    } catch (e) {
      return { code: e.code, message: e.message };
    }
  },
} };`;

const paymentsManifest = {
  permissions: ['events.emit'],
  functions: [{ name: 'pay' }],
  events: {
    emits: [
      {
        name: 'payment.completed',
        schema: {
          type: 'object',
          required: ['orderId', 'amount'],
          properties: { orderId: { type: 'string' }, amount: { type: 'number', minimum: 1 } },
        },
      },
      'payment.failed',
    ],
  },
};

describe('emitting events', () => {
  let server: TestServer;
  let developer: GraphQLClient;

  before(async () => {
    server = await startTestServer();
    developer = (await givenDeveloper(server.admin)).client;
  });
  after(() => server.close());

  it('stores what addon code emits with ctx.events.emit, checked against the declared schema', async () => {
    // given
    const { site, name } = await givenInstalledAddon(server.admin, developer, paymentsManifest, PAYMENTS);
    const pay = (data: unknown) =>
      site.client.ok(ExecuteAddonFunctionDocument, { addonId: name, function: 'pay', data });
    // when
    const stored = (await pay({ event: { orderId: 'o-1', amount: 5 } })).executeAddonFunction as {
      id: string;
    };
    const invalid = (await pay({ event: { orderId: 'o-2', amount: 0 } })).executeAddonFunction as {
      code: string;
      message: string;
    };
    const undeclared = (await pay({ name: 'user.deleted', event: {} })).executeAddonFunction as {
      code: string;
    };
    const unschemed = (await pay({ name: 'payment.failed', event: 'anything' })).executeAddonFunction as {
      id: string;
    };
    // then
    assert.match(stored.id, /^[0-9a-f-]{36}$/);
    assert.equal(invalid.code, 'BAD_USER_INPUT');
    assert.match(invalid.message, /data\.amount/);
    assert.equal(undeclared.code, 'PERMISSION_DENIED');
    const { events } = await site.client.ok(EventsDocument, {});
    assert.deepEqual(
      events.edges.map((e) => [e.node.id, e.node.name, e.node.source, e.node.siteId, e.node.data]),
      [
        [stored.id, 'payment.completed', name, site.siteId, { orderId: 'o-1', amount: 5 }],
        [unschemed.id, 'payment.failed', name, site.siteId, 'anything'],
      ],
    );
  });

  it('lets admins and site keys emit platform events, and nobody else', async () => {
    const site = await givenSite(server.admin);
    const other = await givenSite(server.admin);
    const dev = await givenDeveloper(server.admin);

    const bySite = await site.client.ok(EmitEventDocument, { name: 'order.created', data: { n: 1 } });
    const byAdmin = await server.admin.ok(EmitEventDocument, {
      name: 'order.created',
      data: { n: 2 },
      siteId: site.siteId,
    });
    const platformWide = await server.admin.ok(EmitEventDocument, { name: 'platform.maintenance', data: {} });
    const foreignSite = await site.client.request(EmitEventDocument, {
      name: 'order.created',
      data: {},
      siteId: other.siteId,
    });
    const developerKey = await dev.client.request(EmitEventDocument, { name: 'order.created', data: {} });
    const anonymous = await server.anonymous.request(EmitEventDocument, { name: 'order.created', data: {} });
    const badName = await site.client.request(EmitEventDocument, { name: 'Order Created', data: {} });
    const tooBig = await site.client.request(EmitEventDocument, {
      name: 'order.created',
      data: 'x'.repeat(70_000),
    });

    assert.deepEqual(
      { source: bySite.emitEvent.source, siteId: bySite.emitEvent.siteId },
      { source: 'platform', siteId: site.siteId },
    );
    assert.equal(byAdmin.emitEvent.siteId, site.siteId);
    assert.equal(platformWide.emitEvent.siteId, null);
    assert.equal(foreignSite.errors?.[0].extensions?.code, 'FORBIDDEN');
    assert.equal(developerKey.errors?.[0].extensions?.code, 'FORBIDDEN');
    assert.equal(anonymous.errors?.[0].extensions?.code, 'UNAUTHENTICATED');
    assert.equal(badName.errors?.[0].extensions?.code, 'BAD_USER_INPUT');
    assert.deepEqual(
      (badName.errors?.[0].extensions?.fields as { field: string }[]).map((f) => f.field),
      ['name'],
    );
    assert.deepEqual(
      (tooBig.errors?.[0].extensions?.fields as { field: string }[]).map((f) => f.field),
      ['data'],
    );
  });

  it('stores an event emitted by a lifecycle hook with the installation, or not at all', async () => {
    // given: a live subscriber, one addon whose install hook emits and succeeds, one whose hook emits then fails
    const hook = (fail: boolean) => `module.exports = { hooks: { install: async (ctx) => {
      await ctx.events.emit('setup.done', { ok: true });
      ${fail ? "throw new Error('setup failed');" : ''}
    } } };`;
    const events = { permissions: ['events.emit'], events: { emits: ['setup.done'] } };
    const client = liveClient(server.url, server.adminKey);
    const live = subscribe(client, OnEventsDocument, { names: ['setup.done', 'probe.setup'] });
    try {
      await untilListening(
        live,
        () => server.admin.ok(EmitEventDocument, { name: 'probe.setup', data: {} }),
        (m) => m.events.name === 'probe.setup',
      );
      // when
      const { site } = await givenInstalledAddon(server.admin, developer, events, hook(false));
      const failing = await givenInstalledAddon(server.admin, developer, events, hook(true)).catch(
        (error: unknown) => error,
      );
      // then: the committed one is stored and delivered live; the rolled-back one left nothing
      const { events: stored } = await site.client.ok(EventsDocument, { names: ['setup.done'] });
      assert.equal(stored.edges.length, 1);
      assert.ok(failing instanceof Error && /setup failed/.test(failing.message));
      const all = await server.admin.ok(EventsDocument, { names: ['setup.done'], first: 500 });
      assert.equal(all.events.edges.length, 1);
      await live.next((m) => m.events.name === 'setup.done');
      // Longer than the live feed's poll: a rolled-back event would have arrived by now.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      assert.deepEqual(
        live.received.filter((m) => m.events.name === 'setup.done').map((m) => m.events.siteId),
        [site.siteId],
      );
    } finally {
      live.stop();
      await client.dispose();
    }
  });

  it("bumps, in the event's own statement, the render generation of each addon whose widget declares it, and tells this instance", async () => {
    // given: an addon with a widget invalidated by stock.updated, installed on a site
    const widgetAddon = {
      widgets: [
        {
          name: 'stock',
          displayName: 'Stock',
          category: 'DISPLAY',
          configSchema: { type: 'object' },
          invalidateOn: ['stock.*'],
        },
      ],
    };
    const { site, name } = await givenInstalledAddon(
      server.admin,
      developer,
      widgetAddon,
      `module.exports = { widgets: { stock: () => ({ html: '<p>stock</p>' }) } };`,
    );
    const addonId = (await server.app.database.prisma.addon.findUniqueOrThrow({ where: { name } })).id;
    const generation = async () =>
      (
        await server.app.database.prisma.widgetGeneration.findUnique({
          where: { siteId_addonId: { siteId: site.siteId, addonId } },
        })
      )?.generation ?? 0n;
    // The install's own bump is sent without waiting (fire and forget): count from after it.
    const before = await eventually(async () => {
      const current = Number(await generation());
      return current >= 1 ? current : undefined;
    }, "the install's generation bump");
    const bumps: GenerationBump[] = [];
    const stop = server.app.services.events.onInvalidated((b) => bumps.push(...b));
    try {
      // when: two events that invalidate it, one that does not
      await site.client.ok(EmitEventDocument, { name: 'stock.updated', data: { sku: 'A' } });
      await site.client.ok(EmitEventDocument, { name: 'order.created', data: {} });
      await site.client.ok(EmitEventDocument, { name: 'stock.low', data: { sku: 'A' } });
      // then
      const ours = await eventually(async () => {
        const found = bumps.filter((b) => b.siteId === site.siteId);
        return found.length === 2 ? found : undefined;
      }, 'two generation bumps');
      assert.deepEqual(
        ours.map((b) => [b.addonId, b.generation]),
        [
          [addonId, before + 1],
          [addonId, before + 2],
        ],
      );
      assert.equal(await generation(), BigInt(before + 2));
    } finally {
      stop();
    }
  });

  it('pages through stored events in order after a cursor, with wildcard names, as far as the key may see', async () => {
    // given
    const site = await givenSite(server.admin);
    const other = await givenSite(server.admin);
    const names = ['cart.created', 'cart.updated', 'order.created', 'cart.item.added', 'cart.updated'];
    for (const [i, name] of names.entries()) {
      await site.client.ok(EmitEventDocument, { name, data: { i } });
    }
    await other.client.ok(EmitEventDocument, { name: 'cart.created', data: { i: 'other' } });
    // when
    const first = await site.client.ok(EventsDocument, { first: 2, names: ['cart.*'] });
    const rest = await site.client.ok(EventsDocument, {
      first: 10,
      names: ['cart.*'],
      after: first.events.pageInfo.endCursor,
    });
    const everything = await site.client.ok(EventsDocument, { first: 100 });
    const exact = await site.client.ok(EventsDocument, { names: ['order.created', '*.item.added'] });
    const foreign = await site.client.request(EventsDocument, { siteId: other.siteId });
    const asAdmin = await server.admin.ok(EventsDocument, { siteId: other.siteId });
    const badPattern = await site.client.request(EventsDocument, { names: ['cart.**'] });
    // then
    const data = (page: typeof first) => page.events.edges.map((e) => (e.node.data as { i: unknown }).i);
    assert.deepEqual(data(first), [0, 1]);
    assert.equal(first.events.pageInfo.hasNextPage, true);
    // `*` is one segment: cart.item.added is not a cart.* event
    assert.deepEqual(data(rest), [4]);
    assert.equal(rest.events.pageInfo.hasNextPage, false);
    assert.deepEqual(data(everything), [0, 1, 2, 3, 4]);
    assert.deepEqual(data(exact), [2, 3]);
    assert.equal(foreign.errors?.[0].extensions?.code, 'FORBIDDEN');
    assert.deepEqual(data(asAdmin), ['other']);
    assert.equal(badPattern.errors?.[0].extensions?.code, 'BAD_USER_INPUT');
  });

  it('gives the newest events with last, whose end cursor then pages forward to what came after', async () => {
    // given: five events on a site, and one on another site
    const site = await givenSite(server.admin);
    const other = await givenSite(server.admin);
    for (let i = 0; i < 5; i += 1)
      await site.client.ok(EmitEventDocument, { name: 'tick.sent', data: { i } });
    await other.client.ok(EmitEventDocument, { name: 'tick.sent', data: { i: 'other' } });
    // when: a dashboard loads the newest two, then more events come
    const recent = await site.client.ok(EventsDocument, { last: 2 });
    await site.client.ok(EmitEventDocument, { name: 'tick.sent', data: { i: 5 } });
    const caughtUp = await site.client.ok(EventsDocument, { after: recent.events.pageInfo.endCursor });
    const all = await site.client.ok(EventsDocument, { last: 500 });
    const withCursor = await site.client.request(EventsDocument, {
      last: 2,
      after: recent.events.pageInfo.endCursor,
    });
    const tooMany = await site.client.request(EventsDocument, { last: 501 });
    // then
    const data = (page: typeof recent) => page.events.edges.map((e) => (e.node.data as { i: unknown }).i);
    assert.deepEqual(data(recent), [3, 4], 'the newest two, oldest first');
    assert.equal(recent.events.pageInfo.hasPreviousPage, true);
    assert.deepEqual(data(caughtUp), [5]);
    assert.deepEqual(data(all), [0, 1, 2, 3, 4, 5]);
    assert.equal(all.events.pageInfo.hasPreviousPage, false);
    for (const refused of [withCursor, tooMany]) {
      assert.equal(refused.errors?.[0].extensions?.code, 'BAD_USER_INPUT');
      assert.equal((refused.errors?.[0].extensions?.fields as { field: string }[])[0].field, 'last');
    }
  });
});
