import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenDeveloper, givenPublished, givenSite, manifest } from '../support/fixtures.js';
import {
  ChangeAddonVersionDocument,
  InstallAddonDocument,
  InstallationsDocument,
  SetAddonEnabledDocument,
  UninstallAddonDocument,
  UpdateAddonConfigDocument,
} from '../generated/graphql.js';
import type { GraphQLClient } from '../support/graphql-client.js';

describe('installations', () => {
  let server: TestServer;
  let developer: GraphQLClient;

  before(async () => {
    server = await startTestServer();
    developer = (await givenDeveloper(server.admin)).client;
  });
  after(() => server.close());

  it('installs the latest version with config defaults applied, and lists it for the site only', async () => {
    // given
    const m = manifest();
    await givenPublished(developer, m);
    const site = await givenSite(server.admin);
    const otherSite = await givenSite(server.admin);
    // when
    const { installAddon } = await site.client.ok(InstallAddonDocument, { id: m.name as string, config: {} });
    const mine = await site.client.ok(InstallationsDocument, {});
    const theirs = await otherSite.client.ok(InstallationsDocument, {});
    // then
    assert.equal(installAddon.success, true);
    assert.deepEqual(installAddon.installation.config, { greeting: 'hello' });
    assert.equal(installAddon.installation.version.version, '1.0.0');
    assert.deepEqual(
      mine.installations.map((i) => [i.addon.name, i.site.id]),
      [[m.name, site.siteId]],
    );
    assert.deepEqual(theirs.installations, []);
  });

  it('rejects a config that does not match the schema, naming the field, and installs nothing', async () => {
    // given
    const m = manifest();
    await givenPublished(developer, m);
    const site = await givenSite(server.admin);
    // when
    const result = await site.client.request(InstallAddonDocument, {
      id: m.name as string,
      config: { greeting: 42, extra: true },
    });
    // then
    const error = result.errors?.[0];
    assert.equal(error?.extensions?.code, 'BAD_USER_INPUT');
    assert.deepEqual((error?.extensions?.fields as { field: string }[]).map((f) => f.field).sort(), [
      'config.extra',
      'config.greeting',
    ]);
    assert.deepEqual((await site.client.ok(InstallationsDocument, {})).installations, []);
  });

  it('refuses a second install of the same addon with CONFLICT', async () => {
    const m = manifest();
    await givenPublished(developer, m);
    const site = await givenSite(server.admin);
    await site.client.ok(InstallAddonDocument, { id: m.name as string, config: {} });
    const again = await site.client.request(InstallAddonDocument, { id: m.name as string, config: {} });
    assert.equal(again.errors?.[0].extensions?.code, 'CONFLICT');
  });

  it('requires dependencies installed at a satisfying version, and refuses to uninstall what others need', async () => {
    // given: inventory 1.0.0 and 2.0.0; payment needs inventory ^1.0.0
    const inventory = manifest({ version: '1.0.0' });
    await givenPublished(developer, inventory);
    await givenPublished(developer, { ...inventory, version: '2.0.0' });
    const payment = manifest({ dependencies: { [inventory.name as string]: '^1.0.0' } });
    await givenPublished(developer, payment);
    const site = await givenSite(server.admin);

    // when: payment first, then with inventory 2.0.0 installed, then with 1.0.0
    const missing = await site.client.request(InstallAddonDocument, {
      id: payment.name as string,
      config: {},
    });
    await site.client.ok(InstallAddonDocument, { id: inventory.name as string, config: {} });
    const wrongVersion = await site.client.request(InstallAddonDocument, {
      id: payment.name as string,
      config: {},
    });
    await site.client.ok(ChangeAddonVersionDocument, { id: inventory.name as string, version: '1.0.0' });
    const installed = await site.client.request(InstallAddonDocument, {
      id: payment.name as string,
      config: {},
    });
    const blockedUninstall = await site.client.request(UninstallAddonDocument, {
      id: inventory.name as string,
    });
    const blockedUpgrade = await site.client.request(ChangeAddonVersionDocument, {
      id: inventory.name as string,
      version: '2.0.0',
    });

    // then
    assert.equal(missing.errors?.[0].extensions?.code, 'BAD_USER_INPUT');
    assert.match(missing.errors![0].message, new RegExp(`${inventory.name} \\^1\\.0\\.0 is not installed`));
    assert.match(wrongVersion.errors![0].message, /2\.0\.0 is installed; \^1\.0\.0 is required/);
    assert.equal(installed.errors, undefined);
    assert.equal(blockedUninstall.errors?.[0].extensions?.code, 'CONFLICT');
    assert.match(blockedUninstall.errors![0].message, new RegExp(`${payment.name} depends on it`));
    assert.equal(blockedUpgrade.errors?.[0].extensions?.code, 'CONFLICT');
    assert.match(blockedUpgrade.errors![0].message, /requires \^1\.0\.0/);

    // and after payment goes, inventory may go too
    await site.client.ok(UninstallAddonDocument, { id: payment.name as string });
    await site.client.ok(UninstallAddonDocument, { id: inventory.name as string });
    assert.deepEqual((await site.client.ok(InstallationsDocument, {})).installations, []);
  });

  it('upgrades and rolls back a pinned version, re-validating the config', async () => {
    // given: 2.0.0 adds a required config field with a default
    const v1 = manifest({ version: '1.0.0' });
    await givenPublished(developer, v1);
    const v2 = {
      ...v1,
      version: '2.0.0',
      configSchema: {
        type: 'object',
        properties: {
          greeting: { type: 'string', default: 'hello' },
          color: { type: 'string', default: 'red' },
        },
        required: ['color'],
      },
    };
    await givenPublished(developer, v2);
    const site = await givenSite(server.admin);
    await site.client.ok(InstallAddonDocument, { id: v1.name as string, config: {}, version: '1.0.0' });
    // when
    const upgraded = await site.client.ok(ChangeAddonVersionDocument, {
      id: v1.name as string,
      version: '2.0.0',
    });
    const rolledBack = await site.client.ok(ChangeAddonVersionDocument, {
      id: v1.name as string,
      version: '1.0.0',
    });
    const unknown = await site.client.request(ChangeAddonVersionDocument, {
      id: v1.name as string,
      version: '9.9.9',
    });
    // then
    assert.equal(upgraded.changeAddonVersion.version.version, '2.0.0');
    assert.deepEqual(upgraded.changeAddonVersion.config, { greeting: 'hello', color: 'red' });
    assert.equal(rolledBack.changeAddonVersion.version.version, '1.0.0');
    // 1.0.0 forbids fields it does not declare, so the rollback drops the one 2.0.0 added.
    assert.deepEqual(rolledBack.changeAddonVersion.config, { greeting: 'hello' });
    assert.equal(unknown.errors?.[0].extensions?.code, 'NOT_FOUND');
  });

  it('updates config and toggles enabled', async () => {
    const m = manifest();
    await givenPublished(developer, m);
    const site = await givenSite(server.admin);
    await site.client.ok(InstallAddonDocument, { id: m.name as string, config: {} });
    const updated = await site.client.ok(UpdateAddonConfigDocument, {
      id: m.name as string,
      config: { greeting: 'hi' },
    });
    const invalid = await site.client.request(UpdateAddonConfigDocument, {
      id: m.name as string,
      config: [],
    });
    const disabled = await site.client.ok(SetAddonEnabledDocument, { id: m.name as string, enabled: false });
    const [installation] = (await site.client.ok(InstallationsDocument, {})).installations;
    assert.equal(updated.updateAddonConfig, true);
    assert.equal(invalid.errors?.[0].extensions?.code, 'BAD_USER_INPUT');
    assert.equal(disabled.setAddonEnabled.enabled, false);
    assert.deepEqual(installation.config, { greeting: 'hi' });
    assert.equal(installation.enabled, false);
  });

  it('keeps sites apart: a site key cannot act on another site; admins must name the site', async () => {
    const m = manifest();
    await givenPublished(developer, m);
    const site = await givenSite(server.admin);
    const other = await givenSite(server.admin);
    const crossSite = await site.client.request(InstallAddonDocument, {
      id: m.name as string,
      config: {},
      siteId: other.siteId,
    });
    const adminWithoutSite = await server.admin.request(InstallAddonDocument, {
      id: m.name as string,
      config: {},
    });
    const adminForSite = await server.admin.request(InstallAddonDocument, {
      id: m.name as string,
      config: {},
      siteId: other.siteId,
    });
    const byDeveloper = await developer.request(InstallationsDocument, {});
    const anonymous = await server.anonymous.request(InstallationsDocument, {});
    assert.equal(crossSite.errors?.[0].extensions?.code, 'FORBIDDEN');
    assert.equal(adminWithoutSite.errors?.[0].extensions?.code, 'BAD_USER_INPUT');
    assert.match(adminWithoutSite.errors![0].message, /siteId/);
    assert.equal(adminForSite.errors, undefined);
    assert.equal(byDeveloper.errors?.[0].extensions?.code, 'FORBIDDEN');
    assert.equal(anonymous.errors?.[0].extensions?.code, 'UNAUTHENTICATED');
    assert.equal((await other.client.ok(InstallationsDocument, {})).installations.length, 1);
  });

  it('answers NOT_FOUND for an unknown addon or installation', async () => {
    const site = await givenSite(server.admin);
    const install = await site.client.request(InstallAddonDocument, { id: 'no-such-addon', config: {} });
    const m = manifest();
    await givenPublished(developer, m);
    const update = await site.client.request(UpdateAddonConfigDocument, { id: m.name as string, config: {} });
    assert.equal(install.errors?.[0].extensions?.code, 'NOT_FOUND');
    assert.match(install.errors![0].message, /no-such-addon/);
    assert.equal(update.errors?.[0].extensions?.code, 'NOT_FOUND');
  });
});
