import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { runCli } from '../../src/cli/main.js';
import type { CliIo } from '../../src/cli/cli-io.js';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenDeveloper, givenPublished, givenSite, manifest } from '../support/fixtures.js';
import { InstallAddonDocument, InstallationSafetyDocument } from '../generated/graphql.js';
import { themepress } from './helpers.js';

describe('themepress addon upgrade: new permissions are shown and must be accepted', () => {
  let server: TestServer;
  let work: string;
  let developer: Awaited<ReturnType<typeof givenDeveloper>>;

  before(async () => {
    server = await startTestServer();
    work = await mkdtemp(path.join(tmpdir(), 'themepress-upgrade-'));
    developer = await givenDeveloper(server.admin);
  });
  after(async () => {
    await server.close();
    await rm(work, { recursive: true, force: true });
  });

  /** An addon installed at 1.0.0 on a new site; 2.0.0 adds storage.write and events.emit. */
  async function givenUpgradeAskingForMore() {
    const v1 = manifest({ version: '1.0.0', permissions: ['storage.read'] });
    await givenPublished(developer.client, v1);
    await givenPublished(developer.client, {
      ...v1,
      version: '2.0.0',
      permissions: ['storage.read', 'storage.write', 'events.emit'],
      events: { emits: ['thing.done'] },
    });
    const site = await givenSite(server.admin);
    const name = v1.name as string;
    await site.client.ok(InstallAddonDocument, { id: name, config: {}, version: '1.0.0' });
    const pinned = async () =>
      (await site.client.ok(InstallationSafetyDocument, {})).installations.find(
        (i) => i.addon.name === name,
      )!;
    return { name, site, pinned };
  }

  /** The CLI in this process, with a terminal that answers `answer`. */
  async function runAnswering(args: string[], key: string, answer: string) {
    let stdout = '';
    let stderr = '';
    const questions: string[] = [];
    const io: CliIo = {
      stdout: (text) => void (stdout += text),
      stderr: (text) => void (stderr += text),
      env: {
        THEMEPRESS_URL: server.url,
        THEMEPRESS_API_KEY: key,
        THEMEPRESS_CONFIG_DIR: path.join(work, '.themepress-config'),
      },
      cwd: work,
      prompt: async (question) => {
        questions.push(question);
        return answer;
      },
    };
    const code = await runCli(args, io);
    return { code, stdout, stderr, questions };
  }

  it('without --accept-permissions (no terminal), lists the new permissions, says how to accept them and leaves the site as it was', async () => {
    // given
    const { name, site, pinned } = await givenUpgradeAskingForMore();
    // when
    const human = await themepress(['addon', 'upgrade', name], {
      cwd: work,
      env: { THEMEPRESS_URL: server.url, THEMEPRESS_API_KEY: site.key },
    });
    const json = await themepress(['addon', 'upgrade', name, '--version', '2.0.0', '--json'], {
      cwd: work,
      env: { THEMEPRESS_URL: server.url, THEMEPRESS_API_KEY: site.key },
    });
    // then
    assert.equal(human.code, 1, human.stderr);
    assert.match(human.stderr, /\+ events\.emit\n\s+\+ storage\.write/);
    assert.match(human.stderr, /--accept-permissions events\.emit,storage\.write/);
    assert.equal(json.code, 1);
    const body = json.json<{ ok: boolean; error: { code: string } }>();
    assert.equal(body.ok, false);
    assert.equal(body.error.code, 'PERMISSIONS_NOT_ACCEPTED');
    assert.equal((await pinned()).version.version, '1.0.0');
  });

  it('with --accept-permissions listing them, moves to the latest version and grants them', async () => {
    // given
    const { name, site, pinned } = await givenUpgradeAskingForMore();
    // when
    const wrong = await themepress(['addon', 'upgrade', name, '--accept-permissions', 'storage.write'], {
      cwd: work,
      env: { THEMEPRESS_URL: server.url, THEMEPRESS_API_KEY: site.key },
    });
    const moved = await themepress(
      ['addon', 'upgrade', name, '--accept-permissions', 'storage.write,events.emit', '--json'],
      { cwd: work, env: { THEMEPRESS_URL: server.url, THEMEPRESS_API_KEY: site.key } },
    );
    // then
    assert.equal(wrong.code, 1);
    assert.match(wrong.stderr, /accept-permissions events\.emit,storage\.write/);
    assert.equal(moved.code, 0, moved.stderr);
    const result = moved.json<{
      installation: { version: { version: string }; grantedPermissions: string[] };
    }>();
    assert.equal(result.installation.version.version, '2.0.0');
    const now = await pinned();
    assert.equal(now.version.version, '2.0.0');
    assert.deepEqual([...now.grantedPermissions].sort(), ['events.emit', 'storage.read', 'storage.write']);
  });

  it('at a terminal, asks to grant them: yes moves, no leaves the site as it was', async () => {
    // given
    const declined = await givenUpgradeAskingForMore();
    const accepted = await givenUpgradeAskingForMore();
    // when
    const no = await runAnswering(['addon', 'upgrade', declined.name], declined.site.key, 'n');
    const yes = await runAnswering(['addon', 'upgrade', accepted.name], accepted.site.key, 'y');
    // then
    assert.equal(no.code, 1);
    assert.deepEqual(no.questions, [`Grant events.emit, storage.write to ${declined.name}? [y/N] `]);
    assert.match(no.stderr, /were not accepted/);
    assert.equal((await declined.pinned()).version.version, '1.0.0');
    assert.equal(yes.code, 0, yes.stderr);
    assert.match(yes.stdout, /is now at 2\.0\.0/);
    assert.equal((await accepted.pinned()).version.version, '2.0.0');
  });
});
