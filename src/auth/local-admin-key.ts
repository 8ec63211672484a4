import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { generateApiKey } from './api-key.js';

/** File under DATA_DIR that holds the development server's admin key. */
export const LOCAL_ADMIN_KEY_FILE = 'admin-key';

const KEY_FORMAT = /^tp_[A-Za-z0-9_-]{24,}$/;

/** Where the development server keeps its admin key for the CLI and `npm run seed`. */
export function localAdminKeyPath(dataDir: string): string {
  return path.join(dataDir, LOCAL_ADMIN_KEY_FILE);
}

/**
 * The admin key of a development server started without ADMIN_API_KEY: read from
 * `<dataDir>/admin-key`, or generated and written there (mode 0600) on first start. A newcomer's
 * `npm start` then has an admin the CLI can act as without anyone copying a key out of a log, and
 * the key survives restarts. The caller registers it (hashed) like ADMIN_API_KEY; it is never logged.
 *
 * @throws Error when the file exists but does not hold a key (edited by hand): deleting it makes
 *   the next start write a fresh one.
 */
export async function ensureLocalAdminKey(dataDir: string): Promise<string> {
  const file = localAdminKeyPath(dataDir);
  const existing = await readLocalAdminKey(dataDir);
  if (existing) return existing;
  await mkdir(dataDir, { recursive: true });
  const key = generateApiKey();
  try {
    // `wx`: two instances sharing a data folder must not overwrite each other's key.
    await writeFile(file, `${key}\n`, { mode: 0o600, flag: 'wx' });
    return key;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    // Another instance created it a moment ago and may still be writing it.
    let lastError: unknown = null;
    for (let attempt = 0; attempt < 20; attempt += 1) {
      try {
        const winner = await readLocalAdminKey(dataDir);
        if (winner) return winner;
      } catch (readError) {
        lastError = readError;
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw lastError ?? new Error(`${file} disappeared while it was being created.`);
  }
}

/**
 * Reads `<dataDir>/admin-key`; null when there is no such file.
 * @throws Error when the file holds something other than a key.
 */
export async function readLocalAdminKey(dataDir: string): Promise<string | null> {
  const file = localAdminKeyPath(dataDir);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  const key = text.trim();
  if (!KEY_FORMAT.test(key)) throw new Error(`${file} does not hold an API key; delete it to get a new one.`);
  return key;
}
