import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { Redis } from 'ioredis';
import type { Client } from 'graphql-ws';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenDeveloper, givenSite } from '../support/fixtures.js';
import type { GraphQLClient } from '../support/graphql-client.js';
import {
  EmitEventDocument,
  EventsDocument,
  OnDeliveriesDocument,
  OnEventsDocument,
  OnExecutionsDocument,
} from '../generated/graphql.js';
import { givenAddonOnSite, liveClient, subscribe, untilListening } from './helpers.js';
import { startTestServerOn, type TestServer as Instance } from './test-instance.js';

const REDIS_URL = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Opens a raw graphql-ws socket, sends `connection_init` with `payload`, and reports how it ends. */
function initWith(
  url: string,
  payload: Record<string, unknown>,
): Promise<{ acked: boolean; code: number | null }> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
    socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload })));
    socket.on('message', (data) => {
      if (JSON.parse(String(data)).type === 'connection_ack') {
        socket.close(1000);
        resolve({ acked: true, code: null });
      }
    });
    socket.on('close', (code) => resolve({ acked: false, code }));
    socket.on('error', reject);
  });
}

describe('GraphQL subscriptions over WebSocket', () => {
  let server: TestServer;
  const clients: Client[] = [];
  const open = (url: string, key: string | null, options?: { retry?: boolean }) => {
    const client = liveClient(url, key, options);
    clients.push(client);
    return client;
  };

  before(async () => {
    server = await startTestServer();
  });
  after(async () => {
    for (const client of clients) await client.dispose();
    await server.close();
  });

  it('closes the socket with 4403 when connection_init carries a bad key, and accepts a good one either way', async () => {
    const bad = await initWith(server.url, { authorization: 'Bearer tp_not_a_real_key_000000000000000' });
    const badApiKey = await initWith(server.url, { apiKey: 'tp_nope' });
    const good = await initWith(server.url, { authorization: `Bearer ${server.adminKey}` });
    const goodApiKey = await initWith(server.url, { apiKey: server.adminKey });
    assert.deepEqual(bad, { acked: false, code: 4403 });
    assert.deepEqual(badApiKey, { acked: false, code: 4403 });
    assert.equal(good.acked, true);
    assert.equal(goodApiKey.acked, true);
  });

  it('streams events matching names and wildcards, filtered to what each key may see', async () => {
    // given
    const site = await givenSite(server.admin);
    const other = await givenSite(server.admin);
    const siteFeed = subscribe(open(server.url, site.key), OnEventsDocument, {
      names: ['order.*', 'probe.ping'],
    });
    const adminFeed = subscribe(open(server.url, server.adminKey), OnEventsDocument, {
      names: ['order.created', 'probe.ping'],
    });
    const anonymousFeed = subscribe(open(server.url, null), OnEventsDocument, {});
    const probe = (client: GraphQLClient) => () =>
      client.ok(EmitEventDocument, { name: 'probe.ping', data: {} });
    await untilListening(siteFeed, probe(site.client), (e) => e.events.name === 'probe.ping');
    await untilListening(adminFeed, probe(site.client), (e) => e.events.name === 'probe.ping');
    // when
    await site.client.ok(EmitEventDocument, { name: 'order.created', data: { n: 1 } });
    await site.client.ok(EmitEventDocument, { name: 'order.item.added', data: { n: 2 } });
    await other.client.ok(EmitEventDocument, { name: 'order.created', data: { n: 3 } });
    await site.client.ok(EmitEventDocument, { name: 'order.shipped', data: { n: 4 } });
    // then
    await siteFeed.next((e) => (e.events.data as { n?: number }).n === 4);
    await adminFeed.next((e) => (e.events.data as { n?: number }).n === 3);
    const dataOf = (items: typeof siteFeed.received) =>
      items.filter((e) => e.events.name !== 'probe.ping').map((e) => (e.events.data as { n: number }).n);
    // the site sees its own order.* (one segment) events; the admin every order.created
    assert.deepEqual(dataOf(siteFeed.received), [1, 4]);
    assert.deepEqual(dataOf(adminFeed.received), [1, 3]);
    assert.equal(siteFeed.received[0].events.source, 'platform');
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.deepEqual(anonymousFeed.received, []);
    assert.equal(
      (anonymousFeed.errors[0] as { extensions?: { code?: string } }).extensions?.code,
      'UNAUTHENTICATED',
    );
  });

  it('streams delivery status changes and execution records', async () => {
    const developer = (await givenDeveloper(server.admin)).client;
    const site = await givenSite(server.admin);
    const addon = await givenAddonOnSite(
      developer,
      site,
      { events: { handles: { 'invoice.*': 'onInvoice' } } },
      `module.exports = { handlers: { onInvoice: () => 'ok' } };`,
    );
    const deliveries = subscribe(open(server.url, site.key), OnDeliveriesDocument, { addon });
    const executions = subscribe(open(server.url, site.key), OnExecutionsDocument, { addon });
    await untilListening(
      deliveries,
      () => site.client.ok(EmitEventDocument, { name: 'invoice.sent', data: {} }),
      (d) => d.deliveries.status === 'SUCCEEDED',
    );
    // The subscription is live now: an event emitted from here on shows every status change.
    const { emitEvent } = await site.client.ok(EmitEventDocument, { name: 'invoice.paid', data: {} });
    for (const status of ['RUNNING', 'SUCCEEDED']) {
      const seen = await deliveries.next(
        (d) => d.deliveries.eventId === emitEvent.id && d.deliveries.status === status,
      );
      assert.equal(seen.deliveries.addonName, addon);
    }
    const run = await executions.next((e) => e.executions.kind === 'handler');
    assert.deepEqual(run.executions, {
      addonName: addon,
      kind: 'handler',
      entry: 'onInvoice',
      status: 'SUCCESS',
    });
  });

  describe('across two instances sharing PostgreSQL and Redis', () => {
    let second: Instance;
    before(async () => {
      second = await startTestServerOn((server.app.config.databaseUrl ?? '').toString(), server.adminKey);
    });
    after(() => second.close());

    it('delivers an event emitted through one instance to a subscriber connected to the other', async () => {
      const site = await givenSite(server.admin);
      const feed = subscribe(open(second.url, site.key), OnEventsDocument, {
        names: ['payment.completed', 'probe.ping'],
      });
      await untilListening(
        feed,
        () => site.client.ok(EmitEventDocument, { name: 'probe.ping', data: {} }),
        (e) => e.events.name === 'probe.ping',
      );
      const { emitEvent } = await site.client.ok(EmitEventDocument, {
        name: 'payment.completed',
        data: { orderId: 'x' },
      });
      const received = await feed.next((e) => e.events.name === 'payment.completed');
      assert.equal(received.events.id, emitEvent.id);
      assert.deepEqual(received.events.data, { orderId: 'x' });
    });

    it('resumes after the Redis subscriber connections are killed, and the gap can be caught up with Query.events', async () => {
      const site = await givenSite(server.admin);
      const feed = subscribe(open(second.url, site.key), OnEventsDocument, { names: ['probe.*'] });
      await untilListening(
        feed,
        () => site.client.ok(EmitEventDocument, { name: 'probe.before', data: {} }),
        (e) => e.events.name === 'probe.before',
      );
      const cursor = (await site.client.ok(EventsDocument, { first: 500 })).events.pageInfo.endCursor;
      // Simulates a Redis restart for this process only (the shared Redis stays up for others).
      const redis = new Redis(REDIS_URL);
      try {
        const list = (await redis.call('CLIENT', 'LIST', 'TYPE', 'pubsub')) as string;
        const ours = list
          .split('\n')
          .filter((line) => line.includes(`name=themepress:pubsub-subscriber:${process.pid} `))
          .map((line) => /\bid=(\d+)/.exec(line)![1]);
        assert.ok(ours.length >= 1);
        for (const id of ours) await redis.call('CLIENT', 'KILL', 'ID', id);
      } finally {
        redis.disconnect();
      }
      await untilListening(
        feed,
        () => site.client.ok(EmitEventDocument, { name: 'probe.after', data: {} }),
        (e) => e.events.name === 'probe.after',
      );
      const missed = await site.client.ok(EventsDocument, { after: cursor, names: ['probe.*'] });
      assert.ok(missed.events.edges.length >= 1);
      assert.ok(missed.events.edges.every((e) => e.node.name === 'probe.after'));
    });

    it('closes subscriber sockets with 1001 when an instance shuts down', async () => {
      const third = await startTestServerOn(
        (server.app.config.databaseUrl ?? '').toString(),
        server.adminKey,
      );
      const closed = new Promise<number>((resolve) => {
        const socket = new WebSocket(`${third.url.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
        socket.on('open', () =>
          socket.send(JSON.stringify({ type: 'connection_init', payload: { apiKey: server.adminKey } })),
        );
        socket.on('message', () => void third.close());
        socket.on('close', (code) => resolve(code));
      });
      assert.equal(await closed, 1001);
    });
  });
});
