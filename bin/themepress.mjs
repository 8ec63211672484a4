#!/usr/bin/env node
// The `themepress` command (package.json "bin"). The CLI is TypeScript compiled to dist/ by
// `npm run build`; this file only finds it, so `npx themepress` works from any folder.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const entry = new URL('../dist/src/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(entry))) {
  const root = fileURLToPath(new URL('..', import.meta.url));
  process.stderr.write(
    `themepress: the CLI is not built (${fileURLToPath(entry)} is missing).\n` +
      `Run "npm run build" in ${root} first.\n`,
  );
  process.exit(1);
}
// Before the CLI (and isolated-vm, a native module) is imported: an old Node gets a sentence.
const { exitIfUnsupportedNode } = await import(
  new URL('../dist/src/config/node-version.js', import.meta.url).href
);
exitIfUnsupportedNode();
const { main } = await import(entry.href);
await main(process.argv.slice(2));
