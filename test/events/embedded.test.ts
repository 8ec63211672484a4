import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { generateApiKey } from '../../src/auth/api-key.js';
import { loadConfig } from '../../src/config/app-config.js';
import { createApp } from '../../src/app/create-app.js';
import type { Client } from 'graphql-ws';
import { GraphQLClient } from '../support/graphql-client.js';
import { givenDeveloper, givenSite } from '../support/fixtures.js';
import {
  DeliveriesDocument,
  EmitEventDocument,
  EventsDocument,
  OnEventsDocument,
} from '../generated/graphql.js';
import { eventually, givenAddonOnSite, liveClient, subscribe, untilListening } from './helpers.js';

describe('events without Redis (embedded PostgreSQL, in-process pub/sub)', () => {
  it('stores, delivers, streams and pages events on a single instance', async () => {
    // given
    const dataDir = await mkdtemp(path.join(tmpdir(), 'themepress-events-'));
    const adminKey = generateApiKey();
    const app = await createApp(
      loadConfig({
        NODE_ENV: 'test',
        HOST: '127.0.0.1',
        PORT: '0',
        DATA_DIR: dataDir,
        ADMIN_API_KEY: adminKey,
        RATE_LIMIT_DEFAULT: '0',
      }),
    );
    const url = await app.listen();
    let live: Client | null = null;
    try {
      const admin = new GraphQLClient(url, adminKey);
      const developer = (await givenDeveloper(admin)).client;
      const site = await givenSite(admin);
      await givenAddonOnSite(
        developer,
        site,
        { events: { handles: { 'order.*': 'onOrder' } } },
        `module.exports = { handlers: { onOrder: () => true } };`,
      );
      live = liveClient(url, site.key);
      const feed = subscribe(live, OnEventsDocument, { names: ['order.*'] });
      // when
      await untilListening(
        feed,
        () => site.client.ok(EmitEventDocument, { name: 'order.created', data: {} }),
        (e) => e.events.name === 'order.created',
      );
      // then
      assert.equal(app.config.redisUrl, null);
      const { events } = await site.client.ok(EventsDocument, { names: ['order.*'] });
      assert.ok(events.edges.length >= 1);
      await eventually(async () => {
        const { deliveries } = await site.client.ok(DeliveriesDocument, { first: 100 });
        const rows = deliveries.edges.map((e) => e.node);
        return rows.length === events.edges.length && rows.every((d) => d.status === 'SUCCEEDED')
          ? true
          : undefined;
      }, 'the deliveries to succeed');
      feed.stop();
    } finally {
      await live?.dispose();
      await app.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
