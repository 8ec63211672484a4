import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenDeveloper, givenSite } from '../support/fixtures.js';
import type { GraphQLClient } from '../support/graphql-client.js';
import {
  RenderWidgetAliasedDocument,
  RenderThroughWidgetDocument,
  RenderWidgetDocument,
  SetAddonEnabledDocument,
  WidgetRenderDocument,
} from '../generated/graphql.js';
import { givenWidgetAddon, restRender } from './widget-fixtures.js';

const XSS = `"><img src=x onerror=alert(1)><script>alert(1)</script>'\``;

describe('widget rendering', () => {
  let server: TestServer;
  let developer: GraphQLClient;
  let addon: Awaited<ReturnType<typeof givenWidgetAddon>>;

  before(async () => {
    server = await startTestServer();
    developer = (await givenDeveloper(server.admin)).client;
    addon = await givenWidgetAddon(server.admin, developer);
  });
  after(() => server.close());

  it('renders with the schema defaults applied to the config, through Widget.render and Query.renderWidget', async () => {
    // given
    const { site, name } = addon;
    // when
    const viaField = await site.client.ok(WidgetRenderDocument, {
      addon: name,
      name: 'checkout-form',
      config: {},
      context: { sessionId: 's-1' },
    });
    const viaQuery = await site.client.ok(RenderWidgetDocument, {
      addon: name,
      widget: 'checkout-form',
      config: { methods: ['kakao'] },
      context: { sessionId: 's-1' },
    });
    // then
    const rendered = viaField.widget.render;
    assert.match(rendered.html, /^<div data-tp-widget="w[0-9a-f]{16}">/);
    assert.match(rendered.html, /<h2>Checkout<\/h2>/);
    for (const method of ['card', 'bank', 'kakao'])
      assert.match(rendered.html, new RegExp(`value="${method}"`));
    assert.match(rendered.html, /data-session="s-1"/);
    assert.equal(rendered.version, '1.0.0');
    assert.equal(rendered.cached, false);
    assert.match(viaQuery.renderWidget.html, /value="kakao"/);
    assert.doesNotMatch(viaQuery.renderWidget.html, /value="card"/);
    assert.notEqual(viaQuery.renderWidget.cacheKey, rendered.cacheKey);
  });

  it('refuses an invalid config listing every failing path, and renders nothing', async () => {
    // given
    const { site, name } = addon;
    // when
    const result = await site.client.request(RenderWidgetDocument, {
      addon: name,
      widget: 'checkout-form',
      config: { methods: ['card', 'bitcoin'], limit: 0, extra: true },
      context: {},
    });
    const rest = await restRender(
      server.url,
      name,
      'checkout-form',
      { config: { title: 5 } },
      { key: site.key },
    );
    await server.app.runtime.recorder.flush();
    // then
    assert.equal(result.errors?.[0].extensions?.code, 'BAD_USER_INPUT');
    const fields = (result.errors?.[0].extensions?.fields as { field: string }[]).map((f) => f.field).sort();
    assert.deepEqual(fields, ['config.extra', 'config.limit', 'config.methods[1]']);
    assert.equal(rest.status, 400);
    const body = (await rest.json()) as { error: { code: string; fields: { field: string }[] } };
    assert.equal(body.error.code, 'BAD_USER_INPUT');
    assert.deepEqual(
      body.error.fields.map((f) => f.field),
      ['config.title'],
    );
  });

  it('escapes XSS attempts from config and context in text and attributes', async () => {
    // given
    const { site, name } = addon;
    // when
    const { renderWidget } = await site.client.ok(RenderWidgetDocument, {
      addon: name,
      widget: 'checkout-form',
      config: { title: XSS },
      context: { sessionId: `" onmouseover="alert(1)` },
    });
    // then
    const html = renderWidget.html;
    assert.ok(!html.includes('<img'), html);
    assert.ok(!html.includes('<script'), html);
    assert.doesNotMatch(html, /\son\w+="/);
    assert.match(html, /title="&quot;&gt;&lt;img src=x onerror=alert\(1\)&gt;&lt;script&gt;/);
    assert.match(html, /<h2>"&gt;&lt;img/);
    assert.match(html, /data-session="&quot; onmouseover=&quot;alert\(1\)"/);
  });

  it('passes only the varyOn fields of the context to the render', async () => {
    // given: userName is not in varyOn, so it must neither reach the render nor split the cache
    const { site, name } = addon;
    const render = (userName: string) =>
      site.client.ok(RenderWidgetDocument, {
        addon: name,
        widget: 'checkout-form',
        config: { title: 'vary' },
        context: { sessionId: 'same', userName },
      });
    // when
    const alice = (await render('alice')).renderWidget;
    const bob = (await render('bob')).renderWidget;
    // then
    assert.doesNotMatch(alice.html, /alice/);
    assert.match(alice.html, /<p class="who"><\/p>/);
    assert.equal(bob.cacheKey, alice.cacheKey);
    assert.equal(bob.cached, true);
  });

  it('scopes the CSS to the widget root and neutralises hostile output', async () => {
    // given
    const { site, name } = addon;
    // when
    const checkout = (
      await site.client.ok(RenderWidgetDocument, {
        addon: name,
        widget: 'checkout-form',
        config: {},
        context: {},
      })
    ).renderWidget;
    const hostile = (
      await site.client.ok(RenderWidgetDocument, { addon: name, widget: 'hostile', config: {}, context: {} })
    ).renderWidget;
    // then
    const root = /data-tp-widget="(w[0-9a-f]+)"/.exec(checkout.html)![1];
    assert.equal(
      checkout.css,
      `[data-tp-widget="${root}"] .checkout{display:grid}\n[data-tp-widget="${root}"]{margin:0}\n` +
        `@media (max-width: 600px){[data-tp-widget="${root}"] .checkout{gap:4px}}`,
    );
    const hostileRoot = /data-tp-widget="(w[0-9a-f]+)"/.exec(hostile.html)![1];
    assert.notEqual(hostileRoot, root);
    assert.equal(hostile.css, `[data-tp-widget="${hostileRoot}"] .x{color:red}`);
    // Page-level tags are dropped by the sanitizer, with the style sheet's text.
    assert.equal(hostile.html, `<div data-tp-widget="${hostileRoot}"><p>hi</p></div>`);
    assert.equal(hostile.javascript, 'var s = "\\x3C/script><script>alert(2)\\x3C/script>";');
  });

  it('serves the REST route as JSON and as an HTML document with a nonce-based CSP', async () => {
    // given
    const { site, name } = addon;
    const query = { config: { title: 'Pay now' }, context: { sessionId: 'abc' } };
    // when
    const json = await restRender(server.url, name, 'checkout-form', query, { key: site.key });
    const document = await restRender(server.url, name, 'checkout-form', query, {
      key: site.key,
      accept: 'text/html,application/xhtml+xml,*/*;q=0.8',
    });
    const post = await fetch(`${server.url}/api/widgets/${name}/checkout-form`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${site.key}` },
      body: JSON.stringify(query),
    });
    // then
    assert.equal(json.status, 200);
    assert.match(json.headers.get('content-type')!, /application\/json/);
    const output = (await json.json()) as { html: string; css: string; cached: boolean; version: string };
    assert.match(output.html, /<h2>Pay now<\/h2>/);
    assert.equal(output.version, '1.0.0');
    assert.equal(((await post.json()) as { cached: boolean; html: string }).html, output.html);
    // The first request of this query rendered; the next ones were served from the cache.
    assert.match(json.headers.get('server-timing')!, /^render;dur=\d+\.\d\d;desc="rendered"$/);
    assert.match(post.headers.get('server-timing')!, /^render;dur=\d+\.\d\d;desc="cache hit"$/);

    assert.equal(document.status, 200);
    assert.match(document.headers.get('content-type')!, /^text\/html/);
    const csp = document.headers.get('content-security-policy')!;
    const nonce = /script-src 'nonce-([A-Za-z0-9+/=]+)'/.exec(csp)![1];
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, new RegExp(`style-src 'nonce-${nonce.replace(/[+/]/g, '\\$&')}'`));
    assert.doesNotMatch(csp, /script-src[^;]*unsafe-inline/);
    assert.equal(document.headers.get('cache-control'), 'no-store');
    const text = await document.text();
    assert.match(text, /^<!doctype html>/);
    assert.ok(text.includes(`<style nonce="${nonce}">`));
    assert.ok(text.includes(`<script nonce="${nonce}">`));
    assert.ok(text.includes(output.html));
    // The widget's `</script>` inside its own comment cannot close the element.
    assert.equal(text.match(/<\/script>/g)?.length, 1);
    const again = await restRender(server.url, name, 'checkout-form', query, {
      key: site.key,
      accept: 'text/html',
    });
    assert.notEqual(/nonce-([^']+)'/.exec(again.headers.get('content-security-policy')!)![1], nonce);
  });

  it('needs a site with the addon installed and enabled; anonymous callers name the site', async () => {
    // given
    const { site, name } = addon;
    const otherSite = await givenSite(server.admin);
    const query = { config: {}, context: {} };
    // when
    const anonymous = await restRender(server.url, name, 'checkout-form', { ...query, siteId: site.siteId });
    const noSite = await restRender(server.url, name, 'checkout-form', query);
    const notInstalled = await restRender(server.url, name, 'checkout-form', {
      ...query,
      siteId: otherSite.siteId,
    });
    const foreign = await restRender(
      server.url,
      name,
      'checkout-form',
      { ...query, siteId: site.siteId },
      {
        key: otherSite.key,
      },
    );
    const unknownWidget = await restRender(server.url, name, 'nope', query, { key: site.key });
    const badJson = await fetch(`${server.url}/api/widgets/${name}/checkout-form?config=%7Bnope`, {
      headers: { authorization: `Bearer ${site.key}` },
    });
    const adminWithoutSite = await server.admin.request(RenderWidgetDocument, {
      addon: name,
      widget: 'checkout-form',
      ...query,
    });
    // then
    assert.equal(anonymous.status, 200);
    assert.equal(noSite.status, 400);
    assert.equal(((await noSite.json()) as { error: { code: string } }).error.code, 'BAD_USER_INPUT');
    assert.equal(notInstalled.status, 404);
    assert.equal(((await notInstalled.json()) as { error: { code: string } }).error.code, 'NOT_FOUND');
    assert.equal(foreign.status, 403);
    assert.equal(unknownWidget.status, 404);
    assert.equal(badJson.status, 400);
    assert.match(((await badJson.json()) as { error: { message: string } }).error.message, /config/);
    assert.equal(adminWithoutSite.errors?.[0].extensions?.code, 'BAD_USER_INPUT');
  });

  it('refuses a disabled installation even when its renders are cached', async () => {
    // given
    const { site, name } = await givenWidgetAddon(server.admin, developer);
    const render = () =>
      restRender(server.url, name, 'checkout-form', { config: {}, context: {} }, { key: site.key });
    const variables = { addon: name, widget: 'checkout-form', config: {}, context: {} };
    assert.equal((await render()).status, 200);
    await site.client.ok(RenderWidgetDocument, variables);
    assert.equal((await site.client.ok(RenderWidgetDocument, variables)).renderWidget.cached, true);
    // when
    await site.client.ok(SetAddonEnabledDocument, { id: name, enabled: false });
    const disabled = await render();
    const disabledQuery = await site.client.request(RenderWidgetDocument, variables);
    // then
    assert.equal(disabled.status, 409);
    assert.equal(((await disabled.json()) as { error: { code: string } }).error.code, 'CONFLICT');
    assert.equal(disabledQuery.errors?.[0].extensions?.code, 'CONFLICT');
  });

  it('answers a repeated renderWidget operation from the cache as execution answered it, aliases included', async () => {
    // given
    const { site, name } = addon;
    const variables = {
      addon: name,
      widget: 'checkout-form',
      config: { title: 'Aliased' },
      context: { sessionId: 's-aliased' },
    };
    const first = await site.client.ok(RenderWidgetAliasedDocument, variables);
    // when
    const repeated = await site.client.ok(RenderWidgetAliasedDocument, variables);
    // then
    assert.equal(first.form.cached, false);
    assert.deepEqual(Object.keys(repeated), ['__typename', 'form', 'defaults']);
    assert.deepEqual(Object.keys(repeated.form), ['kind', 'markup', 'cached', 'cacheKey']);
    assert.deepEqual(repeated, {
      __typename: 'Query',
      form: { ...first.form, cached: true },
      defaults: { ...first.defaults, cached: true },
    });
    assert.match(repeated.form.markup, /<h2>Aliased<\/h2>/);
    assert.equal(repeated.form.kind, 'WidgetOutput');
  });

  it('answers a repeated widget { render } from the cache as execution answered it', async () => {
    // given
    const { site, name } = addon;
    const variables = {
      addon: name,
      name: 'checkout-form',
      config: { title: 'Through widget' },
      context: { sessionId: 's-widget' },
    };
    const first = await site.client.ok(RenderThroughWidgetDocument, variables);
    // when
    const repeated = await site.client.ok(RenderThroughWidgetDocument, variables);
    // then
    assert.equal(first.widget.render.cached, false);
    assert.deepEqual(repeated, { widget: { render: { ...first.widget.render, cached: true } } });
    assert.match(repeated.widget.render.html, /<h2>Through widget<\/h2>/);
  });
});
