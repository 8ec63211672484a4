import { spawn, type ChildProcess } from 'node:child_process';
import { Redis } from 'ioredis';
import { freePort } from './free-port.js';

/** A Redis server of a test's own, on a free port, to kill, restart or pause (never the shared one). */
export interface OwnRedis {
  url: string;
  /** SIGKILL: connections drop, nothing is kept. */
  kill(): Promise<void>;
  /** Starts a new server on the same port (after {@link kill}); resolves once it answers. */
  restart(): Promise<void>;
  /** SIGSTOP: connections stay open, commands go unanswered, data is kept. */
  pause(): void;
  /** SIGCONT. */
  resume(): void;
  stop(): Promise<void>;
}

function startServer(port: number): ChildProcess {
  return spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: 'ignore' },
  );
}

async function untilAnswering(port: number): Promise<void> {
  const probe = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 0 });
  probe.on('error', () => undefined);
  try {
    for (let attempt = 0; ; attempt += 1) {
      try {
        if (probe.status !== 'ready') await probe.connect();
        await probe.ping();
        return;
      } catch (error) {
        if (attempt > 200) throw error;
        probe.disconnect();
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
    }
  } finally {
    probe.disconnect();
  }
}

function exited(server: ChildProcess): Promise<void> {
  if (server.exitCode !== null || server.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => server.once('exit', () => resolve()));
}

export async function startOwnRedis(): Promise<OwnRedis> {
  const port = await freePort();
  let server = startServer(port);
  await untilAnswering(port);
  return {
    url: `redis://127.0.0.1:${port}`,
    async kill() {
      server.kill('SIGKILL');
      await exited(server);
    },
    async restart() {
      server = startServer(port);
      await untilAnswering(port);
    },
    pause: () => void server.kill('SIGSTOP'),
    resume: () => void server.kill('SIGCONT'),
    async stop() {
      server.kill('SIGCONT');
      server.kill('SIGKILL');
      await exited(server);
    },
  };
}
