import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { startSecondInstance, type SecondInstance } from '../support/second-instance.js';
import { givenDeveloper } from '../support/fixtures.js';
import type { GraphQLClient } from '../support/graphql-client.js';
import {
  EmitEventDocument,
  ExecuteAddonFunctionDocument,
  ExecutionsDocument,
  RenderWidgetDocument,
  UninstallAddonDocument,
  UpdateAddonConfigDocument,
} from '../generated/graphql.js';
import { givenWidgetAddon } from './widget-fixtures.js';

type Rendered = { html: string; cacheKey: string; cached: boolean };

/** Renders through GraphQL on the given client (a site client of either instance). */
async function render(
  client: GraphQLClient,
  addon: string,
  widget: string,
  config: unknown = {},
  siteId?: string,
) {
  return (await client.ok(RenderWidgetDocument, { addon, widget, config, context: {}, siteId }))
    .renderWidget as Rendered;
}

/** Retries `check` until it passes or 3 s elapse (bus messages arrive asynchronously). */
async function eventually<T>(fn: () => Promise<T>, check: (value: T) => boolean): Promise<T> {
  const deadline = Date.now() + 3000;
  for (;;) {
    const value = await fn();
    if (check(value) || Date.now() > deadline) return value;
    await sleep(25);
  }
}

async function metric(url: string, pattern: RegExp): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const match = pattern.exec(text);
  return match ? Number(match[1]) : 0;
}

