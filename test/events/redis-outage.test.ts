import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { print } from 'graphql';
import type { Client } from 'graphql-ws';
import { generateApiKey } from '../../src/auth/api-key.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';
import { startOwnRedis, type OwnRedis } from '../support/own-redis.js';
import { GraphQLClient } from '../support/graphql-client.js';
import { givenDeveloper, givenInstalledAddon } from '../support/fixtures.js';
import {
  DeliveriesDocument,
  EmitEventDocument,
  ExecuteAddonFunctionDocument,
  OnDeliveriesDocument,
  OnEventsDocument,
  RenderWidgetDocument,
  UpdateAddonConfigDocument,
  type OnEventsSubscription,
} from '../generated/graphql.js';
import { startTestServerOn, type TestServer } from './test-instance.js';
import { eventually, liveClient, subscribe, untilListening, type LiveSubscription } from './helpers.js';

/** A stock widget reading storage and the installation config, a function that changes stock, a handler. */
const SOURCE = `module.exports = {
  functions: {
    'set-stock': async (d, ctx) => {
      await ctx.storage.set('stock', d.n);
      await ctx.events.emit('stock.updated', { n: d.n });
      return true;
    },
  },
  handlers: { onOrder: async () => true },
  widgets: {
    stock: async (config, context, ctx) =>
      ctx.html\`<p>\${String(await ctx.storage.get('stock'))} \${ctx.config.unit}</p>\`,
  },
};`;

const MANIFEST = {
  permissions: ['storage.read', 'storage.write', 'events.emit'],
  configSchema: { type: 'object', properties: { unit: { type: 'string', default: 'pcs' } } },
  functions: [{ name: 'set-stock' }],
  events: { emits: ['stock.updated'], handles: { 'order.created': 'onOrder' } },
  widgets: [
    {
      name: 'stock',
      displayName: 'Stock',
      category: 'DISPLAY',
      configSchema: { type: 'object' },
      invalidateOn: ['stock.updated'],
    },
  ],
};

/** Every delivery the key sees (pages of 100), id and status. */
async function allDeliveries(client: GraphQLClient): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  let after: string | null | undefined;
  do {
    const { deliveries } = await client.ok(DeliveriesDocument, { first: 100, after });
    for (const { node } of deliveries.edges) out.set(node.id, node.status);
    after = deliveries.pageInfo.hasNextPage ? deliveries.pageInfo.endCursor : null;
  } while (after);
  return out;
}

/** A stream position from an Event.cursor, to check that a feed is in stream order. */
function position(cursor: string): [bigint, bigint] {
  const [, txid, seq] = Buffer.from(cursor, 'base64url').toString('utf8').split(':');
  return [BigInt(txid), BigInt(seq)];
}

const before_ = (a: [bigint, bigint], b: [bigint, bigint]) => a[0] < b[0] || (a[0] === b[0] && a[1] < b[1]);

/**
 * A deliveries subscriber as a dashboard runs one: when its subscription ends with an error it
 * subscribes again (refused while the server has no Redis), and catches up with Query.deliveries
 * once a subscription holds.
 */
function resubscribingDeliveries(client: Client, http: GraphQLClient) {
  const state = {
    interruptions: [] as { code?: unknown; reason?: unknown }[],
    live: [] as string[],
    caughtUp: new Map<string, string>(),
    stopped: false,
    stop: () => undefined as void,
  };
  const start = () => {
    let failed = false;
    const unsubscribe = client.subscribe(
      { query: print(OnDeliveriesDocument), variables: {} },
      {
        next: (result) => {
          if (result.errors) {
            failed = true;
            for (const error of result.errors) state.interruptions.push(error.extensions ?? {});
          }
          const delivery = (result.data as { deliveries?: { id: string } } | undefined)?.deliveries;
          if (delivery) state.live.push(delivery.id);
        },
        error: () => undefined,
        complete: () => {
          if (!state.stopped && failed) setTimeout(start, 100);
        },
      },
    );
    state.stop = () => {
      state.stopped = true;
      unsubscribe();
    };
    // Held for a while: catch up with what the feed may have missed.
    setTimeout(async () => {
      if (failed || state.stopped) return;
      for (const [id, status] of await allDeliveries(http)) state.caughtUp.set(id, status);
    }, 500);
  };
  start();
  return state;
}

