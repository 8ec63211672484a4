import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../support/chromium.js';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenDeveloper, givenPublished, givenSite, manifest } from '../support/fixtures.js';
import { ExecuteAddonFunctionDocument, InstallAddonDocument } from '../generated/graphql.js';

const SOURCE = `module.exports = { functions: { work: (d) => { if (d && d.spin) { for (;;) {} } return true; } } };`;

describe('dashboard: pending permissions and quarantined versions', { timeout: 120_000 }, () => {
  let server: TestServer;
  let browser: Browser;
  let page: Page;

  before(async () => {
    browser = await launchChromium();
    server = await startTestServer({ QUARANTINE_THRESHOLD: '2', QUARANTINE_BACKOFF_MS: '600000' });
    page = await browser.newPage();
    page.setDefaultTimeout(15_000);
  });
  after(async () => {
    await browser?.close();
    await server?.close();
  });

  it('shows the new permissions an upgrade must accept, and the quarantine of the site’s version, live', async () => {
    // given: 1.0.0 installed, 2.0.0 asks for more; the site's version then exhausts its CPU limit twice
    const developer = (await givenDeveloper(server.admin)).client;
    const v1 = manifest({
      configSchema: { type: 'object' },
      widgets: [],
      functions: [{ name: 'work' }],
      permissions: ['storage.read'],
      // Low, so the spins below hit it soon, but not so low that loading the module on a loaded
      // machine does (100 ms did once in a full run, refusing the publish).
      limits: { cpuTimeMs: 300 },
    });
    const name = v1.name as string;
    await givenPublished(developer, v1, SOURCE);
    await givenPublished(
      developer,
      { ...v1, version: '2.0.0', permissions: ['storage.read', 'storage.write'] },
      SOURCE,
    );
    const site = await givenSite(server.admin);
    await site.client.ok(InstallAddonDocument, { id: name, config: {}, version: '1.0.0' });
    await page.goto(`${server.url}/dashboard`);
    await page.fill('#key-input', site.key);
    await page.click('#key-form button[type="submit"]');
    const row = page.locator(`#addons-body tr[data-addon="${name}"]`);
    await row.waitFor();
    // then: the newer version and what it asks for
    assert.match(
      (await row.locator('[data-cell="latest"]').textContent()) ?? '',
      /2\.0\.0 available\s*asks for new permissions: storage\.write/,
    );
    assert.equal(await row.locator('[data-cell="state"]').textContent(), 'enabled');
    // when: the version is quarantined on this site
    for (let i = 0; i < 2; i += 1) {
      await site.client.request(ExecuteAddonFunctionDocument, {
        addonId: name,
        function: 'work',
        data: { spin: true },
      });
    }
    // then: the row says so within a refresh
    await page.locator(`#addons-body tr[data-addon="${name}"][data-quarantined]`).waitFor();
    assert.match(
      (await row.locator('[data-cell="state"]').textContent()) ?? '',
      /^quarantined \(EXECUTION_TIMEOUT\) until /,
    );
    await page.locator('#executions-body tr', { hasText: 'EXECUTION_TIMEOUT' }).first().waitFor();
  });
});
