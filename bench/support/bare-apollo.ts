import { fork, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * Starts the bare Apollo Server reference (`bare-apollo-server.ts`: the design with nothing
 * of this server's in it) in its own process; resolves with its URL and the process.
 */
export async function startBareApollo(): Promise<{ url: string; child: ChildProcess }> {
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'bare-apollo-server.js');
  const child = fork(script, [], { stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  const url = await new Promise<string>((resolve) =>
    child.once('message', (m) => resolve((m as { url: string }).url)),
  );
  return { url, child };
}
