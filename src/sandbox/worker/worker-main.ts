/**
 * Entry point of a sandbox worker process (forked by the pool with `--no-node-snapshot`). Wires
 * {@link SandboxWorker} to IPC; exits with its parent.
 */
import { performance } from 'node:perf_hooks';
import {
  LOAD_REPORT_MS,
  WORKER_CONFIG_ENV,
  createBatchedSender,
  unbatch,
  type BatchMessage,
  type ParentToWorker,
  type StampedWrite,
  type WorkerConfig,
  type WorkerToParent,
} from '../protocol.js';
import { SandboxWorker } from './sandbox-worker.js';

const STATS_INTERVAL_MS = 1000;

function readConfig(): WorkerConfig {
  const raw = process.env[WORKER_CONFIG_ENV];
  if (raw === undefined)
    throw new Error(`${WORKER_CONFIG_ENV} is not set; this file is started by SandboxPool.`);
  return JSON.parse(raw) as WorkerConfig;
}

if (typeof process.send !== 'function') {
  process.stderr.write('sandbox worker: must be started with an IPC channel (child_process.fork).\n');
  process.exit(1);
}

const write = createBatchedSender<WorkerToParent>((message) => {
  const stamped: StampedWrite<WorkerToParent> = {
    ...message,
    at: performance.timeOrigin + performance.now(),
  };
  if (process.connected) process.send!(stamped);
});
let loadSince = performance.eventLoopUtilization();
let loadReportedAt = 0;
/** Sends a message; results also carry the event loop's load now and then (see LoadMessage). */
function send(message: WorkerToParent): void {
  write(message);
  if (message.t !== 'result') return;
  const now = performance.now();
  if (now - loadReportedAt < LOAD_REPORT_MS) return;
  const current = performance.eventLoopUtilization();
  write({ t: 'load', busy: performance.eventLoopUtilization(current, loadSince).utilization });
  loadSince = current;
  loadReportedAt = now;
}
const worker = new SandboxWorker(readConfig(), send);

process.on('message', (message: ParentToWorker | BatchMessage<ParentToWorker>) => unbatch(message, receive));

function receive(message: ParentToWorker): void {
  switch (message.t) {
    case 'exec':
      worker.execute(message);
      break;
    case 'cap-result':
      worker.capabilityResult(message);
      break;
    case 'shutdown':
      worker.shutdown();
      process.disconnect();
      break;
  }
}
// Orphaned workers must not linger.
process.on('disconnect', () => {
  worker.shutdown();
  process.exit(0);
});

setInterval(() => send(worker.stats()), STATS_INTERVAL_MS).unref();
send({ t: 'ready' });