describe('live streams and cached renders across a Redis outage', () => {
  let redis: OwnRedis;
  let database: TestDatabase;
  let a: TestServer;
  let b: TestServer;
  let site: { siteId: string; key: string; client: GraphQLClient };
  let addon: string;
  const adminKey = generateApiKey();
  const clients: Client[] = [];

  before(async () => {
    redis = await startOwnRedis();
    database = await createTestDatabase();
    const env = { REDIS_URL: redis.url, REDIS_KEY_PREFIX: 'outage:' };
    a = await startTestServerOn(database.url, adminKey, env);
    b = await startTestServerOn(database.url, adminKey, env);
    const developer = (await givenDeveloper(a.admin)).client;
    const installed = await givenInstalledAddon(a.admin, developer, MANIFEST, SOURCE);
    site = installed.site;
    addon = installed.name;
  });
  after(async () => {
    for (const client of clients) await client.dispose();
    await b?.close();
    await a?.close();
    await database?.drop();
    await redis?.stop();
  });

  it('delivers every event to every live subscriber once, in order, across a Redis kill and restart; the delivery feed ends with LIVE_STREAM_INTERRUPTED and catches up', async () => {
    // given: two event subscribers on each instance, and a delivery feed on the first
    const feeds: LiveSubscription<OnEventsSubscription>[] = [];
    for (const server of [a, a, b, b]) {
      const client = liveClient(server.url, site.key);
      clients.push(client);
      const feed = subscribe(client, OnEventsDocument, { names: ['order.*'] });
      await untilListening(
        feed,
        () => site.client.ok(EmitEventDocument, { name: 'order.probe', data: {} }),
        (m) => m.events.name === 'order.probe',
      );
      feeds.push(feed);
    }
    const deliveryClient = liveClient(a.url, site.key);
    clients.push(deliveryClient);
    const deliveries = resubscribingDeliveries(deliveryClient, site.client);
    const emitters = [site.client, new GraphQLClient(b.url, site.key)];
    const emitted: string[] = [];
    const emit = async (n: number) => {
      const { emitEvent } = await emitters[n % 2].ok(EmitEventDocument, {
        name: 'order.created',
        data: { n },
      });
      emitted.push(emitEvent.id);
    };

    // when: events through both instances before, during (Redis killed for 2 s) and after the outage
    for (let n = 0; n < 40; n += 1) await emit(n).then(() => sleep(10));
    await redis.kill();
    const outageEnds = Date.now() + 2_000;
    for (let n = 40; Date.now() < outageEnds; n += 1) await emit(n).then(() => sleep(20));
    await redis.restart();
    for (let n = 1000; n < 1040; n += 1) await emit(n).then(() => sleep(10));

    // then: every event subscriber has every event, once, in stream order, and no error
    const ids = new Set(emitted);
    for (const [i, feed] of feeds.entries()) {
      await eventually(
        async () => {
          const got = feed.received.filter((m) => ids.has(m.events.id));
          return got.length >= ids.size ? true : undefined;
        },
        `subscriber ${i} to receive all ${ids.size} events`,
        15_000,
      );
      const got = feed.received.filter((m) => m.events.name === 'order.created');
      assert.equal(got.length, ids.size, `subscriber ${i}: no duplicates`);
      assert.deepEqual(new Set(got.map((m) => m.events.id)), ids, `subscriber ${i}: every event`);
      for (let k = 1; k < got.length; k += 1) {
        assert.ok(
          before_(position(got[k - 1].events.cursor), position(got[k].events.cursor)),
          `subscriber ${i}: in stream order`,
        );
      }
      assert.deepEqual(feed.errors, [], `subscriber ${i}: never interrupted`);
    }
    // the delivery feed was told, then caught up once Redis was back
    assert.ok(
      deliveries.interruptions.some((e) => e.code === 'LIVE_STREAM_INTERRUPTED' && e.reason === 'redis-lost'),
      JSON.stringify(deliveries.interruptions),
    );
    const stored = await eventually(async () => {
      const all = await allDeliveries(site.client);
      return all.size >= emitted.length ? [...all.keys()] : undefined;
    }, 'a delivery per event');
    await eventually(
      async () =>
        stored.every((id) => deliveries.caughtUp.has(id) || deliveries.live.includes(id)) ? true : undefined,
      'the delivery feed to know every delivery',
      15_000,
    );
    deliveries.stop();
    for (const feed of feeds) feed.stop();
  });

  it('shows a change made during an outage at once on the instance that made it and within 5 s on the other; a fresh instance never serves an older render from L2', async (t) => {
    // given: the widget rendered (and cached) on both instances
    const clientB = new GraphQLClient(b.url, site.key);
    const render = async (client: GraphQLClient) =>
      (await client.ok(RenderWidgetDocument, { addon, widget: 'stock', config: {}, context: {} }))
        .renderWidget.html;
    await site.client.ok(ExecuteAddonFunctionDocument, {
      addonId: addon,
      function: 'set-stock',
      data: { n: 1 },
    });
    await eventually(
      async () => ((await render(clientB)).includes('>1 pcs<') ? true : undefined),
      'B to render 1',
    );
    assert.match(await render(site.client), />1 pcs</);
    assert.match(await render(clientB), />1 pcs</);
    const untilB = async (pattern: RegExp, what: string) => {
      const started = Date.now();
      await eventually(
        async () => {
          const html = await render(clientB);
          return pattern.test(html) ? true : undefined;
        },
        what,
        10_000,
      );
      return Date.now() - started;
    };

    // when: Redis is killed, then the stock (an invalidating event) and the config change through A
    await redis.kill();
    await site.client.ok(ExecuteAddonFunctionDocument, {
      addonId: addon,
      function: 'set-stock',
      data: { n: 2 },
    });
    const stockOnA = await render(site.client);
    const stockDelay = await untilB(/>2 pcs</, 'B to render the new stock');
    await site.client.ok(UpdateAddonConfigDocument, { id: addon, config: { unit: 'boxes' } });
    const configOnA = await render(site.client);
    const configDelay = await untilB(/>2 boxes</, 'B to render with the new config');
    await redis.restart();

    // then
    assert.match(stockOnA, />2 pcs</, 'at once where the change was made');
    assert.match(configOnA, />2 boxes</, 'at once where the change was made');
    t.diagnostic(`B rendered the new stock after ${stockDelay} ms, the new config after ${configDelay} ms`);
    assert.ok(stockDelay <= 5_000, `B rendered the new stock after ${stockDelay} ms`);
    assert.ok(configDelay <= 5_000, `B rendered the new config after ${configDelay} ms`);

    // when: Redis is paused (it keeps its L2 entries) while the stock changes, then resumes
    assert.match(await render(clientB), />2 boxes</, 'stored in L2 under the current generation');
    redis.pause();
    await site.client.ok(ExecuteAddonFunctionDocument, {
      addonId: addon,
      function: 'set-stock',
      data: { n: 3 },
    });
    redis.resume();
    const fresh = await startTestServerOn(database.url, adminKey, {
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: 'outage:',
    });
    try {
      // then: a fresh instance reads the generation from PostgreSQL, not an older render from L2
      assert.match(await render(new GraphQLClient(fresh.url, site.key)), />3 boxes</);
      await untilB(/>3 boxes</, 'B to render the stock changed while Redis was paused');
    } finally {
      await fresh.close();
    }
  });
});
