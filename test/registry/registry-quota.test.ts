import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenDeveloper, givenSite, manifest, sourceFor } from '../support/fixtures.js';
import type { GraphQLClient } from '../support/graphql-client.js';
import {
  AddonByNameDocument,
  DeleteAddonVersionDocument,
  InstallAddonDocument,
  InstallationsDocument,
  RegisterAddonDocument,
  RegistryUsageDocument,
  UninstallAddonDocument,
} from '../generated/graphql.js';

/** A version of `m` whose source is padded to about `bytes` with a comment. */
function paddedVersion(m: Record<string, unknown>, bytes: number) {
  const source = sourceFor(m);
  return { manifest: m, source: `${source}\n// ${'x'.repeat(Math.max(0, bytes - source.length))}` };
}

describe('the registry keeps a bounded amount per developer and per addon, and a site a bounded number of installations', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer({
      REGISTRY_MAX_BYTES_PER_DEVELOPER: '12000',
      REGISTRY_MAX_VERSIONS_PER_ADDON: '4',
      REGISTRY_MAX_ADDONS_PER_DEVELOPER: '3',
      INSTALLATIONS_MAX_PER_SITE: '2',
    });
  });
  after(() => server.close());

  const publish = (client: GraphQLClient, m: Record<string, unknown>, bytes: number) =>
    client.request(RegisterAddonDocument, { input: paddedVersion(m, bytes) });

  it("refuses a developer's version past its bytes with STORAGE_QUOTA_EXCEEDED, storing nothing, while another developer publishes", async () => {
    // given: a developer whose two versions (4,400 bytes of source and a manifest each) take most
    // of its 12,000 bytes
    const developer = (await givenDeveloper(server.admin)).client;
    const m = manifest();
    assert.equal((await publish(developer, m, 4400)).errors, undefined);
    assert.equal((await publish(developer, { ...m, version: '1.0.1' }, 4400)).errors, undefined);

    // when: it publishes a third, over GraphQL and over REST
    const refused = await publish(developer, { ...m, version: '1.0.2' }, 5000);
    const rest = await fetch(`${server.url}/api/addons/register`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${developer.key}` },
      body: JSON.stringify({ ...m, version: '1.0.2', source: paddedVersion(m, 5000).source }),
    });

    // then: both are refused with the quota named, and the addon still has its two versions
    assert.equal(
      refused.errors?.[0]?.extensions?.code,
      'STORAGE_QUOTA_EXCEEDED',
      JSON.stringify(refused.errors),
    );
    assert.match(refused.errors?.[0]?.message ?? '', /of the 12000 bytes .*REGISTRY_MAX_BYTES_PER_DEVELOPER/);
    assert.equal(rest.status, 507);
    assert.equal(((await rest.json()) as { error: { code: string } }).error.code, 'STORAGE_QUOTA_EXCEEDED');
    const stored = await server.admin.ok(AddonByNameDocument, { name: m.name as string });
    assert.equal(stored.addon?.version, '1.0.1');

    // and a smaller version still fits what is left
    assert.equal((await publish(developer, { ...m, version: '1.0.2' }, 500)).errors, undefined);

    // and another developer's publishes are its own
    const other = (await givenDeveloper(server.admin)).client;
    assert.equal((await publish(other, manifest(), 5000)).errors, undefined);

    // and an admin may publish past the owner's quota (counted, not refused)
    assert.equal((await publish(server.admin, { ...m, version: '1.0.3' }, 5000)).errors, undefined);
  });

  it('refuses an addon its versions past REGISTRY_MAX_VERSIONS_PER_ADDON', async () => {
    // given: an addon with four versions
    const developer = (await givenDeveloper(server.admin)).client;
    const m = manifest();
    for (const version of ['1.0.0', '1.0.1', '1.0.2', '1.0.3'])
      assert.equal((await publish(developer, { ...m, version }, 100)).errors, undefined);

    // when: a fifth is published
    const refused = await publish(developer, { ...m, version: '1.0.4' }, 100);

    // then: it is refused, naming the setting
    assert.equal(refused.errors?.[0]?.extensions?.code, 'STORAGE_QUOTA_EXCEEDED');
    assert.match(
      refused.errors?.[0]?.message ?? '',
      /has 4 published versions.*REGISTRY_MAX_VERSIONS_PER_ADDON/,
    );
  });

  it('refuses a developer its addons past REGISTRY_MAX_ADDONS_PER_DEVELOPER, and new versions go on', async () => {
    // given: a developer with three addons
    const developer = (await givenDeveloper(server.admin)).client;
    const owned = [manifest(), manifest(), manifest()];
    for (const m of owned) assert.equal((await publish(developer, m, 100)).errors, undefined);

    // when: it publishes a fourth addon, and a new version of its first
    const refused = await publish(developer, manifest(), 100);
    const newVersion = await publish(developer, { ...owned[0], version: '1.1.0' }, 100);

    // then: the new addon is refused, naming the setting; the version is published
    assert.equal(refused.errors?.[0]?.extensions?.code, 'STORAGE_QUOTA_EXCEEDED');
    assert.match(refused.errors?.[0]?.message ?? '', /owns 3 addons.*REGISTRY_MAX_ADDONS_PER_DEVELOPER/);
    assert.equal(newVersion.errors, undefined);
  });

  it('refuses a site its installations past INSTALLATIONS_MAX_PER_SITE until it uninstalls one, and only that site', async () => {
    // given: three published addons and a site with two of them installed
    const developer = (await givenDeveloper(server.admin)).client;
    const names = [manifest(), manifest(), manifest()].map((m) => m.name as string);
    for (const name of names)
      assert.equal((await publish(developer, manifest({ name }), 100)).errors, undefined);
    const site = await givenSite(server.admin);
    for (const name of names.slice(0, 2))
      await site.client.ok(InstallAddonDocument, { id: name, config: {} });

    // when: it installs the third
    const refused = await site.client.request(InstallAddonDocument, { id: names[2], config: {} });

    // then: refused, naming the setting; another site installs it; after an uninstall, it fits
    assert.equal(refused.errors?.[0]?.extensions?.code, 'STORAGE_QUOTA_EXCEEDED');
    assert.match(refused.errors?.[0]?.message ?? '', /has 2 addons installed.*INSTALLATIONS_MAX_PER_SITE/);
    const other = await givenSite(server.admin);
    await other.client.ok(InstallAddonDocument, { id: names[2], config: {} });
    await site.client.ok(UninstallAddonDocument, { id: names[0] });
    await site.client.ok(InstallAddonDocument, { id: names[2], config: {} });
  });

  it('gives a deleted version its bytes back, and keeps the latest, an installed version and the only one a dependent needs', async () => {
    // given: a developer whose two versions leave too little for a third
    const developer = (await givenDeveloper(server.admin)).client;
    const m = manifest();
    const name = m.name as string;
    assert.equal((await publish(developer, m, 4400)).errors, undefined);
    assert.equal((await publish(developer, { ...m, version: '1.0.1' }, 4400)).errors, undefined);
    const full = await publish(developer, { ...m, version: '1.0.2' }, 5000);
    assert.equal(full.errors?.[0]?.extensions?.code, 'STORAGE_QUOTA_EXCEEDED');
    const remove = (client: GraphQLClient, version: string) =>
      client.request(DeleteAddonVersionDocument, { id: name, version });
    const codeOf = (result: Awaited<ReturnType<typeof remove>>) => result.errors?.[0]?.extensions?.code;

    // when: it deletes its first version, which no site installed
    const deleted = await remove(developer, '1.0.0');

    // then: the third fits what was given back
    assert.deepEqual(deleted.data, { deleteAddonVersion: true });
    assert.equal((await publish(developer, { ...m, version: '1.0.2' }, 5000)).errors, undefined);

    // and the latest version stays
    const latest = await remove(developer, '1.0.2');
    assert.equal(codeOf(latest), 'CONFLICT');
    assert.match(latest.errors?.[0]?.message ?? '', /is the latest version/);

    // and a version a site has installed stays until the site moves off it
    const site = await givenSite(server.admin);
    await site.client.ok(InstallAddonDocument, { id: name, version: '1.0.1', config: {} });
    const installed = await remove(developer, '1.0.1');
    assert.equal(codeOf(installed), 'CONFLICT');
    assert.match(installed.errors?.[0]?.message ?? '', /installed on 1 site;/);
    await site.client.ok(UninstallAddonDocument, { id: name });

    // and so does the only version satisfying another developer's dependency
    const other = (await givenDeveloper(server.admin)).client;
    const dependent = manifest({ dependencies: { [name]: '~1.0.1 <1.0.2' } });
    assert.equal((await publish(other, dependent, 100)).errors, undefined);
    const needed = await remove(developer, '1.0.1');
    assert.equal(codeOf(needed), 'CONFLICT');
    assert.match(
      needed.errors?.[0]?.message ?? '',
      new RegExp(`only version satisfying .*"${dependent.name}"`),
    );

    // and only the owner (or an admin) deletes, a version that exists, named as one
    assert.equal(codeOf(await remove(other, '1.0.1')), 'FORBIDDEN');
    assert.equal(codeOf(await remove(site.client, '1.0.1')), 'FORBIDDEN');
    assert.equal(codeOf(await remove(developer, '9.9.9')), 'NOT_FOUND');
    const malformed = await remove(developer, 'latest');
    assert.equal(codeOf(malformed), 'BAD_USER_INPUT');
    assert.match(JSON.stringify(malformed.errors?.[0]?.extensions), /"field":"version"/);
    const stored = await server.admin.ok(AddonByNameDocument, { name });
    assert.deepEqual(
      stored.addon?.versions.map((v) => v.version),
      ['1.0.2', '1.0.1'],
    );
  });

  /** An addon whose install hook spins for `ctx.config.ms` of CPU. */
  const SLOW_INSTALL = `module.exports = { hooks: { install: async (ctx) => {
    const until = Date.now() + ctx.config.ms;
    while (Date.now() < until) {}
  } } };`;
  const slowInstalling = () =>
    manifest({
      configSchema: { type: 'object', properties: { ms: { type: 'integer' } } },
      widgets: [],
      functions: [],
      limits: { timeoutMs: 10_000, cpuTimeMs: 10_000 },
    });

  it('counts installs racing for the last place in turn: one is refused, and the site keeps its bound', async () => {
    // given: a site with one of its two places taken, and two addons whose install hooks take a while
    const developer = (await givenDeveloper(server.admin)).client;
    const [first, a, b] = [manifest(), slowInstalling(), slowInstalling()];
    assert.equal((await publish(developer, first, 100)).errors, undefined);
    for (const m of [a, b])
      assert.equal(
        (await developer.request(RegisterAddonDocument, { input: { manifest: m, source: SLOW_INSTALL } }))
          .errors,
        undefined,
      );
    const site = await givenSite(server.admin);
    await site.client.ok(InstallAddonDocument, { id: first.name as string, config: {} });

    // when: both install at once, each hook running while the other's does
    const results = await Promise.all(
      [a, b].map((m) =>
        site.client.request(InstallAddonDocument, { id: m.name as string, config: { ms: 300 } }),
      ),
    );

    // then: one is installed, the other refused naming the setting, and the site has two
    const codes = results.map((r) => r.errors?.[0]?.extensions?.code ?? 'OK').sort();
    assert.deepEqual(codes, ['OK', 'STORAGE_QUOTA_EXCEEDED'], JSON.stringify(results));
    assert.equal((await site.client.ok(InstallationsDocument, {})).installations.length, 2);
  });

  it("does not hold a site's other installs while one addon's install hook runs", async () => {
    // given: an addon whose install hook runs for 2.5 s, and one without a hook
    const developer = (await givenDeveloper(server.admin)).client;
    const [slow, quick] = [slowInstalling(), manifest()];
    assert.equal(
      (await developer.request(RegisterAddonDocument, { input: { manifest: slow, source: SLOW_INSTALL } }))
        .errors,
      undefined,
    );
    assert.equal((await publish(developer, quick, 100)).errors, undefined);
    const site = await givenSite(server.admin);

    // when: the slow one starts installing, then the quick one
    const finished: string[] = [];
    const slowInstall = site.client
      .ok(InstallAddonDocument, { id: slow.name as string, config: { ms: 2500 } })
      .then(() => finished.push('slow'));
    await sleep(500);
    await site.client.ok(InstallAddonDocument, { id: quick.name as string, config: {} });
    finished.push('quick');
    await slowInstall;

    // then: the quick one did not wait for the slow one's hook
    assert.deepEqual(finished, ['quick', 'slow']);
  });

  it('tells a developer what its addons take of the registry, and an admin any developer', async () => {
    // given: a developer with two versions of one addon
    const developer = (await givenDeveloper(server.admin)).client;
    const m = manifest();
    assert.equal((await publish(developer, m, 3000)).errors, undefined);
    assert.equal((await publish(developer, { ...m, version: '1.0.1' }, 1000)).errors, undefined);

    // when: it reads its usage, deletes the first version and reads again
    const before = (await developer.ok(RegistryUsageDocument, {})).registryUsage;
    await developer.ok(DeleteAddonVersionDocument, { id: m.name as string, version: '1.0.0' });
    const after = (await developer.ok(RegistryUsageDocument, {})).registryUsage;

    // then: it sees its bytes and addons against the bounds, the deleted version's bytes given back
    assert.deepEqual(
      { ...before, storedBytes: undefined },
      {
        developerId: before.developerId,
        storedBytes: undefined,
        maxBytes: 12000,
        addons: 1,
        maxAddons: 3,
        maxVersionsPerAddon: 4,
      },
    );
    assert.ok(before.storedBytes > 4000, String(before.storedBytes));
    const freed = before.storedBytes - after.storedBytes;
    assert.ok(freed > 3000 && freed < before.storedBytes - 1000, `freed ${freed} of ${before.storedBytes}`);

    // and an admin reads it by id; other callers cannot
    const byAdmin = await server.admin.ok(RegistryUsageDocument, { developerId: before.developerId });
    assert.equal(byAdmin.registryUsage.storedBytes, after.storedBytes);
    const codeOf = (r: { errors?: readonly { extensions?: Record<string, unknown> }[] }) =>
      r.errors?.[0]?.extensions?.code;
    assert.equal(codeOf(await server.admin.request(RegistryUsageDocument, {})), 'BAD_USER_INPUT');
    const other = (await givenDeveloper(server.admin)).client;
    assert.equal(
      codeOf(await other.request(RegistryUsageDocument, { developerId: before.developerId })),
      'FORBIDDEN',
    );
    const site = await givenSite(server.admin);
    assert.equal(codeOf(await site.client.request(RegistryUsageDocument, {})), 'FORBIDDEN');
  });
});
