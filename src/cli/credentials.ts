import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { CliError } from './cli-io.js';

type CliEnv = Record<string, string | undefined>;

/** What `themepress login` keeps per user: the server used by default and a key per server. */
export interface StoredCredentials {
  /** The server commands talk to when neither --url nor THEMEPRESS_URL names one. */
  current: string | null;
  servers: Record<string, { key: string; savedAt: string }>;
}

const FILE = 'credentials.json';

/**
 * The per-user folder of the CLI: THEMEPRESS_CONFIG_DIR, else `$XDG_CONFIG_HOME/themepress`, else
 * `~/.config/themepress` (`%APPDATA%\themepress` on Windows). Null when the environment names no
 * home at all: then nothing is stored or read.
 */
export function credentialsDir(env: CliEnv): string | null {
  if (env.THEMEPRESS_CONFIG_DIR) return path.resolve(env.THEMEPRESS_CONFIG_DIR);
  if (env.XDG_CONFIG_HOME) return path.join(env.XDG_CONFIG_HOME, 'themepress');
  if (process.platform === 'win32' && env.APPDATA) return path.join(env.APPDATA, 'themepress');
  if (env.HOME) return path.join(env.HOME, '.config', 'themepress');
  return null;
}

/** The credentials file, or null (see {@link credentialsDir}). */
export function credentialsFile(env: CliEnv): string | null {
  const dir = credentialsDir(env);
  return dir ? path.join(dir, FILE) : null;
}

/**
 * Reads the stored credentials; none when there is no file.
 * @throws CliError when the file exists but is not what `login` writes (naming the file).
 */
export function readCredentials(env: CliEnv): StoredCredentials {
  const empty: StoredCredentials = { current: null, servers: {} };
  const file = credentialsFile(env);
  if (!file) return empty;
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return empty;
    throw new CliError(`Cannot read ${file}: ${(error as Error).message}`);
  }
  try {
    const parsed = JSON.parse(text) as Partial<StoredCredentials>;
    const servers: StoredCredentials['servers'] = {};
    for (const [url, entry] of Object.entries(parsed.servers ?? {})) {
      if (typeof entry?.key === 'string')
        servers[url] = { key: entry.key, savedAt: String(entry.savedAt ?? '') };
    }
    return { current: typeof parsed.current === 'string' ? parsed.current : null, servers };
  } catch {
    throw new CliError(`${file} is not valid JSON; delete it and run "themepress login" again.`);
  }
}

/**
 * Writes the credentials file (folder 0700, file 0600, replaced atomically).
 * @returns the file written.
 */
export function writeCredentials(env: CliEnv, credentials: StoredCredentials): string {
  const dir = credentialsDir(env);
  if (!dir) {
    throw new CliError('Cannot store credentials: set HOME, XDG_CONFIG_HOME or THEMEPRESS_CONFIG_DIR.');
  }
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = path.join(dir, FILE);
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600 });
  renameSync(temporary, file);
  return file;
}
