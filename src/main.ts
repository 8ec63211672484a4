import { exitIfUnsupportedNode } from './config/node-version.js';

// Checked before the server (and isolated-vm, a native module) is imported.
exitIfUnsupportedNode();
const { runServer } = await import('./app/run-server.js');
runServer().catch((error: unknown) => {
  console.error('Server failed to start:', error instanceof Error ? error.message : error);
  process.exit(1);
});
