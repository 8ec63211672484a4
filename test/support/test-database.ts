import { createHash, randomBytes } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { createDatabase, type Database } from '../../src/infrastructure/database/database.js';
import {
  applyPendingMigrations,
  DEFAULT_MIGRATIONS_DIR,
} from '../../src/infrastructure/database/migration-engine.js';

export interface TestDatabase {
  /** Connection string of the new database, fully migrated. */
  url: string;
  /** Disconnects everyone still connected and drops the database. */
  drop(): Promise<void>;
}

const ADMIN_URL = process.env.TEST_DATABASE_ADMIN_URL ?? 'postgresql://postgres@127.0.0.1:5432/postgres';
// Serialises template creation across the test processes `node --test` runs in parallel.
const TEMPLATE_LOCK_KEY = 7_240_117;
const TEST_DB_PREFIX = 'tp_test_';
const TEMPLATE_PREFIX = 'tp_template_';
// Another checkout may still clone its (older) template; leave those alone for a while.
const STALE_TEMPLATE_MS = 30 * 60_000;

// allowExitOnIdle: a test file's process must end when its tests do, not 10 s later.
const admin = new pg.Pool({ connectionString: ADMIN_URL, max: 2, allowExitOnIdle: true });
admin.on('error', () => undefined);

let templateReady: Promise<string> | undefined;

function databaseUrl(name: string): string {
  const url = new URL(ADMIN_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

const quote = (name: string) => `"${name.replace(/"/g, '""')}"`;

/** CREATE DATABASE / RENAME fail while a backend of a just-closed connection is still exiting. */
async function retryWhileInUse(sql: string): Promise<void> {
  for (let attempt = 1; ; attempt += 1) {
    try {
      await admin.query(sql);
      return;
    } catch (error) {
      if ((error as { code?: string }).code !== '55006' || attempt >= 50) throw error;
      await sleep(20);
    }
  }
}

async function migrationsFingerprint(): Promise<string> {
  const hash = createHash('sha256');
  const entries = await readdir(DEFAULT_MIGRATIONS_DIR, { withFileTypes: true });
  const folders = entries.filter((entry) => entry.isDirectory()).map((entry) => entry.name);
  for (const folder of folders.sort()) {
    hash.update(folder).update('\0');
    hash.update(await readFile(path.join(DEFAULT_MIGRATIONS_DIR, folder, 'migration.sql'))).update('\0');
  }
  return hash.digest('hex').slice(0, 16);
}

function isLocalProcessGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as { code?: string }).code === 'ESRCH';
  }
}

async function dropLeftovers(client: pg.PoolClient, template: string): Promise<void> {
  const { rows } = await client.query<{ datname: string; comment: string | null }>(
    `SELECT datname, shobj_description(oid, 'pg_database') AS comment FROM pg_database
      WHERE datname LIKE 'tp\\_test\\_%' OR datname LIKE 'tp\\_template\\_%'`,
  );
  const local = ['127.0.0.1', 'localhost', '[::1]'].includes(new URL(ADMIN_URL).hostname);
  for (const { datname, comment } of rows) {
    let stale = false;
    if (datname.startsWith(TEST_DB_PREFIX)) {
      // Databases of test processes that crashed before drop(); pids only mean something locally.
      const pid = Number(datname.slice(TEST_DB_PREFIX.length).split('_')[0]);
      stale = local && Number.isInteger(pid) && pid !== process.pid && isLocalProcessGone(pid);
    } else if (datname !== template) {
      stale = datname.endsWith('_building') || Date.now() - Number(comment ?? 0) > STALE_TEMPLATE_MS;
    }
    if (stale)
      await client.query(`DROP DATABASE IF EXISTS ${quote(datname)} WITH (FORCE)`).catch(() => undefined);
  }
}

/**
 * One migrated template per set of migrations, shared by every test process: cloning it takes about
 * 60 ms where creating a database and applying the migrations takes about 180 ms.
 */
async function ensureTemplate(): Promise<string> {
  const template = `${TEMPLATE_PREFIX}${await migrationsFingerprint()}`;
  const client = await admin.connect();
  try {
    await client.query(`SELECT pg_advisory_lock(${TEMPLATE_LOCK_KEY})`);
    await dropLeftovers(client, template);
    const exists = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [template]);
    if (exists.rowCount === 0) {
      // Built under another name and renamed when complete, so a crash never leaves a half-migrated template.
      const building = `${template}_building`;
      await client.query(`DROP DATABASE IF EXISTS ${quote(building)} WITH (FORCE)`);
      await client.query(`CREATE DATABASE ${quote(building)}`);
      await applyPendingMigrations(databaseUrl(building));
      await retryWhileInUse(`ALTER DATABASE ${quote(building)} RENAME TO ${quote(template)}`);
    }
    // Refreshed on every use so that a template in use is never considered stale.
    await client.query(`COMMENT ON DATABASE ${quote(template)} IS '${Date.now()}'`);
    return template;
  } finally {
    await client.query(`SELECT pg_advisory_unlock(${TEMPLATE_LOCK_KEY})`).catch(() => undefined);
    client.release();
  }
}

/**
 * Creates an empty, fully migrated database of its own for a test (a copy of a template built once
 * with {@link applyPendingMigrations}) on `TEST_DATABASE_ADMIN_URL`, by default the local PostgreSQL.
 */
export async function createTestDatabase(): Promise<TestDatabase> {
  templateReady ??= ensureTemplate().catch((error: unknown) => {
    templateReady = undefined;
    throw error;
  });
  const template = await templateReady;
  const name = `${TEST_DB_PREFIX}${process.pid}_${randomBytes(4).toString('hex')}`;
  await retryWhileInUse(`CREATE DATABASE ${quote(name)} TEMPLATE ${quote(template)}`);
  let dropped: Promise<void> | undefined;
  return {
    url: databaseUrl(name),
    drop() {
      dropped ??= admin.query(`DROP DATABASE IF EXISTS ${quote(name)} WITH (FORCE)`).then(() => undefined);
      return dropped;
    },
  };
}

/** A database of a test's own ({@link createTestDatabase}) and the app's client of it. */
export interface ConnectedTestDatabase {
  database: Database;
  url: string;
  /** Closes the client, then drops the database. */
  drop(): Promise<void>;
}

/** {@link createTestDatabase} with the app's own client (`createDatabase`) connected to it. */
export async function createConnectedTestDatabase(max = 2): Promise<ConnectedTestDatabase> {
  const testDatabase = await createTestDatabase();
  const database = createDatabase({ connectionString: testDatabase.url, max });
  return {
    database,
    url: testDatabase.url,
    async drop() {
      await database.close();
      await testDatabase.drop();
    },
  };
}
