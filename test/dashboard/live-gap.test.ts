import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { generateApiKey } from '../../src/auth/api-key.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';
import { startOwnRedis, type OwnRedis } from '../support/own-redis.js';
import { launchChromium } from '../support/chromium.js';
import { givenDeveloper, givenInstalledAddon } from '../support/fixtures.js';
import { EmitEventDocument } from '../generated/graphql.js';
import { startTestServerOn, type TestServer } from '../events/test-instance.js';

const SOURCE = `module.exports = { handlers: { onOrder: async () => true } };`;

describe('dashboard across a Redis outage', { timeout: 120_000 }, () => {
  let redis: OwnRedis;
  let database: TestDatabase;
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  let site: Awaited<ReturnType<typeof givenInstalledAddon>>['site'];
  const problems: string[] = [];

  before(async () => {
    redis = await startOwnRedis();
    database = await createTestDatabase();
    server = await startTestServerOn(database.url, generateApiKey(), {
      REDIS_URL: redis.url,
      REDIS_KEY_PREFIX: 'dashboard-gap:',
      DELIVERY_POLL_MS: '100',
    });
    const developer = (await givenDeveloper(server.admin)).client;
    site = (
      await givenInstalledAddon(
        server.admin,
        developer,
        { events: { handles: { 'order.created': 'onOrder' } } },
        SOURCE,
      )
    ).site;
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1360, height: 1400 } });
    page.setDefaultTimeout(20_000);
    page.on('pageerror', (error) => problems.push(error.message));
  });
  after(async () => {
    await browser?.close();
    await server?.close();
    await database?.drop();
    await redis?.stop();
  });

  it('shows when the live deliveries and executions stop, keeps events coming, and reloads both once Redis is back', async () => {
    // given: the dashboard, live, with the site key
    await page.goto(`${server.url}/dashboard`);
    await page.fill('#key-input', site.key);
    await page.click('#key-form button[type="submit"]');
    await page.locator('#live-status[data-state="live"]').waitFor();
    for (let attempt = 0; ; attempt += 1) {
      await site.client.ok(EmitEventDocument, { name: 'gap.probe', data: { attempt } });
      const seen = await page
        .locator('#events-list li.event', { hasText: 'gap.probe' })
        .first()
        .waitFor({ timeout: 1_000 })
        .then(() => true)
        .catch(() => false);
      if (seen) break;
      assert.ok(attempt < 20, 'the live event stream never showed the probe event');
    }

    // when: Redis goes away, and an order is stored (and delivered) meanwhile
    await redis.kill();
    // then: the gap is shown; the event still arrives live (read from the outbox)
    await page
      .locator('#events-list li.marker', {
        hasText: /Deliveries: live updates interrupted at .* lost its connection to Redis/,
      })
      .waitFor();
    await page
      .locator('#events-list li.marker', { hasText: /Execution log: live updates interrupted/ })
      .waitFor();
    await site.client.ok(EmitEventDocument, { name: 'order.created', data: { during: 'outage' } });
    await page.locator('#events-list li.event', { hasText: 'order.created' }).waitFor();

    // when: Redis is back
    await redis.restart();
    // then: both feeds hold again and the delivery made during the outage is listed
    await page
      .locator('#events-list li.marker', { hasText: /Deliveries: live again at .*; the list reloaded/ })
      .waitFor({ timeout: 30_000 });
    await page.locator('#events-list li.marker', { hasText: /Execution log: live again at/ }).waitFor();
    await page.locator('#deliveries-body tr', { hasText: 'order.created' }).waitFor();
    assert.deepEqual(problems, []);
  });
});
