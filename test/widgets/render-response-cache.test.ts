import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { print } from 'graphql';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenDeveloper, givenPublished, givenSite } from '../support/fixtures.js';
import type { GraphQLClient } from '../support/graphql-client.js';
import {
  InstallAddonDocument,
  RenderWidgetDocument,
  SetAddonEnabledDocument,
  UpdateAddonConfigDocument,
  WidgetListingWithRenderDocument,
} from '../generated/graphql.js';
import { givenWidgetAddon, WIDGET_SOURCE } from './widget-fixtures.js';

const RENDER = print(RenderWidgetDocument);

/** What the server counts of its response cache (`hit`, `stored`, `stale`). */
async function responseCache(url: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const counts: Record<string, number> = { hit: 0, stored: 0, stale: 0 };
  for (const [, outcome, value] of text.matchAll(
    /^graphql_response_cache_total\{outcome="(\w+)"\} (\d+)$/gm,
  )) {
    counts[outcome] = Number(value);
  }
  return counts;
}

/** A render operation as a frontend sends it; the response body as text. */
async function postRender(
  url: string,
  key: string | null,
  variables: Record<string, unknown>,
): Promise<string> {
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify({ query: RENDER, variables }),
  });
  return response.text();
}

describe('GraphQL responses kept for repeated renders', () => {
  let server: TestServer;
  let developer: GraphQLClient;

  before(async () => {
    server = await startTestServer();
    developer = (await givenDeveloper(server.admin)).client;
  });
  after(() => server.close());

  it('answers a repeated render operation with the response execution gave, once its render is cached', async () => {
    // given: a miss (rendered, not kept), then a hit that execution answers and that is kept
    const { site, name } = await givenWidgetAddon(server.admin, developer);
    const variables = { addon: name, widget: 'checkout-form', config: { title: 'Kept' }, context: {} };
    const missed = JSON.parse(await postRender(server.url, site.key, variables));
    const executed = await postRender(server.url, site.key, variables);
    const before = await responseCache(server.url);
    // when
    const repeated = await postRender(server.url, site.key, variables);
    // then
    assert.equal(missed.data.renderWidget.cached, false);
    assert.equal(JSON.parse(executed).data.renderWidget.cached, true);
    assert.equal(repeated, executed, 'byte for byte');
    const now = await responseCache(server.url);
    assert.equal(now.hit - before.hit, 1);
  });

  it('keeps responses apart by variables and by caller scope', async () => {
    // given: the same addon on two sites, each answered twice (kept)
    const { site, name, manifest } = await givenWidgetAddon(server.admin, developer);
    const other = await givenSite(server.admin);
    await other.client.ok(InstallAddonDocument, { id: manifest.name as string, config: {} });
    const variables = { addon: name, widget: 'checkout-form', config: { title: 'Scoped' }, context: {} };
    for (const key of [site.key, site.key, other.key, other.key])
      await postRender(server.url, key, variables);
    const before = await responseCache(server.url);
    // when
    const ours = JSON.parse(await postRender(server.url, site.key, variables));
    const theirs = JSON.parse(await postRender(server.url, other.key, variables));
    const otherConfig = JSON.parse(
      await postRender(server.url, site.key, { ...variables, config: { title: 'Other' } }),
    );
    const anonymous = JSON.parse(await postRender(server.url, null, { ...variables, siteId: site.siteId }));
    // then: each site its own render; other variables and another kind of caller executed afresh
    assert.notEqual(ours.data.renderWidget.html, theirs.data.renderWidget.html);
    assert.match(otherConfig.data.renderWidget.html, /<h2>Other<\/h2>/);
    assert.match(anonymous.data.renderWidget.html, /<h2>Scoped<\/h2>/);
    assert.equal((await responseCache(server.url)).hit - before.hit, 2, 'only the two repeats');
  });

  it('executes again once what the response was built from changes: the installation config, then its enabled state', async () => {
    // given: a kept response
    const { site, name } = await givenWidgetAddon(server.admin, developer);
    const variables = { addon: name, widget: 'checkout-form', config: {}, context: {} };
    for (let i = 0; i < 3; i += 1) await site.client.ok(RenderWidgetDocument, variables);
    const before = await responseCache(server.url);
    // when
    await site.client.ok(UpdateAddonConfigDocument, { id: name, config: { currency: 'EUR' } });
    const afterChange = await site.client.ok(RenderWidgetDocument, variables);
    for (let i = 0; i < 2; i += 1) await site.client.ok(RenderWidgetDocument, variables);
    await site.client.ok(SetAddonEnabledDocument, { id: name, enabled: false });
    const afterDisable = await site.client.request(RenderWidgetDocument, variables);
    // then
    assert.equal(afterChange.renderWidget.cached, false, 'rendered again');
    assert.equal(afterDisable.errors?.[0].extensions?.code, 'CONFLICT');
    const now = await responseCache(server.url);
    assert.equal(now.stale - before.stale, 2);
  });

  it('executes widget { render } again once a publish replaces the widget it listed', async () => {
    // given: a kept response listing the widget of the latest version
    const { site, name, manifest } = await givenWidgetAddon(server.admin, developer);
    const variables = { addon: name, name: 'checkout-form', config: {}, context: {} };
    for (let i = 0; i < 3; i += 1) await site.client.ok(WidgetListingWithRenderDocument, variables);
    const kept = await site.client.ok(WidgetListingWithRenderDocument, variables);
    // when
    const widgets = (manifest.widgets as Array<Record<string, unknown>>).map((widget) =>
      widget.name === 'checkout-form' ? { ...widget, displayName: 'Checkout, new' } : widget,
    );
    await givenPublished(developer, { ...manifest, version: '1.1.0', widgets }, WIDGET_SOURCE);
    const afterPublish = await site.client.ok(WidgetListingWithRenderDocument, variables);
    // then
    assert.equal(kept.widget.displayName, 'Checkout');
    assert.equal(afterPublish.widget.displayName, 'Checkout, new');
    assert.deepEqual(afterPublish.widget.render, kept.widget.render, 'the installed version renders');
  });

  it('never keeps a response with errors, or an operation selecting any other field', async () => {
    // given
    const { site, name } = await givenWidgetAddon(server.admin, developer);
    const render = `renderWidget(addon: "${name}", widget: "checkout-form", config: {}, context: {}) { html }`;
    await site.client.raw(`{ ${render} }`);
    const before = await responseCache(server.url);
    // when: each three times
    for (let i = 0; i < 3; i += 1) {
      await site.client.raw(`{ ${render} widgets { name } }`);
      await site.client.raw(
        `{ widget(addon: "${name}", name: "checkout-form") { renderEndpoint } ${render} }`,
      );
      await site.client.raw(
        `{ ${render} bad: renderWidget(addon: "${name}", widget: "checkout-form", config: { limit: 0 }, context: {}) { html } }`,
      );
    }
    // then
    const now = await responseCache(server.url);
    assert.equal(now.hit - before.hit, 0);
    assert.equal(now.stored - before.stored, 0);
  });
});