describe('widget render cache across two instances sharing PostgreSQL and Redis', () => {
  let server: TestServer;
  let second: SecondInstance;
  let developer: GraphQLClient;

  before(async () => {
    server = await startTestServer();
    second = await startSecondInstance(server);
    developer = (await givenDeveloper(server.admin)).client;
  });
  after(async () => {
    await second.close();
    await server.close();
  });

  it('serves a repeat from L1, and the other instance from L2', async () => {
    // given
    const { site, name } = await givenWidgetAddon(server.admin, developer);
    const onSecond = second.admin.as(site.key);
    // when
    const first = await render(site.client, name, 'checkout-form', { title: 'l1' });
    const repeat = await render(site.client, name, 'checkout-form', { title: 'l1' });
    const elsewhere = await render(onSecond, name, 'checkout-form', { title: 'l1' });
    const elsewhereAgain = await render(onSecond, name, 'checkout-form', { title: 'l1' });
    // then
    assert.equal(first.cached, false);
    assert.equal(repeat.cached, true);
    assert.equal(elsewhere.cached, true);
    assert.deepEqual(
      [repeat.html, elsewhere.html, elsewhereAgain.html],
      [first.html, first.html, first.html],
    );
    assert.equal(elsewhere.cacheKey, first.cacheKey);
    assert.ok((await metric(server.url, /^widget_cache_hits_total\{level="l1"\} (\d+)/m)) >= 1);
    assert.ok((await metric(second.url, /^widget_cache_hits_total\{level="l2"\} (\d+)/m)) >= 1);
    assert.ok((await metric(second.url, /^widget_cache_hits_total\{level="l1"\} (\d+)/m)) >= 1);
    assert.ok((await metric(server.url, /^widget_cache_misses_total (\d+)/m)) >= 1);
    assert.match(
      await (await fetch(`${server.url}/metrics`)).text(),
      /widget_render_time_seconds_count\{addon_id="[^"]+",widget_id="checkout-form"\} \d+/,
    );
  });

  it('drops renders on both instances when the installation config changes', async () => {
    // given: the render is cached in the L1 of both instances
    const { site, name } = await givenWidgetAddon(server.admin, developer);
    const onSecond = second.admin.as(site.key);
    const before = await render(site.client, name, 'checkout-form');
    await render(onSecond, name, 'checkout-form');
    assert.equal((await render(onSecond, name, 'checkout-form')).cached, true);
    // when: the change happens on the first instance
    await site.client.ok(UpdateAddonConfigDocument, { id: name, config: { currency: 'USD' } });
    // then: the second instance stops serving the old render
    const after = await eventually(
      () => render(onSecond, name, 'checkout-form'),
      (r) => r.cacheKey !== before.cacheKey,
    );
    assert.notEqual(after.cacheKey, before.cacheKey);
    assert.equal(after.cached, false);
  });

  it('drops renders of widgets declaring an event on every instance when it is emitted', async () => {
    // given: the stock widget rendered (and cached) on both instances with stock 5
    const { site, name } = await givenWidgetAddon(server.admin, developer);
    const onSecond = second.admin.as(site.key);
    await site.client.ok(ExecuteAddonFunctionDocument, {
      addonId: name,
      function: 'set-stock',
      data: { n: 5 },
    });
    assert.match((await render(site.client, name, 'stock')).html, />5</);
    assert.match((await render(onSecond, name, 'stock')).html, />5</);
    await site.client.ok(ExecuteAddonFunctionDocument, {
      addonId: name,
      function: 'set-stock',
      data: { n: 3 },
    });
    const stale = await render(onSecond, name, 'stock');
    assert.equal(stale.cached, true, 'no event yet: the cached render stands');
    // when: stock.updated is emitted on the site (through the first instance)
    await site.client.ok(EmitEventDocument, { name: 'stock.updated', data: { sku: 'A' } });
    // then
    const fresh = await eventually(
      () => render(onSecond, name, 'stock'),
      (r) => />3</.test(r.html),
    );
    assert.match(fresh.html, />3</);
    assert.match((await render(site.client, name, 'stock')).html, />3</);
    // A widget of another addon that does not declare the event is untouched.
    const { site: other, name: otherName } = await givenWidgetAddon(server.admin, developer);
    await render(other.client, otherName, 'checkout-form');
    await other.client.ok(EmitEventDocument, { name: 'order.placed', data: {} });
    await sleep(100);
    assert.equal((await render(other.client, otherName, 'checkout-form')).cached, true);
  });

  it('stops serving renders of an uninstalled addon on both instances', async () => {
    // given
    const { site, name } = await givenWidgetAddon(server.admin, developer);
    const onSecond = second.admin.as(site.key);
    await render(onSecond, name, 'checkout-form');
    // when
    await site.client.ok(UninstallAddonDocument, { id: name });
    // then
    const result = await eventually(
      () =>
        onSecond.request(RenderWidgetDocument, {
          addon: name,
          widget: 'checkout-form',
          config: {},
          context: {},
        }),
      (r) => r.errors?.[0]?.extensions?.code === 'NOT_FOUND',
    );
    assert.equal(result.errors?.[0].extensions?.code, 'NOT_FOUND');
  });

  it('renders once for concurrent misses of the same key (single flight)', async () => {
    // given
    const { site, name } = await givenWidgetAddon(server.admin, developer);
    // when
    const results = await Promise.all(
      Array.from({ length: 12 }, () => render(site.client, name, 'checkout-form', { title: 'burst' })),
    );
    await server.app.runtime.recorder.flush();
    // then
    assert.equal(new Set(results.map((r) => r.cacheKey)).size, 1);
    assert.ok(results.some((r) => !r.cached));
    const executions = await site.client.ok(ExecutionsDocument, { addon: name, kind: 'widget', first: 50 });
    assert.equal(executions.executions.edges.length, 1);
  });
});

describe('widget rendering while Redis is unreachable', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer({ REDIS_URL: 'redis://127.0.0.1:1' });
  });
  after(() => server.close());

  it('still renders, from the sandbox and then from L1', async () => {
    // given
    const developer = (await givenDeveloper(server.admin)).client;
    const { site, name } = await givenWidgetAddon(server.admin, developer);
    // when
    const started = Date.now();
    const first = await render(site.client, name, 'checkout-form', { title: 'offline' });
    const second = await render(site.client, name, 'checkout-form', { title: 'offline' });
    await site.client.ok(UpdateAddonConfigDocument, { id: name, config: { currency: 'EUR' } });
    const afterChange = await render(site.client, name, 'checkout-form', { title: 'offline' });
    // then
    assert.match(first.html, /<h2>offline<\/h2>/);
    assert.equal(first.cached, false);
    assert.equal(second.cached, true);
    assert.equal(afterChange.cached, false, 'a local invalidation still applies without Redis');
    assert.ok(Date.now() - started < 3000);
  });
});
