// Runs every compiled test file (unit tests beside the code in dist/src, integration tests in
// dist/test) with node's built-in runner, on the Node that runs this script.
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
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
// Files that time the server's event loop (test/support/liveness-probe.ts) run after the others,
// one at a time: on a 2-core machine a concurrent file's sandbox workers would take their CPU.
const timesTheLoop = (file) => readFileSync(file, 'utf8').includes('liveness-probe.js');
const groups = [
  { files: files.filter((f) => !timesTheLoop(f)), concurrency: process.env.TEST_CONCURRENCY ?? 2 },
  { files: files.filter(timesTheLoop), concurrency: 1 },
].filter((group) => group.files.length > 0);

console.log(`Running ${files.length} test files on Node ${process.version} (${process.execPath})`);
let status = 0;
for (const group of groups) {
  const args = [
    // isolated-vm's README requires it from Node 20 on (V8's shared read-only heap crashes isolates
    // built without Node's snapshot); the sandbox worker processes get it through execArgv too.
    '--no-node-snapshot',
    '--enable-source-maps',
    '--test',
    `--test-concurrency=${group.concurrency}`,
    ...(process.env.TEST_REPORTER ? [`--test-reporter=${process.env.TEST_REPORTER}`] : []),
    ...group.files,
  ];
  const result = spawnSync(process.execPath, args, {
    stdio: 'inherit',
    env: { NODE_ENV: 'test', ...process.env },
  });
  if (result.status !== 0) status = result.status ?? 1;
}
process.exit(status);
