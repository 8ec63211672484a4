// Fails loudly when a native module in node_modules cannot load on the running Node: compiled at
// install for another ABI (npm's nodedir pointing at older headers does that) or with no prebuilt
// binary for this platform. Run by .ci/run after `npm ci`; `node scripts/check-native-modules.mjs`.
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');

/** Folders of installed packages, scoped ones included. */
function packages(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    if (!entry.isDirectory() || entry.name.startsWith('.')) return [];
    const full = path.join(dir, entry.name);
    if (entry.name.startsWith('@')) return packages(full);
    return [full, ...packages(path.join(full, 'node_modules'))];
  });
}

/** Native .node files below `dir` that an install step built (not shipped prebuilt ones). */
function builtAddons(dir) {
  const out = [];
  const walk = (d) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const full = path.join(d, entry.name);
      if (entry.isDirectory() && entry.name !== 'node_modules') walk(full);
      else if (entry.isFile() && entry.name.endsWith('.node')) out.push(full);
    }
  };
  if (existsSync(path.join(dir, 'build'))) walk(path.join(dir, 'build'));
  return out;
}

const native = packages(path.join(root, 'node_modules')).filter((dir) => {
  const manifest = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
  return manifest.gypfile === true || existsSync(path.join(dir, 'binding.gyp'));
});

const failures = [];
for (const dir of native) {
  const name = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')).name;
  // Each in its own process: a module of the wrong ABI may abort rather than throw.
  const checks = [
    ['require', `require(${JSON.stringify(dir)})`],
    ...builtAddons(dir).map((file) => [
      path.relative(root, file),
      `process.dlopen({ exports: {} }, ${JSON.stringify(file)})`,
    ]),
  ];
  for (const [what, code] of checks) {
    const result = spawnSync(process.execPath, ['--no-node-snapshot', '-e', code], { encoding: 'utf8' });
    if (result.status !== 0) {
      const reason = result.stderr.match(/^\w*Error: .*$/m)?.[0] ?? `exit ${result.status ?? result.signal}`;
      failures.push(`${name} (${what}): ${reason.trim()}`);
    }
  }
  console.log(`native module ${name}: ${failures.some((f) => f.startsWith(`${name} `)) ? 'FAILS' : 'loads'}`);
}

if (failures.length > 0) {
  console.error(
    `\nNative modules that do not load on Node ${process.version} (ABI ${process.versions.modules}):\n` +
      failures.map((f) => `  - ${f}`).join('\n') +
      '\nA module compiled at install against other headers (npm config get nodedir) has the wrong ABI: ' +
      'remove node_modules and install again on this Node, with prebuilt binaries.',
  );
  process.exit(1);
}
console.log(
  `native modules: ${native.length} checked on Node ${process.version} (ABI ${process.versions.modules})`,
);
