import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenDeveloper, givenSite } from '../support/fixtures.js';
import type { GraphQLClient } from '../support/graphql-client.js';
import {
  DeliveriesDocument,
  DeliveryDocument,
  EmitEventDocument,
  EventsDocument,
  ExecuteAddonFunctionDocument,
  RetryDeliveryDocument,
} from '../generated/graphql.js';
import { eventually, givenAddonOnSite } from './helpers.js';

const STORAGE = ['storage.read', 'storage.write'];

/** Remembers every event its handler receives (readable with the `seen` function). */
const RECORDER = `module.exports = {
  functions: { seen: async (_d, ctx) => (await ctx.storage.get('seen')) || [] },
  handlers: {
    onEvent: async (event, ctx) => {
      const seen = (await ctx.storage.get('seen')) || [];
      seen.push({ id: event.id, key: event.idempotencyKey, name: event.name, data: event.data,
        source: event.source, attempt: event.attempt, config: ctx.config });
      await ctx.storage.set('seen', seen);
    },
  },
};`;

/** Fails the first two attempts of each event, then succeeds. */
/** Fails its first two attempts, each after a write that its failure discards. */
const FLAKY = `module.exports = { handlers: { onEvent: async (event, ctx) => {
  await ctx.storage.set('attempt:' + event.attempt, event.idempotencyKey);
  if (event.attempt < 3) throw new Error('temporary failure ' + event.attempt);
} } };`;

/** Fails until its `fix` function has been called. */
const BROKEN = `module.exports = {
  functions: { fix: async (_d, ctx) => { await ctx.storage.set('fixed', true); return true; } },
  handlers: { onEvent: async (_event, ctx) => {
    if (!(await ctx.storage.get('fixed'))) throw new Error('mail server down');
  } },
};`;

/** Never finishes (the sandbox times it out). */
const HANGING = `module.exports = { handlers: { onEvent: () => new Promise(() => {}) } };`;

const PAYMENTS = `module.exports = { functions: {
  pay: (data, ctx) => ctx.events.emit('payment.completed', data),
} };`;

