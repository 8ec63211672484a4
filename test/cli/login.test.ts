import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenDeveloper } from '../support/fixtures.js';
import { themepress } from './helpers.js';

describe('themepress login / logout: a key per user, used from any folder', () => {
  let server: TestServer;
  let work: string;
  let config: string;

  before(async () => {
    server = await startTestServer();
    work = await mkdtemp(path.join(tmpdir(), 'themepress-login-'));
    config = path.join(work, 'user-config');
  });
  after(async () => {
    await server.close();
    await rm(work, { recursive: true, force: true });
  });

  // DATA_DIR: an empty folder, so no development server's admin key on this machine is found.
  const run = (args: string[], cwd = work) =>
    themepress(args, { cwd, env: { THEMEPRESS_CONFIG_DIR: config, DATA_DIR: path.join(work, 'no-data') } });

  it('checks the key, stores it (0600) for the server, and later commands from another folder use it', async () => {
    // given
    const developerKey = (await givenDeveloper(server.admin)).key;
    const elsewhere = path.join(work, 'somewhere', 'else');
    await mkdir(elsewhere, { recursive: true });

    // when
    const refused = await run(['login', '--url', server.url, '--key', 'tp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA']);
    const login = await run(['login', '--url', `${server.url}/graphql`, '--key', developerKey, '--json']);
    const init = await run(['addon', 'init', 'logged-in'], elsewhere);
    const publish = await run(['addon', 'publish', 'logged-in', '--json'], elsewhere);

    // then
    assert.equal(refused.code, 1);
    assert.match(refused.stderr, /UNAUTHENTICATED/);
    assert.equal(login.code, 0, login.stderr);
    assert.equal(login.json<{ role: string }>().role, 'developer');
    const file = path.join(config, 'credentials.json');
    assert.equal((await stat(file)).mode & 0o777, 0o600);
    const stored = JSON.parse(await readFile(file, 'utf8'));
    assert.equal(stored.current, server.url);
    assert.equal(stored.servers[server.url].key, developerKey);
    assert.equal(init.code, 0, init.stderr);
    assert.equal(publish.code, 0, publish.stderr);
    assert.equal(publish.json<{ addon: { name: string } }>().addon.name, 'logged-in');
  });

  it('logout forgets the key: the next command says how to get one', async () => {
    // when
    const logout = await run(['logout']);
    const again = await run(['addon', 'install', 'logged-in', '--url', server.url]);
    // then
    assert.equal(logout.code, 0, logout.stderr);
    assert.match(logout.stdout, /Forgot the key for http:\/\/127\.0\.0\.1:\d+/);
    const stored = JSON.parse(await readFile(path.join(config, 'credentials.json'), 'utf8'));
    assert.deepEqual(stored, { current: null, servers: {} });
    assert.equal(again.code, 2);
    assert.match(again.stderr, /No API key for http:\/\/127\.0\.0\.1:\d+: .*or run "themepress login"/);
  });
});
