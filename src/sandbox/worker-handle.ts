import { fork, type ChildProcess } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import {
  WORKER_CONFIG_ENV,
  createBatchedSender,
  unbatch,
  type BatchMessage,
  type ParentToWorker,
  type StampedWrite,
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
export function workerNodeFlags(v8PoolSize = 1, maxMemoryMb = 512): string[] {
  return [
    '--no-node-snapshot',
    `--v8-pool-size=${Math.max(0, Math.floor(v8PoolSize))}`,
    // V8's cap on one wasm memory (64 KiB pages), process-wide: a memory the addon's module defines
    // and grows from wasm code never passes the platform's memory cap (the bootstrap counts the rest).
    `--wasm-max-mem-pages=${Math.max(1, Math.floor(maxMemoryMb) * 16)}`,
    // Gives each context a `gc` the bootstrap takes for itself: a refused wasm allocation first
    // collects the memories the addon dropped.
    '--expose-gc',
  ];
}

/** Bytes of WebAssembly memory one version held on one site, as its bootstrap last reported. */
export interface WasmMemoryReport {
  readonly versionId: string;
  readonly siteId: string;
  readonly addonId: string;
  readonly addonName: string;
  readonly version: string;
  bytes: number;
}

/** Reports a worker keeps (the oldest is forgotten beyond this). */
const MAX_WASM_REPORTS = 10_000;

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
  /** performance.now() of the last message from the worker: a silent worker is a stalled one. */
  lastMessageAt = performance.now();
  /** Set when the supervisor stopped this worker; its calls were settled or retried then. */
  killed = false;
  /** WebAssembly memory by version and site (see WasmMemoryReport). */
  readonly wasmReports = new Map<string, WasmMemoryReport>();
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
    this.child.on('message', (message: StampedWrite<WorkerToParent>) => {
      // When the worker wrote it: a message read late must not make a silent worker look alive
      // after calls sent to it meanwhile (they would look as if it had started them).
      const now = performance.now();
      this.lastMessageAt =
        typeof message.at === 'number' ? Math.min(now, message.at - performance.timeOrigin) : now;
      unbatch(message, (item) => onMessage(this, item));
    });
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
    // The channel closes before 'exit' arrives: no call is routed here from then on.
    this.child.on('disconnect', () => {
      this.ready = false;
    });
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

  /** Records what a version's bootstrap reported of its WebAssembly memory on one site. */
  noteWasmMemory(report: WasmMemoryReport): void {
    const key = `${report.versionId}\u0000${report.siteId}`;
    this.wasmReports.delete(key);
    this.wasmReports.set(key, report);
    if (this.wasmReports.size > MAX_WASM_REPORTS) {
      this.wasmReports.delete(this.wasmReports.keys().next().value!);
    }
  }

  /** The version and site holding the most WebAssembly memory here, if any reported some. */
  largestWasmHolder(): WasmMemoryReport | null {
    let largest: WasmMemoryReport | null = null;
    for (const report of this.wasmReports.values()) {
      if (report.bytes > 0 && (largest === null || report.bytes > largest.bytes)) largest = report;
    }
    return largest;
  }

  /** Kills the process; from now on no call is routed here, even before its 'exit' arrives. */
  kill(): void {
    this.killed = true;
    this.ready = false;
    if (!this.exited) this.child.kill('SIGKILL');
  }
}
