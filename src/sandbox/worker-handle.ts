import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import {
  WORKER_CONFIG_ENV,
  createBatchedSender,
  unbatch,
  type BatchMessage,
  type ParentToWorker,
  type StatsMessage,
  type WorkerConfig,
  type WorkerToParent,
} from './protocol.js';

/** Compiled worker entry, next to this file in dist. */
export const WORKER_ENTRY = fileURLToPath(new URL('./worker/worker-main.js', import.meta.url));

/**
 * Node flags of a sandbox worker process. isolated-vm needs `--no-node-snapshot`. `--v8-pool-size`
 * sets V8's background threads for concurrent GC and compilation (Node's default is 4); the default
 * here is 1. On a small machine the API process, the workers, PostgreSQL and Redis share a few cores,
 * and a major GC marking on four threads per process takes them all at once while calls wait: with
 * one thread here and on the API process, an open loop of 1000 executions/s had a p99.9 of
 * 6.9–11.9 ms instead of 14.4–26.7 ms, side by side on 2 cores (`npm run bench -- node-flags`).
 * On a machine with cores to spare, a larger pool shortens major GCs instead.
 */
export function workerNodeFlags(v8PoolSize = 1): string[] {
  return ['--no-node-snapshot', `--v8-pool-size=${Math.max(0, Math.floor(v8PoolSize))}`];
}

/** One worker process as the parent sees it. */
export class WorkerHandle {
  readonly child: ChildProcess;
  ready = false;
  exited = false;
  /** Versions whose code the worker holds, so the next call can skip sending it. */
  readonly knownVersions = new Set<string>();
  /** Calls sent to this worker and not answered yet, by exec id, oldest first. */
  readonly inFlight = new Map<number, { readonly sentAt: number }>();
  lastStats: StatsMessage | null = null;
  /** The worker's last reported event-loop load (0 to 1; see LoadMessage). */
  load = 0;
  /** The version whose call missed its deadline and got this worker killed: its crash's culprit. */
  killedForVersion: string | null = null;
  readonly readyPromise: Promise<void>;

  constructor(
    readonly slot: number,
    config: WorkerConfig,
    nodeFlags: readonly string[],
    onMessage: (handle: WorkerHandle, message: WorkerToParent) => void,
    onExit: (handle: WorkerHandle, code: number | null, signal: NodeJS.Signals | null) => void,
  ) {
    this.child = fork(WORKER_ENTRY, [], {
      execArgv: [...nodeFlags],
      serialization: 'json',
      env: { ...process.env, [WORKER_CONFIG_ENV]: JSON.stringify(config) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.readyPromise = new Promise<void>((resolve, reject) => {
      this.child.once('exit', (code, signal) =>
        reject(
          new Error(`sandbox worker ${slot} exited before it was ready (code ${code}, signal ${signal})`),
        ),
      );
      this.child.on('message', (message: WorkerToParent | BatchMessage<WorkerToParent>) =>
        unbatch(message, (item) => {
          if (item.t === 'ready' && !this.ready) {
            this.ready = true;
            resolve();
          }
        }),
      );
    });
    this.readyPromise.catch(() => undefined);
    this.child.on('message', (message: WorkerToParent | BatchMessage<WorkerToParent>) =>
      unbatch(message, (item) => onMessage(this, item)),
    );
    this.write = createBatchedSender<ParentToWorker>((message) => {
      // Messages queued for a worker that died meanwhile are dropped: its calls fail on 'exit'.
      if (!this.exited && this.child.connected) this.child.send(message);
    });
    this.child.on('exit', (code, signal) => {
      this.exited = true;
      this.ready = false;
      onExit(this, code, signal);
    });
    // An IPC error (e.g. the channel closing mid-send) is followed by 'exit'; handled there.
    this.child.on('error', () => undefined);
  }

  get pid(): number | null {
    return this.child.pid ?? null;
  }

  private readonly write: (message: ParentToWorker) => void;

  /** How long ago (ms, from performance.now() `now`) the oldest call in flight was sent; 0 when idle. */
  oldestCallAge(now: number): number {
    // A Map iterates in insertion order and answered calls are deleted: the first is the oldest.
    const oldest = this.inFlight.values().next();
    return oldest.done === true ? 0 : now - oldest.value.sentAt;
  }

  /** Queues a message for this turn's write; false when the worker is gone. */
  send(message: ParentToWorker): boolean {
    if (this.exited || !this.child.connected) return false;
    this.write(message);
    return true;
  }

  /** Kills the process; from now on no call is routed here, even before its 'exit' arrives. */
  kill(): void {
    this.ready = false;
    if (!this.exited) this.child.kill('SIGKILL');
  }
}
