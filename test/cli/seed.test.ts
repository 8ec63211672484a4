import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenDeveloper } from '../support/fixtures.js';
import { GraphQLClient } from '../support/graphql-client.js';
import { themepress, writeAddon } from './helpers.js';

interface SeedJson {
  site: { id: string; name: string; created: boolean };
  siteKey: { key: string; reused: boolean };
  addons: { name: string; version: string; publish: string; install: string; installedVersion: string }[];
  widgets: { addon: string; widget: string; url: string }[];
}

const EXAMPLES = fileURLToPath(new URL('../../../addons-examples', import.meta.url));
const exampleAddons = existsSync(EXAMPLES)
  ? readdirSync(EXAMPLES).filter((name) => existsSync(path.join(EXAMPLES, name, 'manifest.json')))
  : [];

/**
 * Two addons where the dependent sorts first by name, so publishing in folder order would fail:
 * `alpha-extra` depends on `zeta-base` and needs a config only its fixtures.json gives.
 */
async function givenFixtureAddons(root: string): Promise<string> {
  const dir = path.join(root, 'addons');
  await writeAddon(path.join(dir, 'zeta-base'), {
    manifest: {
      name: 'zeta-base',
      version: '1.0.0',
      category: 'ECOMMERCE',
      configSchema: { type: 'object', properties: { currency: { type: 'string', default: 'EUR' } } },
      functions: [{ name: 'price', readonly: true }],
      widgets: [{ name: 'badge', category: 'DISPLAY' }],
    },
    source: `module.exports = {
      functions: { price: (data, ctx) => ({ amount: 10, currency: ctx.config.currency }) },
      widgets: { badge: (config, context, ctx) => ({ html: ctx.html\`<b>\${ctx.config.currency}</b>\` }) },
    };`,
  });
  await writeAddon(path.join(dir, 'alpha-extra'), {
    manifest: {
      name: 'alpha-extra',
      version: '1.0.0',
      category: 'MARKETING',
      permissions: ['addons.call'],
      dependencies: { 'zeta-base': '^1.0.0' },
      configSchema: { type: 'object', required: ['label'], properties: { label: { type: 'string' } } },
      functions: [{ name: 'promo' }],
    },
    source: `module.exports = { functions: {
      promo: async (data, ctx) => ({ label: ctx.config.label, price: await ctx.addons.call('zeta-base', 'price', {}) }),
    } };`,
    fixtures: { config: { label: 'Sale' } },
  });
  return dir;
}

