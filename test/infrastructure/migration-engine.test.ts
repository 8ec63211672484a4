import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { PrismaPg } from '@prisma/adapter-pg';
import { PrismaClient } from '../../src/generated/prisma/client.js';
import { startEmbeddedPostgres } from '../../src/infrastructure/database/embedded-postgres.js';
import {
  applyPendingMigrations,
  DEFAULT_MIGRATIONS_DIR,
  DEFAULT_SCHEMA_PATH,
  diffMigration,
  migrationChecksum,
  MigrationError,
  migrationStatus,
  SCHEMA_SNAPSHOT_FILE,
} from '../../src/infrastructure/database/migration-engine.js';

const ADMIN_URL = process.env.TEST_DATABASE_ADMIN_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
const admin = new pg.Pool({ connectionString: ADMIN_URL, max: 1, allowExitOnIdle: true });
const created: string[] = [];
const temporaryDirs: string[] = [];

/** An empty database (no migrations), unlike createTestDatabase(); named so leftovers get cleaned up. */
async function emptyDatabase(): Promise<string> {
  const name = `tp_test_${process.pid}_${randomBytes(4).toString('hex')}`;
  await admin.query(`CREATE DATABASE "${name}"`);
  created.push(name);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

async function temporaryDir(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), 'tp-migrations-'));
  temporaryDirs.push(dir);
  return dir;
}

async function migrationFolders(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  return entries
    .filter((entry) => entry.isDirectory())
    .map((entry) => entry.name)
    .sort();
}

after(async () => {
  for (const name of created) await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
  await admin.end();
  for (const dir of temporaryDirs) await rm(dir, { recursive: true, force: true });
});

describe('applyPendingMigrations', () => {
  let folders: string[];
  before(async () => {
    folders = await migrationFolders(DEFAULT_MIGRATIONS_DIR);
    assert.ok(folders.length > 0, 'prisma/migrations holds at least the init migration');
  });

  test('applies every migration to a fresh database, then nothing on a second run', async () => {
    const url = await emptyDatabase();
    assert.deepEqual(await migrationStatus(url), { pending: folders, applied: [], failed: [] });

    assert.deepEqual(await applyPendingMigrations(url), { applied: folders });
    assert.deepEqual(await applyPendingMigrations(url), { applied: [] });
    assert.deepEqual(await migrationStatus(url), { pending: [], applied: folders, failed: [] });

    // The checksum `prisma migrate deploy` records: SHA-256 hex of the file as it is on disk.
    const client = new pg.Client(url);
    await client.connect();
    try {
      const { rows } = await client.query<{ migration_name: string; checksum: string }>(
        'SELECT migration_name, checksum FROM _prisma_migrations ORDER BY migration_name',
      );
      for (const [index, folder] of folders.entries()) {
        const sql = await readFile(path.join(DEFAULT_MIGRATIONS_DIR, folder, 'migration.sql'), 'utf8');
        assert.equal(rows[index].migration_name, folder);
        assert.equal(rows[index].checksum, migrationChecksum(sql));
        assert.match(rows[index].checksum, /^[0-9a-f]{64}$/);
      }
      // The engine's session lock must not outlive the call.
      const locks = await client.query(
        "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = 72707369",
      );
      assert.equal(locks.rowCount, 0);
    } finally {
      await client.end();
    }
  });

  test('two callers at once: one applies, the other waits and applies nothing', async () => {
    const url = await emptyDatabase();
    const results = await Promise.all([applyPendingMigrations(url), applyPendingMigrations(url)]);
    assert.deepEqual(results.map((result) => result.applied.length).sort(), [0, folders.length]);
    const status = await migrationStatus(url);
    assert.deepEqual(status.applied, folders);
  });

  test('accepts a pool of one connection and leaves it usable and unlocked', async () => {
    const pool = new pg.Pool({ connectionString: await emptyDatabase(), max: 1 });
    try {
      assert.deepEqual(await applyPendingMigrations(pool), { applied: folders });
      const locks = await pool.query(
        "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND objid = 72707369",
      );
      assert.equal(locks.rowCount, 0);
      assert.deepEqual((await migrationStatus(pool)).pending, []);
      await assert.rejects(
        applyPendingMigrations(new pg.Pool({ connectionString: ADMIN_URL, max: 5 })),
        MigrationError,
      );
    } finally {
      await pool.end();
    }
  });

  test('a failing script is reported in one error and recorded as failed', async () => {
    const dir = await temporaryDir();
    await cp(DEFAULT_MIGRATIONS_DIR, dir, { recursive: true });
    const bad = '99991231235959_broken';
    await cp(path.join(dir, folders[0]), path.join(dir, bad), { recursive: true });
    await writeFile(path.join(dir, bad, 'migration.sql'), 'CREATE TABLE "Broken" (id int);\nSELEC 1;\n');
    const url = await emptyDatabase();

    await assert.rejects(applyPendingMigrations(url, { migrationsDir: dir }), (error: Error) => {
      assert.ok(error instanceof MigrationError);
      assert.match(error.message, /syntax error at or near "SELEC"/);
      assert.doesNotMatch(error.message, /schema-engine\/connectors/);
      return true;
    });
    const status = await migrationStatus(url, { migrationsDir: dir });
    assert.deepEqual(status.applied, folders);
    assert.deepEqual(status.failed, [bad]);
    assert.deepEqual(status.pending, [bad]);
  });

  test('an unreachable database fails with a message that does not echo the password', async () => {
    await assert.rejects(
      applyPendingMigrations('postgresql://postgres:s3cret@127.0.0.1:1/none'),
      (error: Error) => {
        assert.ok(error instanceof MigrationError);
        assert.doesNotMatch(error.message, /s3cret/);
        return true;
      },
    );
  });
});

