import { spawn } from 'node:child_process';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** The bin as `npx themepress` runs it (this file compiles to dist/test/cli/). */
export const BIN = fileURLToPath(new URL('../../../bin/themepress.mjs', import.meta.url));

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
  /** stdout parsed as JSON (for `--json` runs). */
  json<T = Record<string, unknown>>(): T;
}

/**
 * Runs the CLI as a real process, as an author would. The environment is the test's minus every
 * THEMEPRESS_*, DATA_DIR, ADMIN_API_KEY and PORT variable, plus `env`, so a developer's own
 * settings never leak in (stored logins go to `<cwd>/.themepress-config`).
 */
export function themepress(
  args: string[],
  options: { cwd: string; env?: Record<string, string> },
): Promise<CliRun> {
  const env: Record<string, string> = {};
  for (const [key, value] of Object.entries(process.env)) {
    if (
      value !== undefined &&
      !key.startsWith('THEMEPRESS_') &&
      !['DATA_DIR', 'ADMIN_API_KEY', 'PORT'].includes(key)
    )
      env[key] = value;
  }
  // A fresh per-user folder: a developer's own `themepress login` must not reach the test.
  env.THEMEPRESS_CONFIG_DIR = path.join(options.cwd, '.themepress-config');
  Object.assign(env, options.env);
  const child = spawn(process.execPath, ['--no-node-snapshot', BIN, ...args], {
    cwd: options.cwd,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code) =>
      resolve({
        code,
        stdout,
        stderr,
        json<T>() {
          try {
            return JSON.parse(stdout) as T;
          } catch {
            throw new Error(`stdout is not JSON (exit ${code}):\n${stdout}\nstderr:\n${stderr}`);
          }
        },
      }),
    );
  });
}

/** Writes an addon folder: manifest.json, index.js and, when given, fixtures.json. */
export async function writeAddon(
  directory: string,
  files: { manifest: Record<string, unknown>; source: string; fixtures?: Record<string, unknown> },
): Promise<string> {
  await mkdir(directory, { recursive: true });
  await writeFile(path.join(directory, 'manifest.json'), JSON.stringify(files.manifest, null, 2));
  await writeFile(path.join(directory, 'index.js'), files.source);
  if (files.fixtures) await writeFile(path.join(directory, 'fixtures.json'), JSON.stringify(files.fixtures));
  return directory;
}
