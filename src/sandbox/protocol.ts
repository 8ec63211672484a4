/**
 * Messages between the pool (parent) and its worker processes, sent over Node's IPC channel with
 * `serialization: 'json'`: every message is plain JSON (the wasm binary travels as base64). Node's
 * 'advanced' (structured clone) mode was measured at more than twice the CPU per message on each
 * side, and 70-100 microseconds more per round trip. Values the addon produced travel as JSON
 * strings and are parsed only by whoever needs them.
 */
import type { AddonLimits, EntryKind, LogEntry } from './types.js';

/** Code of a version, sent with the first call a worker gets for it (and again if it asks). */
export interface WireSource {
  addonId: string;
  addonName: string;
  version: string;
  source: string;
  /** The version's WebAssembly module, base64-encoded. */
  wasmBase64: string | null;
}

/** What the isolate's bootstrap receives for one call (copied into the isolate). */
export interface CallMeta {
  execId: number;
  kind: EntryKind;
  name: string;
  siteId: string;
  installationId: string | null;
  addonName: string;
  version: string;
  requestId: string | null;
  callDepth: number;
  maxOutputChars: number;
  maxLogChars: number;
}

export interface ExecMessage {
  t: 'exec';
  id: number;
  versionId: string;
  /** Present when the parent thinks the worker lacks this version's code. */
  source: WireSource | null;
  limits: AddonLimits;
  meta: CallMeta;
  inputJson: string;
  configJson: string;
  /** Report the isolate's used heap after the call (local runs of the CLI). */
  measureHeap?: boolean;
  /**
   * The parent's start policy lets this call start on the worker's thread (see `start-policy.ts`);
   * the worker still starts it on isolated-vm's pool when the isolate may be busy.
   */
  startSync?: boolean;
}

export type CapResultMessage =
  | { t: 'cap-result'; capId: number; ok: true; valueJson: string }
  | { t: 'cap-result'; capId: number; ok: false; code: string; message: string };

export interface ShutdownMessage {
  t: 'shutdown';
}

export type ParentToWorker = ExecMessage | CapResultMessage | ShutdownMessage;

export interface WorkerConfig {
  workerId: number;
  /** Isolates this worker keeps at most (a count cap beside the memory budget). */
  maxIsolates: number;
  /** Measured memory (heap + external) of this worker's isolates kept at most, in MB. */
  isolateMemoryBudgetMb: number;
  idleIsolateMs: number;
  allowCrashTest: boolean;
}

export interface ReadyMessage {
  t: 'ready';
}

export type ResultMessage =
  | {
      t: 'result';
      id: number;
      ok: true;
      outputJson: string;
      logs: LogEntry[];
      logsTruncated: boolean;
      durationMs: number;
      cpuTimeMs: number;
      cold: boolean;
      /** With `measureHeap`: the isolate's used heap after the call, in bytes. */
      heapUsedBytes?: number;
      /** How the call started, for the parent's start policy (see {@link StartReport}). */
      start?: StartReport;
    }
  | {
      t: 'result';
      id: number;
      ok: false;
      code: string;
      message: string;
      /** What the addon logged before it failed, when its call ended with an error it returned. */
      logs?: LogEntry[];
      logsTruncated?: boolean;
    }
  | { t: 'need-source'; id: number };

/**
 * What a worker tells the parent about how one call started: the isolate's CPU time its start took
 * (ms; on the pool, with whatever else that isolate ran meanwhile), and whether a synchronous start
 * or continuation ran past the worker's synchronous slice and was cut (then retried on the pool).
 */
export interface StartReport {
  cpuMs: number;
  overran: boolean;
}

export interface CapRequestMessage {
  t: 'cap';
  id: number;
  capId: number;
  op: string;
  argsJson: string;
}

export interface EvictedMessage {
  t: 'evicted';
  versionIds: string[];
}

export interface StatsMessage {
  t: 'stats';
  isolates: number;
  contexts: number;
  reservedMemoryMb: number;
  /** Measured memory of the isolates (heap + external, last sample of each), in bytes. */
  isolateMemoryBytes: number;
  /** The budget {@link isolateMemoryBytes} is kept within, in bytes. */
  isolateMemoryBudgetBytes: number;
  rssBytes: number;
  activeCalls: number;
}

/**
 * How busy the worker's event loop was since its previous report (0 to 1): sent with results, at
 * most every LOAD_REPORT_MS, so the parent can tell a worker with room from a saturated one.
 */
export interface LoadMessage {
  t: 'load';
  busy: number;
}

/** Shortest time between two {@link LoadMessage}s of a worker. */
export const LOAD_REPORT_MS = 5;

export type WorkerToParent =
  ReadyMessage | ResultMessage | CapRequestMessage | EvictedMessage | StatsMessage | LoadMessage;

/**
 * What a worker writes to its channel: a message or a batch, stamped with when it was written
 * (`performance.timeOrigin + performance.now()`, ms since the epoch), so the parent dates the
 * worker's last sign of life by the worker's clock, not by when its own busy loop got to read it.
 */
export type StampedWrite<M> = (M | BatchMessage<M>) & { at?: number };

/** Several messages sent as one IPC write (see {@link createBatchedSender}). */
export interface BatchMessage<M> {
  t: 'batch';
  messages: M[];
}

/**
 * Queues messages and writes them at the end of the event-loop turn: one IPC write (one wake-up
 * of the other process, one deserialisation there) carries every message of the turn. The wait
 * is the rest of the current turn (the check phase follows the poll phase that produced the
 * messages). Writing an idle sender's first message at once was tried: under load it doubled the
 * writes (the first of a turn, then the rest), the wake-ups of a 2-core machine being the cost,
 * with no latency gain that a sequential benchmark could tell from noise.
 */
export function createBatchedSender<M>(write: (message: M | BatchMessage<M>) => void): (message: M) => void {
  let queue: M[] = [];
  const endOfTurn = () => {
    const messages = queue;
    queue = [];
    write(messages.length === 1 ? messages[0] : { t: 'batch', messages });
  };
  return (message) => {
    if (queue.push(message) === 1) setImmediate(endOfTurn);
  };
}

/** Calls `handle` for a message, or for each message of a batch, in order. */
export function unbatch<M>(message: M | BatchMessage<M>, handle: (message: M) => void): void {
  if ((message as BatchMessage<M>).t === 'batch') {
    for (const item of (message as BatchMessage<M>).messages) handle(item);
  } else {
    handle(message as M);
  }
}

/** Environment variable that carries the JSON {@link WorkerConfig} to a forked worker. */
export const WORKER_CONFIG_ENV = 'THEMEPRESS_SANDBOX_WORKER_CONFIG';
