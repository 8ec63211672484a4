import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenDeveloper, givenPublished, givenSite, manifest } from '../support/fixtures.js';
import type { GraphQLClient } from '../support/graphql-client.js';
import {
  ChangeAddonVersionAcceptingDocument,
  InstallAddonDocument,
  InstallationSafetyDocument,
} from '../generated/graphql.js';

describe('consent for new permissions on upgrade and rollback', () => {
  let server: TestServer;
  let developer: GraphQLClient;

  before(async () => {
    server = await startTestServer();
    developer = (await givenDeveloper(server.admin)).client;
  });
  after(() => server.close());

  /** An addon at 0.9.0 (storage.read, http.fetch), 1.0.0 (storage.read, installed) and 2.0.0 (adds storage.write, events.emit). */
  async function givenAddonWithGrowingPermissions() {
    // Versions are published in ascending order.
    const v1 = manifest({ version: '1.0.0', permissions: ['storage.read'] });
    const name = v1.name as string;
    await givenPublished(developer, {
      ...v1,
      version: '0.9.0',
      permissions: ['storage.read', 'http.fetch'],
      http: { allow: ['api.example.com'] },
    });
    await givenPublished(developer, v1);
    await givenPublished(developer, {
      ...v1,
      version: '2.0.0',
      permissions: ['storage.read', 'storage.write', 'events.emit'],
      events: { emits: ['thing.done'] },
    });
    const site = await givenSite(server.admin);
    await site.client.ok(InstallAddonDocument, { id: name, config: {}, version: '1.0.0' });
    const installation = async () =>
      (await site.client.ok(InstallationSafetyDocument, {})).installations.find(
        (i) => i.addon.name === name,
      )!;
    return { name, site, installation };
  }

  it('refuses an upgrade that asks for new permissions without consent, naming them, and leaves the installation as it was', async () => {
    // given
    const { name, site, installation } = await givenAddonWithGrowingPermissions();
    const before = await installation();
    // when
    const refused = await site.client.request(ChangeAddonVersionAcceptingDocument, {
      id: name,
      version: '2.0.0',
    });
    // then
    const error = refused.errors?.[0];
    assert.equal(error?.extensions?.code, 'PERMISSIONS_NOT_ACCEPTED');
    assert.match(error!.message, /events\.emit, storage\.write/);
    assert.deepEqual(error!.extensions?.newPermissions, ['events.emit', 'storage.write']);
    assert.equal(error!.extensions?.field, 'acceptPermissions');
    assert.deepEqual(before.grantedPermissions, ['storage.read']);
    assert.deepEqual(before.pendingPermissions, ['events.emit', 'storage.write']);
    const after = await installation();
    assert.equal(after.version.version, '1.0.0');
    assert.deepEqual(after.grantedPermissions, ['storage.read']);
  });

  it('refuses a list that is not exactly the new permissions (one missing, one extra), then upgrades with the exact list and grants it', async () => {
    // given
    const { name, site, installation } = await givenAddonWithGrowingPermissions();
    // when
    const missing = await site.client.request(ChangeAddonVersionAcceptingDocument, {
      id: name,
      version: '2.0.0',
      acceptPermissions: ['storage.write'],
    });
    const extra = await site.client.request(ChangeAddonVersionAcceptingDocument, {
      id: name,
      version: '2.0.0',
      acceptPermissions: ['storage.write', 'events.emit', 'http.fetch'],
    });
    const accepted = await site.client.ok(ChangeAddonVersionAcceptingDocument, {
      id: name,
      version: '2.0.0',
      acceptPermissions: ['storage.write', 'events.emit'],
    });
    // then
    for (const refused of [missing, extra]) {
      assert.equal(refused.errors?.[0].extensions?.code, 'PERMISSIONS_NOT_ACCEPTED');
      assert.deepEqual(refused.errors?.[0].extensions?.newPermissions, ['events.emit', 'storage.write']);
    }
    assert.match(missing.errors![0].message, /it listed: storage\.write/);
    assert.equal(accepted.changeAddonVersion.version.version, '2.0.0');
    assert.deepEqual([...accepted.changeAddonVersion.grantedPermissions].sort(), [
      'events.emit',
      'storage.read',
      'storage.write',
    ]);
    assert.deepEqual(accepted.changeAddonVersion.pendingPermissions, []);
    assert.deepEqual((await installation()).pendingPermissions, []);
  });

  it('asks nothing for a rollback to fewer permissions nor for moving forward again, but refuses a rollback to a version asking for one never granted', async () => {
    // given: upgraded to 2.0.0 with consent
    const { name, site } = await givenAddonWithGrowingPermissions();
    await site.client.ok(ChangeAddonVersionAcceptingDocument, {
      id: name,
      version: '2.0.0',
      acceptPermissions: ['events.emit', 'storage.write'],
    });
    // when
    const rolledBack = await site.client.ok(ChangeAddonVersionAcceptingDocument, {
      id: name,
      version: '1.0.0',
    });
    const forwardAgain = await site.client.ok(ChangeAddonVersionAcceptingDocument, {
      id: name,
      version: '2.0.0',
    });
    const olderWithFetch = await site.client.request(ChangeAddonVersionAcceptingDocument, {
      id: name,
      version: '0.9.0',
    });
    // then
    assert.equal(rolledBack.changeAddonVersion.version.version, '1.0.0');
    assert.deepEqual([...rolledBack.changeAddonVersion.grantedPermissions].sort(), [
      'events.emit',
      'storage.read',
      'storage.write',
    ]);
    assert.equal(forwardAgain.changeAddonVersion.version.version, '2.0.0');
    assert.equal(olderWithFetch.errors?.[0].extensions?.code, 'PERMISSIONS_NOT_ACCEPTED');
    assert.deepEqual(olderWithFetch.errors?.[0].extensions?.newPermissions, ['http.fetch']);
    assert.match(olderWithFetch.errors![0].message, /0\.9\.0 asks for permissions .*: http\.fetch/);
  });

  it('refuses accepting permissions when the version asks for no new one, naming the field', async () => {
    // given
    const { name, site } = await givenAddonWithGrowingPermissions();
    await site.client.ok(ChangeAddonVersionAcceptingDocument, {
      id: name,
      version: '2.0.0',
      acceptPermissions: ['events.emit', 'storage.write'],
    });
    // when: 1.0.0 asks for nothing new
    const refused = await site.client.request(ChangeAddonVersionAcceptingDocument, {
      id: name,
      version: '1.0.0',
      acceptPermissions: ['storage.read'],
    });
    const blank = await site.client.request(ChangeAddonVersionAcceptingDocument, {
      id: name,
      version: '1.0.0',
      acceptPermissions: [' '],
    });
    // then
    assert.equal(refused.errors?.[0].extensions?.code, 'BAD_USER_INPUT');
    assert.deepEqual(
      (refused.errors?.[0].extensions?.fields as { field: string }[]).map((f) => f.field),
      ['acceptPermissions'],
    );
    assert.equal(blank.errors?.[0].extensions?.code, 'BAD_USER_INPUT');
    assert.deepEqual(
      (blank.errors?.[0].extensions?.fields as { field: string }[]).map((f) => f.field),
      ['acceptPermissions[0]'],
    );
  });

  it('lets an admin upgrade another site with consent, and shows every site its own pending permissions', async () => {
    // given: the same addon on two sites, one upgraded by an admin
    const { name, site } = await givenAddonWithGrowingPermissions();
    const other = await givenSite(server.admin);
    await other.client.ok(InstallAddonDocument, { id: name, config: {}, version: '1.0.0' });
    // when
    const byAdmin = await server.admin.ok(ChangeAddonVersionAcceptingDocument, {
      id: name,
      version: '2.0.0',
      siteId: site.siteId,
      acceptPermissions: ['events.emit', 'storage.write'],
    });
    // then
    assert.equal(byAdmin.changeAddonVersion.version.version, '2.0.0');
    const otherView = (await other.client.ok(InstallationSafetyDocument, {})).installations.find(
      (i) => i.addon.name === name,
    )!;
    assert.equal(otherView.version.version, '1.0.0');
    assert.deepEqual(otherView.pendingPermissions, ['events.emit', 'storage.write']);
  });
});
