import { exitIfUnsupportedNode } from '../config/node-version.js';

// Checked before the CLI (which runs addons in isolated-vm, a native module) is imported.
exitIfUnsupportedNode();
const { main } = await import('../cli/main.js');
/** `npm run seed [-- options]`: the same as `themepress seed [options]`. */
await main(['seed', ...process.argv.slice(2)]);