describe('themepress seed (npm run seed)', () => {
  let server: TestServer;
  let work: string;
  let addonsDir: string;

  before(async () => {
    server = await startTestServer();
    work = await mkdtemp(path.join(tmpdir(), 'themepress-seed-'));
    addonsDir = await givenFixtureAddons(work);
  });
  after(async () => {
    await server.close();
    await rm(work, { recursive: true, force: true });
  });

  const seed = (args: string[], env: Record<string, string> = {}) =>
    themepress(['seed', ...args], {
      cwd: work,
      env: {
        THEMEPRESS_URL: server.url,
        THEMEPRESS_API_KEY: server.adminKey,
        DATA_DIR: path.join(work, 'data'),
        ...env,
      },
    });

  it('publishes in dependency order, installs on "Demo shop" and prints the site id and key; twice', async () => {
    // when
    const first = await seed(['--dir', addonsDir, '--json']);
    const second = await seed(['--dir', addonsDir]);
    const third = await seed(['--dir', addonsDir, '--json']);

    // then: the first run did everything
    assert.equal(first.code, 0, first.stderr);
    const result = first.json<SeedJson>();
    assert.deepEqual(
      result.addons.map((a) => [a.name, a.publish, a.install, a.installedVersion]),
      [
        ['zeta-base', 'published', 'installed', '1.0.0'],
        ['alpha-extra', 'published', 'installed', '1.0.0'],
      ],
    );
    assert.equal(result.site.name, 'Demo shop');
    assert.equal(result.site.created, true);
    assert.match(first.stderr, /Publishing zeta-base 1\.0\.0…\nPublishing alpha-extra 1\.0\.0…/, 'progress');

    // and the printed key is a working key of that site, which sees a working shop
    const site = new GraphQLClient(server.url, result.siteKey.key);
    const viewer = await site.raw<{ viewer: { role: string; siteId: string } }>('{ viewer { role siteId } }');
    assert.deepEqual(viewer.data!.viewer, { role: 'site', siteId: result.site.id });
    const installed = await site.raw<{ installations: { addon: { name: string }; config: unknown }[] }>(
      '{ installations { addon { name } config } }',
    );
    assert.deepEqual(installed.data!.installations.map((i) => [i.addon.name, i.config]).sort(), [
      ['alpha-extra', { label: 'Sale' }],
      ['zeta-base', { currency: 'EUR' }],
    ]);
    const promo = await site.raw<{ executeAddonFunction: unknown }>(
      'mutation { executeAddonFunction(addonId: "alpha-extra", function: "promo", data: {}) }',
    );
    assert.deepEqual(promo.data!.executeAddonFunction, {
      label: 'Sale',
      price: { amount: 10, currency: 'EUR' },
    });
    const widget = await fetch(result.widgets[0].url);
    assert.equal(widget.status, 200);
    assert.match(((await widget.json()) as { html: string }).html, /<b>EUR<\/b>/);
    const keyFile = await stat(path.join(work, 'data', 'demo-site-key.json'));
    assert.equal(keyFile.mode & 0o777, 0o600);

    // and running it again changed nothing and printed the same site and key
    assert.equal(second.code, 0, second.stderr);
    assert.match(second.stdout, new RegExp(`site id: +${result.site.id}`));
    assert.match(second.stdout, new RegExp(`site key: +${result.siteKey.key} \\(same as last run\\)`));
    assert.equal(third.code, 0, third.stderr);
    const again = third.json<SeedJson>();
    assert.deepEqual(
      again.addons.map((a) => [a.name, a.publish, a.install]),
      [
        ['zeta-base', 'already published', 'already installed'],
        ['alpha-extra', 'already published', 'already installed'],
      ],
    );
    assert.deepEqual(
      [again.site.id, again.site.created, again.siteKey],
      [
        result.site.id,
        false,
        {
          key: result.siteKey.key,
          reused: true,
        },
      ],
    );
    const sites = await server.admin.raw<{ sites: { name: string }[] }>('{ sites { name } }');
    assert.equal(sites.data!.sites.filter((s) => s.name === 'Demo shop').length, 1);
  });

  it('refuses a key that is not an admin key (exit 2) and an invalid addon folder (exit 1)', async () => {
    // given
    const developer = await givenDeveloper(server.admin);
    const broken = path.join(work, 'broken');
    await writeAddon(path.join(broken, 'bad'), {
      manifest: { name: 'bad', version: 'one', category: 'UTILITIES' },
      source: 'module.exports = {};',
    });

    // when
    const asDeveloper = await seed(['--dir', addonsDir], { THEMEPRESS_API_KEY: developer.key });
    const invalid = await seed(['--dir', broken]);

    // then
    assert.equal(asDeveloper.code, 2);
    assert.match(asDeveloper.stderr, /The seed needs an admin key .* is a developer key/);
    assert.equal(invalid.code, 1);
    assert.match(invalid.stderr, /bad is not a valid addon; nothing was seeded/);
    assert.match(invalid.stderr, /\n {2}manifest\.version: "one" is not a valid semantic version/);
  });

  it('seeds the example addons of addons-examples/ (the default folder), idempotently', async (t) => {
    if (exampleAddons.length === 0) return t.skip('addons-examples/ holds no addon folders yet');
    // when: no --dir, as `npm run seed` runs it
    const first = await seed(['--json']);
    const second = await seed(['--json']);

    // then
    assert.equal(first.code, 0, first.stderr);
    const result = first.json<SeedJson>();
    assert.deepEqual(result.addons.map((a) => a.name).sort(), [...exampleAddons].sort());
    for (const addon of result.addons) assert.ok(addon.installedVersion, `${addon.name} installed`);
    assert.equal(second.code, 0, second.stderr);
    for (const addon of second.json<SeedJson>().addons) {
      assert.deepEqual(
        [addon.publish, addon.install],
        ['already published', 'already installed'],
        addon.name,
      );
    }
    const widget = await fetch(result.widgets.find((w) => w.addon === result.addons[0].name)!.url);
    assert.equal(widget.status, 200, await widget.clone().text());
  });
});