describe('deliveries to addon handlers', () => {
  let server: TestServer;
  let developer: GraphQLClient;

  before(async () => {
    server = await startTestServer({
      DELIVERY_BACKOFF_BASE_MS: '100',
      DELIVERY_BACKOFF_MAX_MS: '1000',
      DELIVERY_MAX_ATTEMPTS: '3',
      DELIVERY_POLL_MS: '200',
      DELIVERY_CONCURRENCY: '4',
    });
    developer = (await givenDeveloper(server.admin)).client;
  });
  after(() => server.close());

  const deliveriesOf = async (client: GraphQLClient, eventId: string) =>
    (await client.ok(DeliveriesDocument, { eventId, first: 50 })).deliveries.edges.map((e) => e.node);

  it('fans an event out to every subscribing installation on its site, once each, with config and idempotency key', async () => {
    // given: on one site, a payment addon, two subscribers (exact name and wildcard), one that
    // handles something else; the same subscriber on another site
    const site = await givenSite(server.admin);
    const otherSite = await givenSite(server.admin);
    const payments = await givenAddonOnSite(
      developer,
      site,
      {
        permissions: ['events.emit'],
        functions: [{ name: 'pay' }],
        events: { emits: ['payment.completed'] },
      },
      PAYMENTS,
    );
    const subscriber = (handles: Record<string, string>) => ({
      permissions: STORAGE,
      functions: [{ name: 'seen', readonly: true }],
      events: { handles },
    });
    const email = await givenAddonOnSite(
      developer,
      site,
      subscriber({ 'payment.completed': 'onEvent' }),
      RECORDER,
      { from: 'shop@example.com' },
    );
    const inventory = await givenAddonOnSite(
      developer,
      site,
      subscriber({ 'payment.*': 'onEvent' }),
      RECORDER,
    );
    const refunds = await givenAddonOnSite(
      developer,
      site,
      subscriber({ 'refund.requested': 'onEvent' }),
      RECORDER,
    );
    await givenAddonOnSite(developer, otherSite, subscriber({ 'payment.completed': 'onEvent' }), RECORDER);
    // when
    const { executeAddonFunction } = await site.client.ok(ExecuteAddonFunctionDocument, {
      addonId: payments,
      function: 'pay',
      data: { orderId: 'o-7' },
    });
    const eventId = (executeAddonFunction as { id: string }).id;
    // then
    const done = await eventually(async () => {
      const rows = await deliveriesOf(site.client, eventId);
      return rows.length === 2 && rows.every((d) => d.status === 'SUCCEEDED') ? rows : undefined;
    }, 'both deliveries to succeed');
    assert.deepEqual(done.map((d) => d.addonName).sort(), [email, inventory].sort());
    const seen = async (addon: string) =>
      (await site.client.ok(ExecuteAddonFunctionDocument, { addonId: addon, function: 'seen', data: {} }))
        .executeAddonFunction as {
        id: string;
        key: string;
        data: unknown;
        source: string;
        config: unknown;
      }[];
    const emailSaw = await seen(email);
    assert.deepEqual(emailSaw, [
      {
        id: eventId,
        key: eventId,
        name: 'payment.completed',
        data: { orderId: 'o-7' },
        source: payments,
        attempt: 1,
        config: { from: 'shop@example.com' },
      },
    ]);
    assert.equal((await seen(inventory)).length, 1);
    assert.deepEqual(await seen(refunds), []);
    const { events } = await site.client.ok(EventsDocument, { names: ['payment.completed'] });
    assert.equal(events.edges.find((e) => e.node.id === eventId)?.node.deliveries.length, 2);
  });

  it('retries a failing handler with exponential backoff until it succeeds, recording each attempt', async () => {
    // given
    const site = await givenSite(server.admin);
    await givenAddonOnSite(
      developer,
      site,
      { permissions: STORAGE, events: { handles: { 'order.created': 'onEvent' } } },
      FLAKY,
    );
    // when
    const { emitEvent } = await site.client.ok(EmitEventDocument, { name: 'order.created', data: { n: 1 } });
    // then
    const [delivery] = await eventually(async () => {
      const rows = await deliveriesOf(site.client, emitEvent.id);
      return rows[0]?.status === 'SUCCEEDED' ? rows : undefined;
    }, 'the delivery to succeed on its third attempt');
    assert.equal(delivery.attempts, 3);
    assert.deepEqual(
      delivery.attemptLog.map((a) => [a.attempt, a.status, a.error]),
      [
        [1, 'ADDON_ERROR', 'temporary failure 1'],
        [2, 'ADDON_ERROR', 'temporary failure 2'],
        [3, 'SUCCEEDED', null],
      ],
    );
    const starts = delivery.attemptLog.map((a) => Date.parse(a.startedAt));
    // base 100 ms with equal jitter: the first retry waits 50-100 ms, the second 100-200 ms
    assert.ok(starts[1] - starts[0] >= 50, `first retry after ${starts[1] - starts[0]} ms`);
    assert.ok(starts[2] - starts[1] >= 100, `second retry after ${starts[2] - starts[1]} ms`);
    // only the attempt that succeeded left its write
    const stored = await server.app.database.prisma.addonStorage.findMany({
      where: { siteId: site.siteId, key: { startsWith: 'attempt:' } },
      select: { key: true },
    });
    assert.deepEqual(
      stored.map((row) => row.key),
      ['attempt:3'],
    );
  });

  it('moves a delivery to DEAD after the last attempt; the owning site or an admin can retry it', async () => {
    // given
    const site = await givenSite(server.admin);
    const otherSite = await givenSite(server.admin);
    const dev = await givenDeveloper(server.admin);
    const mailer = await givenAddonOnSite(
      dev.client,
      site,
      { permissions: STORAGE, functions: [{ name: 'fix' }], events: { handles: { 'order.*': 'onEvent' } } },
      BROKEN,
    );
    const { emitEvent } = await site.client.ok(EmitEventDocument, { name: 'order.created', data: {} });
    const [dead] = await eventually(async () => {
      const rows = await deliveriesOf(site.client, emitEvent.id);
      return rows[0]?.status === 'DEAD' ? rows : undefined;
    }, 'the delivery to die');
    assert.equal(dead.attempts, 3);
    assert.equal(dead.lastError, 'mail server down');
    assert.equal(dead.attemptLog.length, 3);
    const listedDead = await server.admin.ok(DeliveriesDocument, { status: 'DEAD', addon: mailer });
    assert.deepEqual(
      listedDead.deliveries.edges.map((e) => e.node.id),
      [dead.id],
    );
    // when: nobody but the site and admins may retry; then the site fixes the addon and retries
    const byDeveloper = await dev.client.request(RetryDeliveryDocument, { id: dead.id });
    const byOtherSite = await otherSite.client.request(RetryDeliveryDocument, { id: dead.id });
    await site.client.ok(ExecuteAddonFunctionDocument, { addonId: mailer, function: 'fix', data: {} });
    const retried = await site.client.ok(RetryDeliveryDocument, { id: dead.id });
    // then
    assert.equal(byDeveloper.errors?.[0].extensions?.code, 'FORBIDDEN');
    assert.equal(byOtherSite.errors?.[0].extensions?.code, 'NOT_FOUND');
    assert.deepEqual(retried.retryDelivery, { id: dead.id, status: 'PENDING', attempts: 0 });
    const succeeded = await eventually(async () => {
      const { delivery } = await site.client.ok(DeliveryDocument, { id: dead.id });
      return delivery.status === 'SUCCEEDED' ? delivery : undefined;
    }, 'the retried delivery to succeed');
    assert.equal(succeeded.attemptLog.length, 4);
    const again = await server.admin.request(RetryDeliveryDocument, { id: dead.id });
    assert.equal(again.errors?.[0].extensions?.code, 'CONFLICT');
  });

  it('never lets a hanging handler delay another addon’s deliveries', async () => {
    // given: a subscriber that never returns and one that is quick, both on the same events
    const site = await givenSite(server.admin);
    const hanging = await givenAddonOnSite(
      developer,
      site,
      { events: { handles: { 'cart.updated': 'onEvent' } }, limits: { timeoutMs: 5000 } },
      HANGING,
    );
    const quick = await givenAddonOnSite(
      developer,
      site,
      {
        permissions: STORAGE,
        functions: [{ name: 'seen', readonly: true }],
        events: { handles: { 'cart.updated': 'onEvent' } },
      },
      RECORDER,
    );
    // when: more events than the worker has slots (4)
    const started = Date.now();
    for (let i = 0; i < 6; i += 1)
      await site.client.ok(EmitEventDocument, { name: 'cart.updated', data: { i } });
    // then: every quick delivery is done well before the hanging ones time out
    await eventually(
      async () => {
        const { deliveries } = await site.client.ok(DeliveriesDocument, {
          addon: quick,
          status: 'SUCCEEDED',
          first: 50,
        });
        return deliveries.edges.length === 6 ? true : undefined;
      },
      'the quick deliveries',
      4000,
    );
    const elapsed = Date.now() - started;
    assert.ok(elapsed < 4000, `quick deliveries took ${elapsed} ms`);
    const { deliveries } = await site.client.ok(DeliveriesDocument, { addon: hanging, first: 50 });
    assert.equal(deliveries.edges.filter((e) => e.node.status === 'SUCCEEDED').length, 0);
    assert.ok(deliveries.edges.some((e) => e.node.status === 'RUNNING'));
  });
});
