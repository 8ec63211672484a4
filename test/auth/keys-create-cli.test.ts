import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { GraphQLClient } from '../support/graphql-client.js';
import { freePort } from '../support/free-port.js';

/** `npm run keys:create` runs this compiled file (this test compiles to dist/test/auth/). */
const KEYS_CLI = fileURLToPath(new URL('../../src/auth/create-key-cli.js', import.meta.url));

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs keys:create as `npm run keys:create --` would, with only the given environment on top of PATH. */
function keysCreate(args: string[], cwd: string, env: Record<string, string>): Promise<Run> {
  const child = spawn(process.execPath, [KEYS_CLI, ...args], {
    cwd,
    env: { PATH: process.env.PATH ?? '', NODE_ENV: 'development', LOG_LEVEL: 'silent', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

const viewer = async (url: string, key: string) =>
  (
    await new GraphQLClient(url, key).raw<{ viewer: { role: string; siteId: string | null } }>(
      '{ viewer { role siteId } }',
    )
  ).data?.viewer;

describe('npm run keys:create', () => {
  let server: TestServer;
  let work: string;

  before(async () => {
    server = await startTestServer();
    work = await mkdtemp(path.join(tmpdir(), 'themepress-keys-'));
  });
  after(async () => {
    await server.close();
    await rm(work, { recursive: true, force: true });
  });

  it('without DATABASE_URL, creates every role through the running server with the local admin key', async () => {
    // given: a folder whose .data/admin-key is the server's admin key, as `npm start` leaves it
    await mkdir(path.join(work, '.data'), { recursive: true });
    await writeFile(path.join(work, '.data', 'admin-key'), `${server.adminKey}\n`, { mode: 0o600 });
    const env = { PORT: new URL(server.url).port };

    // when
    const admin = await keysCreate(['--role', 'admin'], work, env);
    const developer = await keysCreate(['--role', 'developer', '--developer', 'acme'], work, env);
    const site = await keysCreate(['--role', 'site', '--create-site', 'My shop'], work, env);

    // then: the key alone on stdout, and it works with its role
    for (const run of [admin, developer, site]) {
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /^tp_[A-Za-z0-9_-]{32}\n$/);
    }
    assert.equal((await viewer(server.url, admin.stdout.trim()))?.role, 'admin');
    assert.equal((await viewer(server.url, developer.stdout.trim()))?.role, 'developer');
    const siteViewer = await viewer(server.url, site.stdout.trim());
    assert.equal(siteViewer?.role, 'site');
    assert.match(site.stderr, new RegExp(`created site ${siteViewer?.siteId} "My shop"`));
  });

  it('with DATABASE_URL, creates every role in that database directly', async () => {
    // given
    const env = { DATABASE_URL: server.app.config.databaseUrl! };
    // when
    const admin = await keysCreate(['--role', 'admin'], work, env);
    const developer = await keysCreate(['--role', 'developer', '--developer', 'globex'], work, env);
    const site = await keysCreate(['--role', 'site', '--create-site', 'Other shop'], work, env);
    // then
    for (const run of [admin, developer, site]) assert.equal(run.code, 0, run.stderr);
    assert.equal((await viewer(server.url, admin.stdout.trim()))?.role, 'admin');
    assert.equal((await viewer(server.url, developer.stdout.trim()))?.role, 'developer');
    assert.equal((await viewer(server.url, site.stdout.trim()))?.role, 'site');
  });

  it('says what to do when no server answers and no DATABASE_URL is set, or the input is wrong', async () => {
    // given: a port nothing listens on
    const port = String(await freePort());
    // when
    const unreachable = await keysCreate(['--role', 'admin'], work, { PORT: port });
    const badRole = await keysCreate(['--role', 'root'], work, { PORT: port });
    const noDeveloper = await keysCreate(['--role', 'developer'], work, { PORT: new URL(server.url).port });
    // then
    assert.equal(unreachable.code, 1);
    assert.match(
      unreachable.stderr,
      new RegExp(`Cannot reach the ThemePress server at http://localhost:${port}.*npm start`),
    );
    assert.equal(badRole.code, 2);
    assert.match(badRole.stderr, /--role: expected admin, developer or site, got "root"/);
    assert.equal(noDeveloper.code, 1);
    assert.match(noDeveloper.stderr, /developerName: is required for a developer key/);
  });
});
