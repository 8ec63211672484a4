import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Browser, Page, WebSocketRoute } from 'playwright-core';
import { launchChromium } from '../support/chromium.js';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { colouredPixels } from '../support/screenshot-pixels.js';
import { givenDeveloper, givenInstalledAddon } from '../support/fixtures.js';
import { DeliveryDocument, EmitEventDocument, ExecuteAddonFunctionDocument } from '../generated/graphql.js';

const SCREENSHOT = path.resolve('test-artifacts', 'dashboard.png');

/** Fails until its `fix` function has run; renders a recognisable widget. */
const SOURCE = `module.exports = {
  functions: { fix: async (_data, ctx) => { await ctx.storage.set('fixed', true); return true; } },
  handlers: {
    onOrder: async (_event, ctx) => {
      if (!(await ctx.storage.get('fixed'))) throw new Error('mail server down');
    },
    onBounce: async () => {
      throw new Error('bounces are never handled');
    },
  },
  widgets: {
    banner: () => ({ html: '<p class="hello">Hello from the preview</p>', css: '.hello { color: #3451b2; }', javascript: '' }),
  },
};`;

describe('dashboard in a browser', { timeout: 180_000 }, () => {
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  let site: Awaited<ReturnType<typeof givenInstalledAddon>>['site'];
  let addon: string;
  /** Console errors and uncaught exceptions of the page, CSP violations included. */
  const problems: string[] = [];

  before(async () => {
    browser = await launchChromium();
    server = await startTestServer({
      DELIVERY_MAX_ATTEMPTS: '1',
      DELIVERY_POLL_MS: '100',
      DELIVERY_BACKOFF_BASE_MS: '50',
    });
    const developer = (await givenDeveloper(server.admin)).client;
    const installed = await givenInstalledAddon(
      server.admin,
      developer,
      {
        permissions: ['storage.read', 'storage.write'],
        functions: [{ name: 'fix', readonly: false }],
        widgets: [
          { name: 'banner', displayName: 'Banner', category: 'DISPLAY', configSchema: { type: 'object' } },
        ],
        events: { handles: { 'order.created': 'onOrder', 'mail.bounced': 'onBounce' } },
      },
      SOURCE,
    );
    site = installed.site;
    addon = installed.name;
    page = await browser.newPage({ viewport: { width: 1360, height: 1400 } });
    page.setDefaultTimeout(15_000);
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`${message.text()} (${message.location().url})`);
    });
    page.on('pageerror', (error) => problems.push(error.message));
    page.on('response', (response) => {
      if (response.status() >= 400) problems.push(`HTTP ${response.status()} ${response.url()}`);
    });
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it('asks for an API key, says clearly when one is refused, then lists the installed addon, its version and recent events', async () => {
    // when: a key the server does not know
    await page.goto(`${server.url}/dashboard`);
    await page.fill('#key-input', 'tp_thisKeyDoesNotExistAnywhere000000');
    await page.click('#key-form button[type="submit"]');
    // then
    await page.locator('#login-error', { hasText: 'This API key was refused (HTTP 401)' }).waitFor();
    assert.equal(await page.evaluate('sessionStorage.length'), 0);

    // when: the site's key (after an event the page can only know from the stored history)
    await site.client.ok(EmitEventDocument, { name: 'history.before', data: { n: 1 } });
    await page.fill('#key-input', site.key);
    await page.click('#key-form button[type="submit"]');
    // then
    const row = page.locator(`#addons-body tr[data-addon="${addon}"]`);
    await row.waitFor();
    const cells = await row.locator('td').allTextContents();
    assert.match(cells[0], new RegExp(addon));
    assert.equal(cells[1], '1.0.0');
    assert.equal(cells[3], 'enabled');
    await page.locator('#live-status[data-state="live"]').waitFor();
    assert.equal(await page.evaluate("sessionStorage.getItem('themepress.dashboard.apiKey')"), site.key);
    // the event stream starts with the newest stored events (Query.events(last:))
    await page.locator('#events-list li.event', { hasText: 'history.before' }).waitFor();
  });

  it('shows emitted events live, as text even when their data looks like HTML', async () => {
    // given: the event subscription is registered on the server (a probe event shows up)
    for (let attempt = 0; ; attempt += 1) {
      await site.client.ok(EmitEventDocument, { name: 'dashboard.probe', data: { attempt } });
      const seen = await page
        .locator('#events-list li.event', { hasText: 'dashboard.probe' })
        .first()
        .waitFor({ timeout: 1_000 })
        .then(() => true)
        .catch(() => false);
      if (seen) break;
      assert.ok(attempt < 20, 'the live event stream never showed the probe event');
    }
    // when
    const hostile = '<img src=x onerror="window.__pwned = 1">';
    await site.client.ok(EmitEventDocument, {
      name: 'order.created',
      data: { orderId: 'o-1', note: hostile },
    });
    // then
    const item = page.locator('#events-list li.event', { hasText: 'order.created' });
    await item.waitFor();
    const text = (await item.textContent()) ?? '';
    assert.match(text, /"orderId":"o-1"/);
    assert.ok(text.includes('<img src=x'), text);
    assert.equal(await page.locator('#events-list img').count(), 0);
    assert.equal(await page.evaluate('window.__pwned'), undefined);
  });

  it('logs the failing handler run and shows the DEAD delivery, whose Retry makes it succeed once fixed', async () => {
    // then: the handler ran once (DELIVERY_MAX_ATTEMPTS=1) and failed
    await page.locator('#executions-body tr', { hasText: 'onOrder' }).first().waitFor();
    const dead = page.locator('#deliveries-body tr[data-status="DEAD"]', { hasText: addon });
    await dead.waitFor();
    assert.match((await dead.textContent()) ?? '', /mail server down/);
    const deliveryId = (await dead.getAttribute('data-delivery'))!;

    // when: the cause is fixed and the operator clicks Retry
    await site.client.ok(ExecuteAddonFunctionDocument, { addonId: addon, function: 'fix', data: {} });
    await dead.locator('button.retry').click();

    // then: the row follows the delivery to SUCCEEDED, and the API recorded the second attempt
    await page
      .locator(`#deliveries-body tr[data-delivery="${deliveryId}"][data-status="SUCCEEDED"]`)
      .waitFor();
    assert.equal(await page.locator(`#deliveries-body tr[data-delivery="${deliveryId}"] button`).count(), 0);
    const { delivery } = await site.client.ok(DeliveryDocument, { id: deliveryId });
    assert.equal(delivery.status, 'SUCCEEDED');
    assert.deepEqual(
      delivery.attemptLog.map((a) => [a.attempt, a.status === 'SUCCEEDED']),
      [
        [1, false],
        [1, true],
      ],
    );
  });

  it('previews the installed widget in a sandboxed frame, rendered before it is scrolled into view', async () => {
    // given: a short window, the page at its top, the preview far below the fold
    await page.setViewportSize({ width: 1360, height: 500 });
    await page.evaluate('window.scrollTo(0, 0)');
    const frame = page.locator(`iframe[data-widget="${addon}/banner"]`);
    await frame.waitFor({ state: 'attached' });
    const top = (await frame.boundingBox())?.y ?? 0;
    assert.ok(top > 500, `the preview should start below the fold (top ${top})`);
    // then: its content is there without scrolling (waitFor does not scroll). Chromium loads a lazy
    // frame anyway when it is within its distance threshold, so the attribute is checked too.
    assert.equal(await frame.getAttribute('sandbox'), 'allow-scripts');
    assert.notEqual(await frame.getAttribute('loading'), 'lazy');
    await page
      .frameLocator(`iframe[data-widget="${addon}/banner"]`)
      .getByText('Hello from the preview')
      .waitFor();
    assert.equal(await page.evaluate('window.scrollY'), 0);
    await page.setViewportSize({ width: 1360, height: 1400 });
  });

  it('shows executions per second, p95 latency and errors per addon; the cache rate is for admins', async () => {
    // then: the stats refresh every 5 s; the failed handler run shows as an error of the addon
    await page.locator('#errors-body tr.has-errors', { hasText: addon }).waitFor({ timeout: 20_000 });
    assert.match((await page.locator('#m-rate').textContent()) ?? '', /^\d+\.\d\d$/);
    assert.match((await page.locator('#m-p95').textContent()) ?? '', /^\d+(\.\d+)? ms$/);
    assert.match((await page.locator('#m-errors').textContent()) ?? '', /^[1-9]\d* \(/);
    assert.match((await page.locator('#m-cache-note').textContent()) ?? '', /admin keys only/);
    assert.match((await page.locator('#m-isolates-note').textContent()) ?? '', /admin keys only/);
    // An out-of-process frame outside the viewport may not be painted yet when the page is captured.
    await page.locator('#widgets').scrollIntoViewIfNeeded();
    await page.evaluate(
      'new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)))',
    );
    mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
  });

  it('charts executions/s, p95 latency, error rate and delivery backlog per addon, live, drawn with data', async () => {
    // given: more runs, and a delivery that stays DEAD (the backlog)
    await site.client.ok(EmitEventDocument, { name: 'mail.bounced', data: {} });
    for (let i = 0; i < 3; i += 1) {
      await site.client.ok(ExecuteAddonFunctionDocument, { addonId: addon, function: 'fix', data: {} });
    }
    const chart = (id: string) => page.locator(`#charts-grid figure[data-chart="${id}"]`);
    const points = async (id: string) => Number(await chart(id).getAttribute('data-points'));
    // (waitForFunction would evaluate a string, which the page's CSP forbids)
    const waitForPoints = async (id: string, above: number) => {
      for (let waited = 0; (await points(id)) <= above; waited += 250) {
        assert.ok(waited < 30_000, `the ${id} chart never got more than ${above} points`);
        await sleep(250);
      }
    };

    // then: every chart gets points for the addon within a few refreshes (5 s slots, 5 s refresh)
    for (const id of ['executions', 'latency', 'errors', 'backlog']) await waitForPoints(id, 0);
    assert.equal(await chart('executions').locator('.u-legend', { hasText: addon }).count(), 1);

    // when: more runs later, the executions chart updates by itself
    const before = await points('executions');
    // (in the next 5 s slot, so they make a point of their own)
    await sleep(5_000 - (Date.now() % 5_000) + 100);
    for (let i = 0; i < 3; i += 1) {
      await site.client.ok(ExecuteAddonFunctionDocument, { addonId: addon, function: 'fix', data: {} });
    }
    await waitForPoints('executions', before);

    // then: the screenshot of each plot shows drawn lines (coloured pixels; axes and grid are grey)
    await page.locator('#charts').scrollIntoViewIfNeeded();
    for (const id of ['executions', 'latency', 'errors', 'backlog']) {
      const png = await chart(id).locator('canvas').screenshot();
      const coloured = await colouredPixels(page, png);
      assert.ok(coloured > 15, `the ${id} chart has nothing drawn (${coloured} coloured pixels)`);
    }
    mkdirSync(path.dirname(SCREENSHOT), { recursive: true });
    await page
      .locator('#charts')
      .screenshot({ path: path.resolve('test-artifacts', 'dashboard-charts.png') });
  });

  it('keeps the key for the browser session, and forgets it on request', async () => {
    // when
    await page.reload();
    // then: signed in again without the form
    await page.locator(`#addons-body tr[data-addon="${addon}"]`).waitFor();
    assert.equal(await page.locator('#login').isHidden(), true);

    // when
    await page.click('#forget');
    // then
    await page.locator('#login').waitFor();
    assert.equal(await page.evaluate("sessionStorage.getItem('themepress.dashboard.apiKey')"), null);
    assert.equal(await page.locator('#dashboard').isHidden(), true);
  });

  it('lets an admin pick the site, with the cache hit rate of the instance', async () => {
    // when
    await page.fill('#key-input', server.adminKey);
    await page.click('#key-form button[type="submit"]');
    // then
    await page.locator('#site-picker').waitFor();
    await page.selectOption('#site-select', site.siteId);
    await page.locator(`#addons-body tr[data-addon="${addon}"]`).waitFor();
    await page.locator('#m-cache-note', { hasText: 'this instance since start' }).waitFor();
    // and the isolates the instance keeps, with the memory each takes
    await page.locator('#m-isolates-note', { hasText: 'MB each' }).waitFor();
    assert.match((await page.locator('#m-isolates').textContent()) ?? '', /^[1-9]\d*$/);
  });

  it("reports the socket's refusal of a bad key (close 4403) instead of reconnecting", async () => {
    // when: the page's own live client connects with a key the server does not know
    const outcome = await page.evaluate(`
      import('/dashboard/assets/live-client.js').then(({ createLiveClient }) => new Promise((resolve) => {
        const statuses = [];
        createLiveClient({
          url: 'ws://' + location.host + '/graphql',
          key: 'tp_thisKeyDoesNotExistAnywhere000000',
          onStatus: (status, detail) => {
            statuses.push(status);
            if (status === 'forbidden') setTimeout(() => resolve({ statuses, code: detail.code }), 1500);
          },
        });
      }))`);
    // then: refused once, and no reconnect attempt followed
    assert.deepEqual(outcome, { statuses: ['connecting', 'forbidden'], code: 4403 });
  });

  it('after the connection drops, reconnects and catches up on the events stored meanwhile', async () => {
    // given: a second tab whose WebSocket passes through a route the test can cut
    let cut = false;
    const links: Array<{ page: WebSocketRoute; server: WebSocketRoute }> = [];
    const tab = await browser.newPage();
    const tabProblems: string[] = [];
    tab.on('pageerror', (error) => tabProblems.push(error.message));
    await tab.routeWebSocket(/\/graphql$/, (ws) => {
      if (cut) return void ws.close({ code: 1012, reason: 'test outage' });
      links.push({ page: ws, server: ws.connectToServer() });
    });
    await tab.goto(`${server.url}/dashboard`);
    await tab.fill('#key-input', site.key);
    await tab.click('#key-form button[type="submit"]');
    await tab.locator('#live-status[data-state="live"]').waitFor();

    // when: the connection drops; two events are stored while the tab cannot connect
    cut = true;
    for (const link of links) {
      await link.server.close();
      await link.page.close({ code: 1012, reason: 'test outage' });
    }
    await tab.locator('#live-status[data-state="reconnecting"]').waitFor();
    await site.client.ok(EmitEventDocument, { name: 'outage.first', data: {} });
    await site.client.ok(EmitEventDocument, { name: 'outage.second', data: {} });
    cut = false;

    // then: live again, both events listed from the stored history, and the gap is said
    await tab.locator('#live-status[data-state="live"]').waitFor({ timeout: 30_000 });
    await tab.locator('#events-list li.marker', { hasText: /Reconnected: 2 event\(s\) missed/ }).waitFor();
    for (const name of ['outage.first', 'outage.second']) {
      await tab.locator('#events-list li.event', { hasText: name }).waitFor();
    }
    assert.deepEqual(tabProblems, []);
    await tab.close();
  });

  it('raised no console error and no CSP violation on the way', async () => {
    await sleep(200);
    // The refused key's 401 is the expected answer (Chromium logs it as a console error too).
    const unexpected = problems.filter((text) => !/status of 401|^HTTP 401 .*\/graphql$/.test(text));
    assert.deepEqual(unexpected, []);
  });
});
