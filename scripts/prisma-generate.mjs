// Runs `prisma generate` without letting the CLI download its schema-engine binary.
// The generator never executes that binary, so pointing the CLI at any existing file is enough
// (see shared toolchain notes); migrations use the WebAssembly engine instead.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';

const require = createRequire(import.meta.url);
let cli;
try {
  cli = require.resolve('prisma/package.json').replace(/package\.json$/, 'build/index.js');
} catch {
  // Production installs without devDependencies use the client generated at build time.
  console.log('prisma CLI not installed; skipping prisma generate');
  process.exit(0);
}
if (!existsSync('prisma/schema.prisma')) process.exit(0);
const env = {
  ...process.env,
  PRISMA_SCHEMA_ENGINE_BINARY: process.env.PRISMA_SCHEMA_ENGINE_BINARY ?? process.execPath,
  PRISMA_HIDE_UPDATE_MESSAGE: '1',
  CHECKPOINT_DISABLE: '1',
};
const result = spawnSync(process.execPath, [cli, 'generate'], { stdio: 'inherit', env });
process.exit(result.status ?? 1);
