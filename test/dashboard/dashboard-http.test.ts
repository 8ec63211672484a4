import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenDeveloper, givenInstalledAddon } from '../support/fixtures.js';
import { DashboardStatsDocument, ExecuteAddonFunctionDocument } from '../generated/graphql.js';

/** A GET sent as written: fetch() would normalise `..` away before the server saw it. */
function rawGet(
  base: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const request = http.request({ hostname, port, path, method: 'GET', headers }, (response) => {
      let body = '';
      response.setEncoding('utf8');
      response.on('data', (chunk: string) => (body += chunk));
      response.on('end', () =>
        resolve({ status: response.statusCode ?? 0, headers: response.headers, body }),
      );
    });
    request.on('error', reject);
    request.end();
  });
}

describe('dashboard over HTTP: page, assets, headers, statistics query', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  it('redirects the server root to the dashboard', async () => {
    // when
    const response = await fetch(`${server.url}/`, { redirect: 'manual' });
    // then
    assert.equal(response.status, 302);
    assert.equal(response.headers.get('location'), '/dashboard');
  });

  it('serves the page under a strict CSP: own scripts and styles only, sockets to this host, never framed', async () => {
    // when
    const response = await fetch(`${server.url}/dashboard`);
    const html = await response.text();
    // then
    assert.equal(response.status, 200);
    assert.equal(response.headers.get('content-type'), 'text/html; charset=utf-8');
    const csp = response.headers.get('content-security-policy') ?? '';
    const host = new URL(server.url).host;
    for (const directive of [
      "default-src 'self'",
      "script-src 'self'",
      "style-src 'self'",
      `connect-src 'self' ws://${host} wss://${host}`,
      "frame-src 'self'",
      "frame-ancestors 'none'",
      "object-src 'none'",
      "base-uri 'none'",
    ]) {
      assert.ok(csp.split('; ').includes(directive), `CSP lacks "${directive}": ${csp}`);
    }
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|\*/);
    assert.equal(response.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(response.headers.get('x-frame-options'), 'DENY');
    assert.equal(response.headers.get('referrer-policy'), 'no-referrer');
    assert.equal(response.headers.get('cache-control'), 'no-cache');
    assert.match(response.headers.get('etag') ?? '', /^"[\w-]+"$/);
    // No inline script or handler: every <script> has a src, and no on*= attribute appears.
    assert.match(html, /<script type="module" src="\/dashboard\/assets\/dashboard\.js"><\/script>/);
    assert.doesNotMatch(html, /<script(?![^>]*\ssrc=)[^>]*>/);
    assert.doesNotMatch(html, /\son[a-z]+=/i);
    assert.equal((await fetch(`${server.url}/dashboard/`)).status, 200);
  });

  it('serves the script and style with their types, nosniff, an ETag, and 304 when unchanged', async () => {
    for (const [name, type] of [
      ['dashboard.js', 'text/javascript; charset=utf-8'],
      ['live-client.js', 'text/javascript; charset=utf-8'],
      ['dashboard.css', 'text/css; charset=utf-8'],
    ]) {
      // when
      const response = await fetch(`${server.url}/dashboard/assets/${name}`);
      const body = await response.text();
      // then
      assert.equal(response.status, 200, name);
      assert.equal(response.headers.get('content-type'), type, name);
      assert.equal(response.headers.get('x-content-type-options'), 'nosniff', name);
      assert.equal(response.headers.get('cache-control'), 'no-cache', name);
      assert.ok(body.length > 100, name);
      const etag = response.headers.get('etag')!;
      const again = await fetch(`${server.url}/dashboard/assets/${name}`, {
        headers: { 'if-none-match': etag },
      });
      assert.equal(again.status, 304, name);
    }
  });

  it('refuses path traversal and anything outside the fixed list of assets', async () => {
    for (const path of [
      '/dashboard/assets/../../package.json',
      '/dashboard/assets/..%2F..%2Fpackage.json',
      '/dashboard/assets/%2e%2e%2f%2e%2e%2fpackage.json',
      '/dashboard/assets/..%5C..%5Cpackage.json',
      '/dashboard/assets/%2e%2e/%2e%2e/package.json',
      '/dashboard/assets/index.html',
      '/dashboard/assets/dashboard-stats.service.ts',
      '/dashboard/assets/__proto__',
      '/dashboard/assets/constructor',
      '/dashboard/../package.json',
    ]) {
      // when
      const response = await rawGet(server.url, path);
      // then
      assert.equal(response.status, 404, path);
      assert.doesNotMatch(response.body, /themepress-addon-server|"dependencies"/, path);
    }
  });

  it('keeps a forged Host header out of the CSP', async () => {
    // when
    const response = await rawGet(server.url, '/dashboard', {
      host: "evil.example; script-src 'unsafe-inline'",
    });
    // then
    assert.equal(response.status, 200);
    const csp = String(response.headers['content-security-policy']);
    assert.match(csp, /connect-src 'self';/);
    assert.doesNotMatch(csp, /evil|unsafe-inline/);
  });

  it("answers Query.dashboardStats with the caller's runs, and UNAUTHENTICATED / BAD_USER_INPUT otherwise", async () => {
    // given: a site installed an addon (its install hook runs) and called a function twice
    const developer = (await givenDeveloper(server.admin)).client;
    const { site, name } = await givenInstalledAddon(
      server.admin,
      developer,
      { functions: [{ name: 'ping', readonly: false }] },
      `module.exports = { functions: { ping: () => 'pong' } };`,
    );
    for (let i = 0; i < 2; i += 1) {
      await site.client.ok(ExecuteAddonFunctionDocument, { addonId: name, function: 'ping', data: {} });
    }
    // when: records are written in batches off the hot path, so wait for them
    let stats;
    for (let tries = 0; tries < 100; tries += 1) {
      stats = (await site.client.ok(DashboardStatsDocument, { windowSeconds: 60 })).dashboardStats;
      if (stats.executions >= 3) break;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    // then
    assert.equal(stats?.executions, 3);
    assert.equal(stats?.errors, 0);
    assert.deepEqual(
      stats?.addons.map((a) => a.addonName),
      [name],
    );
    assert.equal(stats?.widgetCache, null);
    const forAdmin = await server.admin.ok(DashboardStatsDocument, {});
    assert.ok(forAdmin.dashboardStats.executions >= 3);
    assert.notEqual(forAdmin.dashboardStats.widgetCache, null);

    const anonymous = await server.anonymous.request(DashboardStatsDocument, {});
    assert.equal(anonymous.errors?.[0]?.extensions?.code, 'UNAUTHENTICATED');
    const badWindow = await site.client.request(DashboardStatsDocument, { windowSeconds: 1 });
    assert.equal(badWindow.errors?.[0]?.extensions?.code, 'BAD_USER_INPUT');
    const otherSite = await site.client.request(DashboardStatsDocument, {
      siteId: '00000000-0000-4000-8000-000000000000',
    });
    assert.equal(otherSite.errors?.[0]?.extensions?.code, 'FORBIDDEN');
  });
});