describe('diffMigration', () => {
  test('the committed migrations match prisma/schema.prisma (else run `npm run db:diff -- <name>`)', async () => {
    const dir = await temporaryDir();
    await cp(DEFAULT_MIGRATIONS_DIR, dir, { recursive: true });
    const result = await diffMigration({
      name: 'check',
      migrationsDir: dir,
      schemaPath: DEFAULT_SCHEMA_PATH,
    });
    assert.equal(result.directory, null, `schema.prisma changed without a migration:\n${result.sql}`);
  });

  test('writes the init migration, nothing when unchanged, then the SQL of a schema change', async () => {
    const dir = await temporaryDir();
    const migrationsDir = path.join(dir, 'migrations');
    const schemaPath = path.join(dir, 'schema.prisma');
    const schema =
      'datasource db {\n  provider = "postgresql"\n}\n\nmodel Site {\n  id   Int    @id\n  name String\n}\n';
    await writeFile(schemaPath, schema);

    await assert.rejects(diffMigration({ name: 'Bad-Name', migrationsDir, schemaPath }), MigrationError);

    const init = await diffMigration({
      name: 'init',
      migrationsDir,
      schemaPath,
      now: new Date('2026-01-02T03:04:05Z'),
    });
    assert.equal(init.directory, path.join(migrationsDir, '20260102030405_init'));
    assert.match(init.sql, /CREATE TABLE "Site"/);
    assert.equal(await readFile(path.join(init.directory, 'migration.sql'), 'utf8'), init.sql);
    assert.match(
      await readFile(path.join(migrationsDir, 'migration_lock.toml'), 'utf8'),
      /provider = "postgresql"/,
    );
    assert.equal(await readFile(path.join(migrationsDir, SCHEMA_SNAPSHOT_FILE), 'utf8'), schema);

    assert.deepEqual(await diffMigration({ name: 'noop', migrationsDir, schemaPath }), {
      directory: null,
      sql: '',
    });

    const changed = `${schema}\nmodel Event {\n  id     Int    @id\n  siteId Int\n\n  @@index([siteId])\n}\n`;
    await writeFile(schemaPath, changed);
    const next = await diffMigration({
      name: 'add_events',
      migrationsDir,
      schemaPath,
      now: new Date('2026-01-02T03:04:06Z'),
    });
    assert.equal(next.directory, path.join(migrationsDir, '20260102030406_add_events'));
    assert.match(next.sql, /CREATE TABLE "Event"/);
    assert.match(next.sql, /CREATE INDEX "Event_siteId_idx"/);
    assert.doesNotMatch(next.sql, /CREATE TABLE "Site"/);
    assert.equal(await readFile(path.join(migrationsDir, SCHEMA_SNAPSHOT_FILE), 'utf8'), changed);

    // The stray snapshot file beside the folders does not disturb the engine.
    const url = await emptyDatabase();
    assert.deepEqual(await applyPendingMigrations(url, { migrationsDir }), {
      applied: ['20260102030405_init', '20260102030406_add_events'],
    });
  });

  test('refuses to diff from empty when migrations exist but the snapshot is gone', async () => {
    const dir = await temporaryDir();
    await cp(DEFAULT_MIGRATIONS_DIR, dir, { recursive: true });
    await rm(path.join(dir, SCHEMA_SNAPSHOT_FILE));
    await assert.rejects(
      diffMigration({ name: 'again', migrationsDir: dir, schemaPath: DEFAULT_SCHEMA_PATH }),
      /snapshot is missing|is missing/,
    );
  });
});

describe('embedded PostgreSQL (PGlite)', () => {
  test('serves pg and Prisma, runs migrations, and keeps data across a restart', async () => {
    const dataDir = path.join(await temporaryDir(), 'pglite');

    const first = await startEmbeddedPostgres({ dataDir });
    const pool = new pg.Pool({ connectionString: first.connectionString, max: 1 });
    const prisma = new PrismaClient({ adapter: new PrismaPg(pool) });
    try {
      const { applied } = await applyPendingMigrations(pool);
      assert.ok(applied.length > 0);
      await prisma.site.create({ data: { name: 'kept across restarts' } });
      assert.equal((await pool.query('SELECT count(*)::int AS n FROM "Site"')).rows[0].n, 1);
    } finally {
      await prisma.$disconnect();
      await pool.end();
      await first.stop();
    }

    const second = await startEmbeddedPostgres({ dataDir });
    const pool2 = new pg.Pool({ connectionString: second.connectionString, max: 1 });
    const prisma2 = new PrismaClient({
      adapter: new PrismaPg({ connectionString: second.connectionString, max: 1 }),
    });
    try {
      assert.deepEqual(await applyPendingMigrations(pool2), { applied: [] });
      assert.deepEqual((await migrationStatus(pool2)).pending, []);
      await pool2.end();
      const sites = await prisma2.site.findMany();
      assert.deepEqual(
        sites.map((site) => site.name),
        ['kept across restarts'],
      );
    } finally {
      await prisma2.$disconnect();
      await pool2.end().catch(() => undefined);
      await second.stop();
    }
  });
});
