// `npm start`: compiles only when a source changed since the last build (a full type check costs
// seconds even when incremental, and a restarted server should be back in well under that), then
// runs the server with the flags the Dockerfile uses. Signals reach the server: SIGINT from the
// terminal's process group, SIGTERM forwarded from npm.
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const at = (...parts) => path.join(root, ...parts);

function mtime(file) {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

/** The newest modification time of the files below `dir`. */
function newest(dir) {
  let latest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    latest = Math.max(latest, entry.isDirectory() ? newest(full) : mtime(full));
  }
  return latest;
}

const built = mtime(at('dist', '.tsbuildinfo'));
const sources = Math.max(newest(at('src')), mtime(at('tsconfig.json')), mtime(at('package.json')));
if (built === 0 || sources > built) {
  const build = spawnSync(
    process.execPath,
    [at('node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'],
    {
      cwd: root,
      stdio: 'inherit',
    },
  );
  if (build.status !== 0) process.exit(build.status ?? 1);
}

const server = spawn(
  process.execPath,
  [
    '--no-node-snapshot',
    '--max-semi-space-size=32',
    '--v8-pool-size=1',
    '--enable-source-maps',
    at('dist', 'src', 'main.js'),
    ...process.argv.slice(2),
  ],
  { stdio: 'inherit' },
);
process.on('SIGTERM', () => server.kill('SIGTERM'));
// Ctrl-C reaches the server with the rest of the terminal's process group; passing it on would
// count as a second signal (which cuts a drain short).
process.on('SIGINT', () => undefined);
server.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
