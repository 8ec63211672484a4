import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { delimiter, join } from 'node:path';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { REQUIRED_NODE_MAJOR } from '../../src/config/node-version.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));
const ENTRY_POINTS = {
  server: join(root, 'dist/src/main.js'),
  seed: join(root, 'dist/src/seed/seed-cli.js'),
  cli: join(root, 'bin/themepress.mjs'),
};
// Makes the running Node report another version to everything loaded after it.
const pretendNode20 =
  'data:text/javascript,Object.defineProperty(process,"versions",{value:{...process.versions,node:"20.20.2"}})';

/** Node binaries on PATH older than the required major (the system Node 20 on this project's machines). */
function olderNodesOnPath(): string[] {
  const found = new Set<string>();
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const bin = join(dir, 'node');
    if (!dir || !existsSync(bin)) continue;
    const version = execFileSync(bin, ['--version'], { encoding: 'utf8' }).trim();
    if (Number.parseInt(version.slice(1), 10) < REQUIRED_NODE_MAJOR) found.add(bin);
  }
  return [...found];
}

function run(node: string, args: string[]) {
  return spawnSync(node, args, {
    encoding: 'utf8',
    timeout: 20_000,
    // No DATABASE_URL: were the check missing, the server would go on to start an embedded one.
    env: { PATH: process.env.PATH, NODE_ENV: 'test', DATA_DIR: join(root, '.data-node-version-test') },
  });
}

describe('starting on a Node older than the required major', () => {
  for (const [name, entry] of Object.entries(ENTRY_POINTS)) {
    it(`${name}: stops at once with one sentence naming both versions`, () => {
      // given a Node that reports 20.20.2
      // when
      const result = run(process.execPath, ['--no-node-snapshot', '--import', pretendNode20, entry]);
      // then
      assert.equal(result.status, 1, result.stdout + result.stderr);
      assert.equal(
        result.stderr.trim(),
        `ThemePress Addon Server needs Node.js ${REQUIRED_NODE_MAJOR} or newer; this is Node.js 20.20.2. ` +
          `Install Node.js ${REQUIRED_NODE_MAJOR} LTS (see README.md, Prerequisites).`,
      );
      assert.equal(result.stdout, '');
    });
  }

  it('a real older Node gets the same sentence, not a native-module crash', (t) => {
    const older = olderNodesOnPath();
    if (older.length === 0) {
      t.skip(`no Node older than ${REQUIRED_NODE_MAJOR} on PATH; the case above pretends one`);
      return;
    }
    for (const node of older) {
      const version = execFileSync(node, ['--version'], { encoding: 'utf8' }).trim().slice(1);
      for (const entry of Object.values(ENTRY_POINTS)) {
        const result = run(node, ['--no-node-snapshot', entry]);
        assert.equal(result.status, 1, `${node} ${entry}: ${result.stderr}`);
        assert.match(result.stderr, new RegExp(`this is Node\\.js ${version.replaceAll('.', '\\.')}\\.`));
        assert.doesNotMatch(result.stderr, /NODE_MODULE_VERSION|No native build|at /);
      }
    }
  });
});
