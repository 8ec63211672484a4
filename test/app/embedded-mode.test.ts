import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { generateApiKey } from '../../src/auth/api-key.js';
import { loadConfig } from '../../src/config/app-config.js';
import { createApp } from '../../src/app/create-app.js';
import { GraphQLClient } from '../support/graphql-client.js';
import { givenDeveloper, givenPublished, givenSite, manifest } from '../support/fixtures.js';
import { InstallAddonDocument, InstallationsDocument, ListAddonsDocument } from '../generated/graphql.js';

describe('embedded mode (no DATABASE_URL, no REDIS_URL)', () => {
  it('migrates an embedded PostgreSQL, then registers, installs and lists an addon', async () => {
    // given: a laptop with nothing but Node
    const dataDir = await mkdtemp(path.join(tmpdir(), 'themepress-embedded-'));
    const adminKey = generateApiKey();
    const config = loadConfig({
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: '0',
      DATA_DIR: dataDir,
      ADMIN_API_KEY: adminKey,
    });
    const app = await createApp(config);
    try {
      const url = await app.listen();
      const admin = new GraphQLClient(url, adminKey);
      const developer = (await givenDeveloper(admin)).client;
      const site = await givenSite(admin);
      const m = manifest({ category: 'ECOMMERCE' });
      // when
      await givenPublished(developer, m);
      await site.client.ok(InstallAddonDocument, { id: m.name as string, config: { greeting: 'hey' } });
      const listed = await site.client.ok(ListAddonsDocument, { category: 'ECOMMERCE' });
      const installed = await site.client.ok(InstallationsDocument, {});
      // the search index needs pg_trgm, which PGlite loads as an extension
      const searched = await site.client.ok(ListAddonsDocument, { search: (m.name as string).toUpperCase() });
      // then
      assert.equal(config.databaseUrl, null);
      assert.deepEqual(
        listed.addons.edges.map((e) => e.node.name),
        [m.name],
      );
      assert.deepEqual(
        searched.addons.edges.map((e) => e.node.name),
        [m.name],
      );
      assert.equal(searched.addons.totalCount, 1);
      assert.deepEqual(installed.installations[0].config, { greeting: 'hey' });
      const ready = await fetch(`${url}/readyz`);
      assert.equal(ready.status, 200);
    } finally {
      await app.close();
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
