import { testRedisEnv } from '../support/test-server.js';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config/app-config.js';
import { createApp } from '../../src/app/create-app.js';
import { ensureLocalAdminKey, readLocalAdminKey } from '../../src/auth/local-admin-key.js';
import { resolveApiKey } from '../../src/cli/api-client.js';
import { CliError } from '../../src/cli/cli-io.js';
import { startTestServer } from '../support/test-server.js';
import { createTestDatabase } from '../support/test-database.js';
import { GraphQLClient } from '../support/graphql-client.js';
import { themepress, writeAddon } from './helpers.js';

const viewerRole = async (url: string, key: string) =>
  (await new GraphQLClient(url, key).raw<{ viewer: { role: string } }>('{ viewer { role } }')).data?.viewer
    .role;

describe('development admin key (<DATA_DIR>/admin-key)', () => {
  let work: string;

  before(async () => {
    work = await mkdtemp(path.join(tmpdir(), 'themepress-admin-key-'));
  });
  after(() => rm(work, { recursive: true, force: true }));

  it('a development server without ADMIN_API_KEY writes one admin key (0600), keeps it, and the seed uses it', async () => {
    // given: `npm start` on a laptop: development mode, no ADMIN_API_KEY
    const dataDir = path.join(work, 'laptop');
    const first = await startTestServer({ NODE_ENV: 'development', ADMIN_API_KEY: '', DATA_DIR: dataDir });
    let key: string;
    let seeded;
    try {
      // when
      const file = path.join(dataDir, 'admin-key');
      key = (await readFile(file, 'utf8')).trim();
      const mode = (await stat(file)).mode & 0o777;
      const addons = path.join(work, 'addons');
      await writeAddon(path.join(addons, 'laptop-addon'), {
        manifest: { name: 'laptop-addon', version: '1.0.0', category: 'UTILITIES' },
        source: 'module.exports = {};',
      });
      // The CLI finds the key itself: no THEMEPRESS_API_KEY, only DATA_DIR (as in .env).
      seeded = await themepress(['seed', '--dir', addons], {
        cwd: work,
        env: { THEMEPRESS_URL: first.url, DATA_DIR: dataDir },
      });

      // then
      assert.match(key, /^tp_[A-Za-z0-9_-]{32}$/);
      assert.equal(mode, 0o600);
      assert.equal(await viewerRole(first.url, key), 'admin');
      assert.equal(seeded.code, 0, seeded.stderr);
      assert.match(seeded.stdout, /"Demo shop" is ready/);
    } finally {
      await first.close();
    }

    // and a restart (here: a new database too) keeps the same key and accepts it
    const second = await startTestServer({ NODE_ENV: 'development', ADMIN_API_KEY: '', DATA_DIR: dataDir });
    try {
      assert.equal((await readFile(path.join(dataDir, 'admin-key'), 'utf8')).trim(), key);
      assert.equal(await viewerRole(second.url, key), 'admin');
    } finally {
      await second.close();
    }
  });

  it('is never logged, and test or production servers write no key file', async () => {
    // given
    const dataDir = path.join(work, 'logged');
    const database = await createTestDatabase();
    const logs: string[] = [];
    const logStream = new Writable({
      write(chunk, _encoding, done) {
        logs.push(String(chunk));
        done();
      },
    });
    const app = await createApp(
      loadConfig({
        NODE_ENV: 'development',
        HOST: '127.0.0.1',
        PORT: '0',
        DATABASE_URL: database.url,
        ...testRedisEnv(database.url),
        MIGRATE_ON_START: 'false',
        LOG_LEVEL: 'debug',
        DATA_DIR: dataDir,
      }),
      { logStream },
    );
    let key: string | null = null;
    try {
      const url = await app.listen();
      key = await readLocalAdminKey(dataDir);
      assert.equal(await viewerRole(url, key!), 'admin');
    } finally {
      await app.close();
      await database.drop();
    }
    const quiet = {
      test: path.join(work, 'test-mode'),
      production: path.join(work, 'production-mode'),
    };

    // when
    for (const [mode, dir] of Object.entries(quiet)) {
      const server = await startTestServer({ NODE_ENV: mode, ADMIN_API_KEY: '', DATA_DIR: dir });
      await server.close();
    }

    // then
    assert.ok(logs.length > 0, 'the server logged something');
    assert.ok(!logs.join('').includes(key!), 'the key never appears in the logs');
    for (const dir of Object.values(quiet)) assert.equal(await readLocalAdminKey(dir), null);
  });

  it('concurrent starts agree on one key; a hand-edited file is refused with its path', async () => {
    // given
    const dir = path.join(work, 'race');
    const edited = path.join(work, 'edited');

    // when
    const keys = await Promise.all([1, 2, 3, 4].map(() => ensureLocalAdminKey(dir)));
    await ensureLocalAdminKey(edited);
    await writeFile(path.join(edited, 'admin-key'), 'not a key\n');

    // then
    assert.equal(new Set(keys).size, 1);
    await assert.rejects(
      ensureLocalAdminKey(edited),
      /edited\/admin-key does not hold an API key; delete it/,
    );
  });

  it('the CLI sends the local key only to a server on this machine', async () => {
    // given
    const dataDir = path.join(work, 'local-only');
    const key = await ensureLocalAdminKey(dataDir);
    const env = { DATA_DIR: dataDir };

    // when
    const local = await resolveApiKey(env, work, 'http://localhost:4000', 'an admin key');
    const loopback = await resolveApiKey(env, work, 'http://127.0.0.1:4000', 'an admin key');
    const remote = resolveApiKey(env, work, 'https://themepress.example.com', 'an admin key');
    const fromEnv = await resolveApiKey(
      { ...env, THEMEPRESS_API_KEY: 'tp_env' },
      work,
      'https://x.example',
      'k',
    );

    // then
    assert.equal(local.key, key);
    assert.equal(loopback.key, key);
    await assert.rejects(remote, (error: unknown) => {
      assert.ok(error instanceof CliError);
      assert.equal(error.exitCode, 2);
      assert.match(
        error.message,
        /No API key for https:\/\/themepress.example.com: set THEMEPRESS_API_KEY to an admin key, or run "themepress login"\.$/,
      );
      return true;
    });
    assert.deepEqual(fromEnv, { key: 'tp_env', source: 'THEMEPRESS_API_KEY' });
  });
});
