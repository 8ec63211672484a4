// Runs every compiled test file (unit tests beside the code in dist/src, integration tests in
// dist/test) with node's built-in runner, on the Node that runs this script.
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';

function find(dir) {
  let out = [];
  for (const entry of readdirSync(dir)) {
    const full = path.join(dir, entry);
    if (statSync(full).isDirectory()) out = out.concat(find(full));
    else if (entry.endsWith('.test.js')) out.push(full);
  }
  return out;
}

const filters = process.argv.slice(2);
// tsc's incremental build never deletes the output of a deleted source: a test file whose .ts is
// gone (another branch's, or removed) is left out instead of run.
const hasSource = (file) => existsSync(file.replace(/^dist\//, '').replace(/\.js$/, '.ts'));
const files = ['dist/src', 'dist/test']
  .flatMap((root) => find(root))
  .filter(hasSource)
  .filter((file) => filters.length === 0 || filters.some((f) => file.includes(f)))
  .sort();
if (files.length === 0) {
  console.error(`no test files match ${filters.join(' ')}`);
  process.exit(1);
}
const args = [
  // isolated-vm's README requires it from Node 20 on (V8's shared read-only heap crashes isolates
  // built without Node's snapshot); the sandbox worker processes get it through execArgv too.
  '--no-node-snapshot',
  '--enable-source-maps',
  '--test',
  `--test-concurrency=${process.env.TEST_CONCURRENCY ?? 2}`,
  ...(process.env.TEST_REPORTER ? [`--test-reporter=${process.env.TEST_REPORTER}`] : []),
  ...files,
];
console.log(`Running ${files.length} test files on Node ${process.version} (${process.execPath})`);
const result = spawnSync(process.execPath, args, {
  stdio: 'inherit',
  env: { NODE_ENV: 'test', ...process.env },
});
process.exit(result.status ?? 1);
