import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenDeveloper, givenPublished, manifest } from '../support/fixtures.js';
import { AddonByNameDocument } from '../generated/graphql.js';
import { themepress } from './helpers.js';

describe('themepress addon unpublish: deletes a version the server lets go of', () => {
  let server: TestServer;
  let work: string;

  before(async () => {
    server = await startTestServer();
    work = await mkdtemp(path.join(tmpdir(), 'themepress-unpublish-'));
  });
  after(async () => {
    await server.close();
    await rm(work, { recursive: true, force: true });
  });

  it("deletes an old version with the owner's key, and prints the server's refusal of the latest", async () => {
    // given: an addon with two versions
    const developer = await givenDeveloper(server.admin);
    const m = manifest({ version: '1.0.0' });
    const name = m.name as string;
    await givenPublished(developer.client, m);
    await givenPublished(developer.client, { ...m, version: '1.1.0' });
    const env = { THEMEPRESS_URL: server.url, THEMEPRESS_API_KEY: developer.key };

    // when: the owner unpublishes the first, then the latest, then names no version
    const deleted = await themepress(['addon', 'unpublish', name, '--version', '1.0.0', '--json'], {
      cwd: work,
      env,
    });
    const latest = await themepress(['addon', 'unpublish', name, '--version', '1.1.0'], { cwd: work, env });
    const noVersion = await themepress(['addon', 'unpublish', name], { cwd: work, env });

    // then: the first is gone, the latest stays with the server's reason, a usage error exits 2
    assert.equal(deleted.code, 0, deleted.stderr);
    const result = deleted.json<{
      ok: boolean;
      addon: string;
      version: string;
      registry: { storedBytes: number };
    }>();
    assert.deepEqual(
      { ...result, registry: undefined },
      { ok: true, addon: name, version: '1.0.0', registry: undefined },
    );
    assert.ok(result.registry.storedBytes > 0, JSON.stringify(result));
    assert.equal(latest.code, 1);
    assert.match(latest.stderr, /is the latest version/);
    const human = await themepress(['addon', 'unpublish', name, '--version', '1.0.0'], { cwd: work, env });
    assert.equal(human.code, 1, 'already deleted');
    assert.match(human.stderr, /not found|NOT_FOUND/i);
    assert.equal(noVersion.code, 2);
    assert.match(noVersion.stderr, /--version/);
    const stored = await server.admin.ok(AddonByNameDocument, { name });
    assert.deepEqual(
      stored.addon?.versions.map((v) => v.version),
      ['1.1.0'],
    );
  });
});
