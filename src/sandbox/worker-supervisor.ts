import { performance } from 'node:perf_hooks';
import { ErrorCode } from '../errors/index.js';
import type { CapabilityEnv } from './capabilities/index.js';
import type {
  CallMeta,
  CapRequestMessage,
  CapResultMessage,
  ResultMessage,
  WireSource,
  WorkerConfig,
  WorkerToParent,
} from './protocol.js';
import { SandboxError, sandboxErrorFromWire } from './sandbox-error.js';
import type { AddonLimits, SandboxLogger, SandboxWorkerStats } from './types.js';
import { WorkerHandle } from './worker-handle.js';

/** Extra time a worker gets beyond a call's wall limit before the parent kills it. */
export const DEADLINE_GRACE_MS = 2000;
/** Calls in flight a worker takes before a version's calls spill over to the next worker (see `pick`). */
export const PACK_LIMIT = 16;
/** A worker whose oldest call in flight was sent this long ago is passed over (see `pick`). */
export const SPILL_AFTER_MS = 4;
/**
 * A worker with BUSY_QUEUE calls in flight whose event loop was busy BUSY_LOAD of the time or more
 * is passed over (see `pick`).
 */
export const BUSY_QUEUE = 4;
export const BUSY_LOAD = 0.5;
/** Crashes within `CRASH_WINDOW_MS` after which replacements are delayed, so a crash loop cannot spin. */
const CRASH_STORM_COUNT = 5;
const CRASH_WINDOW_MS = 10_000;
const CRASH_STORM_DELAY_MS = 1000;
const READY_TIMEOUT_MS = 15_000;

/** One call as the supervisor dispatches it. */
export interface DispatchJob {
  versionId: string;
  /** Called only when the chosen worker does not hold the version's code yet. */
  source: () => WireSource;
  limits: AddonLimits;
  meta: Omit<CallMeta, 'execId'>;
  inputJson: string;
  configJson: string;
  env: CapabilityEnv;
  measureHeap?: boolean;
  /** The parent's start policy lets this call start on the worker's thread. */
  startSync?: boolean;
}

export type SuccessMessage = Extract<ResultMessage, { ok: true }>;

/** A call sent to a worker and not answered yet. */
export interface InFlightCall {
  readonly execId: number;
  /** performance.now() when it was dispatched. */
  readonly sentAt: number;
  readonly job: DispatchJob;
  readonly worker: WorkerHandle;
  settled: boolean;
  /** Capability requests answered or pending for this call. */
  capTotal: number;
  sourceResent: boolean;
  readonly resolve: (value: { message: SuccessMessage; workerId: number }) => void;
  readonly reject: (err: Error) => void;
  readonly deadline: NodeJS.Timeout;
}

export interface WorkerSupervisorOptions {
  workers: number;
  /** Default SPILL_AFTER_MS. */
  spillAfterMs?: number;
  /** Node flags of the worker processes (see `workerNodeFlags`). */
  nodeFlags: readonly string[];
  workerConfig: (slot: number) => WorkerConfig;
  logger: SandboxLogger;
  onCapability: (call: InFlightCall, request: CapRequestMessage) => Promise<CapResultMessage>;
}

/**
 * Owns the worker processes: forks them, routes each call to a worker (warm one first, else least
 * busy), enforces a hard deadline per call, and replaces a worker that dies, failing its in-flight
 * calls with SANDBOX_CRASHED.
 */
export class WorkerSupervisor {
  crashes = 0;
  private readonly slots: (WorkerHandle | null)[];
  private readonly calls = new Map<number, InFlightCall>();
  private nextExecId = 1;
  private closing = false;
  private readonly crashTimes: number[] = [];
  private readyWaiters: (() => void)[] = [];
  private readonly respawnTimers = new Set<NodeJS.Timeout>();

  private readonly spillAfterMs: number;

  constructor(private readonly opts: WorkerSupervisorOptions) {
    this.spillAfterMs = opts.spillAfterMs ?? SPILL_AFTER_MS;
    this.slots = new Array<WorkerHandle | null>(opts.workers).fill(null);
  }

  /** Forks every worker and waits until each reports ready. */
  async start(): Promise<void> {
    const handles = this.slots.map((_, slot) => this.spawn(slot));
    await withTimeout(
      Promise.all(handles.map((h) => h.readyPromise)),
      READY_TIMEOUT_MS,
      'sandbox workers did not start in time',
    );
  }

  /** Sends a call to a worker; resolves with its successful result or rejects with a SandboxError. */
  async dispatch(job: DispatchJob): Promise<{ message: SuccessMessage; workerId: number }> {
    let worker = this.pick(job.versionId);
    if (worker === null) {
      await this.waitForReady(READY_TIMEOUT_MS);
      worker = this.pick(job.versionId);
    }
    if (worker === null || this.closing) {
      throw new SandboxError(ErrorCode.ServiceUnavailable, 'No sandbox worker is available.');
    }
    const chosen = worker;
    const execId = this.nextExecId++;
    return new Promise((resolve, reject) => {
      const call: InFlightCall = {
        execId,
        sentAt: performance.now(),
        job,
        worker: chosen,
        settled: false,
        capTotal: 0,
        sourceResent: false,
        resolve,
        reject,
        deadline: setTimeout(() => this.onDeadline(call), job.limits.timeoutMs + DEADLINE_GRACE_MS),
      };
      this.calls.set(execId, call);
      chosen.inFlight.set(execId, call);
      this.sendExec(call, !chosen.knownVersions.has(job.versionId));
    });
  }

  stats(): SandboxWorkerStats[] {
    return this.slots.map((handle, slot) => ({
      id: slot,
      pid: handle?.pid ?? null,
      ready: handle?.ready ?? false,
      inFlight: handle?.inFlight.size ?? 0,
      isolates: handle?.lastStats?.isolates ?? 0,
      contexts: handle?.lastStats?.contexts ?? 0,
      reservedMemoryMb: handle?.lastStats?.reservedMemoryMb ?? 0,
      isolateMemoryBytes: handle?.lastStats?.isolateMemoryBytes ?? 0,
      isolateMemoryBudgetBytes: handle?.lastStats?.isolateMemoryBudgetBytes ?? 0,
      rssBytes: handle?.lastStats?.rssBytes ?? 0,
    }));
  }

  /** Stops every worker; calls still in flight fail with SERVICE_UNAVAILABLE. */
  async close(): Promise<void> {
    this.closing = true;
    for (const timer of this.respawnTimers) clearTimeout(timer);
    this.respawnTimers.clear();
    for (const call of [...this.calls.values()]) {
      this.settle(call, new SandboxError(ErrorCode.ServiceUnavailable, 'The sandbox pool is closing.'));
    }
    const exits = this.slots.map(async (handle) => {
      if (handle === null || handle.exited) return;
      const exited = new Promise<void>((resolve) => handle.child.once('exit', () => resolve()));
      handle.send({ t: 'shutdown' });
      const timer = setTimeout(() => handle.kill(), 2000);
      await exited;
      clearTimeout(timer);
    });
    await Promise.all(exits);
    for (const wake of this.readyWaiters) wake();
    this.readyWaiters = [];
  }

  private spawn(slot: number): WorkerHandle {
    const handle = new WorkerHandle(
      slot,
      this.opts.workerConfig(slot),
      this.opts.nodeFlags,
      (h, message) => this.onMessage(h, message),
      (h, code, signal) => this.onExit(h, code, signal),
    );
    this.slots[slot] = handle;
    handle.readyPromise.then(
      () => {
        const waiters = this.readyWaiters;
        this.readyWaiters = [];
        for (const wake of waiters) wake();
      },
      () => undefined,
    );
    return handle;
  }

  /**
   * Packs a version's calls onto one worker, its home (a hash of the version id spreads versions
   * over the workers), while that worker has room. The next worker in line gets the call when the
   * home already has PACK_LIMIT calls in flight, its oldest call in flight was sent SPILL_AFTER_MS
   * ago or more (a slow or spinning addon, or calls waiting on the host: quick calls must not queue
   * behind them), or it has BUSY_QUEUE calls in flight and its event loop reported being busy
   * BUSY_LOAD of the time (it is the bottleneck: spreading uses the other cores; in the in-process
   * pool benchmark, 10 callers, this took the pool from 0.79x to 0.99x the throughput of one HTTP
   * process per addon). When no worker has room, the least busy one.
   *
   * Why pack: a worker process that sleeps between calls pays a wake-up for each message it is
   * woken for, which on small machines costs more CPU than a quick call. Side by side on 2 cores
   * over HTTP, against sending every call to the least busy worker: worker CPU per call ~110 ->
   * ~80-90 µs, and the API process's ~320-340 -> ~300 µs.
   */
  private pick(versionId: string): WorkerHandle | null {
    const home = homeSlot(versionId, this.slots.length);
    return pickWorker(this.slots, home, performance.now(), this.spillAfterMs);
  }

  private waitForReady(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(resolve, timeoutMs);
      this.readyWaiters.push(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  private sendExec(call: InFlightCall, withSource: boolean): void {
    const { job, worker } = call;
    const source = withSource ? job.source() : null;
    if (withSource) worker.knownVersions.add(job.versionId);
    const sent = worker.send({
      t: 'exec',
      id: call.execId,
      versionId: job.versionId,
      source,
      limits: job.limits,
      meta: { ...job.meta, execId: call.execId },
      inputJson: job.inputJson,
      configJson: job.configJson,
      ...(job.measureHeap ? { measureHeap: true } : {}),
      ...(job.startSync ? { startSync: true } : {}),
    });
    if (!sent) {
      this.settle(call, new SandboxError(ErrorCode.SandboxCrashed, 'The sandbox worker is not reachable.'));
    }
  }

  private onMessage(handle: WorkerHandle, message: WorkerToParent): void {
    switch (message.t) {
      case 'result':
      case 'need-source': {
        const call = this.calls.get(message.id);
        if (call === undefined || call.worker !== handle) return;
        if (message.t === 'need-source') {
          if (call.sourceResent) {
            this.settle(
              call,
              new SandboxError(ErrorCode.SandboxCrashed, 'The sandbox worker lost the addon code.'),
            );
          } else {
            call.sourceResent = true;
            this.sendExec(call, true);
          }
        } else if (message.ok) {
          this.settle(call, null, message);
        } else {
          const error = sandboxErrorFromWire(message.code, message.message);
          if (Array.isArray(message.logs)) {
            error.logs = message.logs;
            error.logsTruncated = message.logsTruncated === true;
          }
          this.settle(call, error);
        }
        return;
      }
      case 'cap': {
        const call = this.calls.get(message.id);
        // A request for a call that is over goes unanswered; the worker drops it too.
        if (call === undefined || call.worker !== handle || call.settled) return;
        call.capTotal += 1;
        this.opts.onCapability(call, message).then(
          (reply) => {
            if (!call.settled) handle.send(reply);
          },
          (err: unknown) => this.opts.logger.error({ err }, 'sandbox capability dispatch failed'),
        );
        return;
      }
      case 'evicted':
        for (const versionId of message.versionIds) handle.knownVersions.delete(versionId);
        return;
      case 'stats':
        handle.lastStats = message;
        return;
      case 'load':
        handle.load = message.busy;
        return;
      case 'ready':
        return;
    }
  }

  private onExit(handle: WorkerHandle, code: number | null, signal: NodeJS.Signals | null): void {
    if (this.slots[handle.slot] === handle) this.slots[handle.slot] = null;
    const inFlight = [...handle.inFlight.values()] as InFlightCall[];
    if (!this.closing) {
      this.crashes += 1;
      this.opts.logger.error(
        { workerSlot: handle.slot, pid: handle.pid, code, signal, inFlight: inFlight.length },
        'sandbox worker exited; replacing it',
      );
    }
    const versions = new Set(inFlight.map((call) => call.job.versionId));
    const culprit = handle.killedForVersion ?? (versions.size === 1 ? [...versions][0] : null);
    for (const call of inFlight) {
      const error = new SandboxError(
        ErrorCode.SandboxCrashed,
        `The sandbox worker running this call stopped (${signal ?? `exit code ${code}`}).`,
      );
      error.blamed = call.job.versionId === culprit;
      this.settle(call, error);
    }
    if (this.closing) return;
    const now = Date.now();
    this.crashTimes.push(now);
    while (this.crashTimes.length > 0 && this.crashTimes[0] < now - CRASH_WINDOW_MS) this.crashTimes.shift();
    const delay = this.crashTimes.length >= CRASH_STORM_COUNT ? CRASH_STORM_DELAY_MS : 0;
    const respawn = () => {
      if (!this.closing && this.slots[handle.slot] === null) this.spawn(handle.slot);
    };
    if (delay === 0) respawn();
    else {
      const timer = setTimeout(() => {
        this.respawnTimers.delete(timer);
        respawn();
      }, delay);
      this.respawnTimers.add(timer);
    }
  }

  private onDeadline(call: InFlightCall): void {
    if (call.settled) return;
    this.opts.logger.warn(
      { workerSlot: call.worker.slot, addonId: call.job.env.scope.addonId, execId: call.execId },
      'sandbox worker missed a call deadline; killing it',
    );
    this.settle(
      call,
      new SandboxError(
        ErrorCode.ExecutionTimeout,
        `The addon did not finish within its wall-time limit of ${call.job.limits.timeoutMs} ms.`,
      ),
    );
    call.worker.killedForVersion ??= call.job.versionId;
    call.worker.kill();
  }

  private settle(call: InFlightCall, error: Error | null, message?: SuccessMessage): void {
    if (call.settled) return;
    call.settled = true;
    clearTimeout(call.deadline);
    this.calls.delete(call.execId);
    call.worker.inFlight.delete(call.execId);
    if (error !== null) call.reject(error);
    else call.resolve({ message: message!, workerId: call.worker.slot });
  }
}

/** What routing reads of a worker (a {@link WorkerHandle}; plain objects in tests). */
export interface RoutableWorker {
  readonly ready: boolean;
  readonly inFlight: { readonly size: number };
  /** The worker's last reported event-loop load, 0 to 1. */
  readonly load: number;
  oldestCallAge(now: number): number;
}

/**
 * The routing rule of {@link WorkerSupervisor} (see its `pick`), as a pure function of the
 * workers' state: starting at the version's home slot, the first ready worker that is idle, or
 * that has room (under PACK_LIMIT calls in flight, not saturated, oldest call younger than
 * `spillAfterMs`); else the least busy ready worker; null when none is ready.
 */
export function pickWorker<W extends RoutableWorker>(
  slots: readonly (W | null)[],
  home: number,
  now: number,
  spillAfterMs: number,
): W | null {
  const count = slots.length;
  let leastBusy: W | null = null;
  for (let i = 0; i < count; i++) {
    const handle = slots[(home + i) % count];
    if (handle === null || !handle.ready) continue;
    const inFlight = handle.inFlight.size;
    if (inFlight === 0) return handle;
    const saturated = inFlight >= BUSY_QUEUE && handle.load >= BUSY_LOAD;
    if (inFlight < PACK_LIMIT && !saturated && handle.oldestCallAge(now) < spillAfterMs) return handle;
    if (leastBusy === null || inFlight < leastBusy.inFlight.size) leastBusy = handle;
  }
  return leastBusy;
}

/** The worker a version's calls go to first: a stable spread of versions over `count` workers. */
export function homeSlot(versionId: string, count: number): number {
  // FNV-1a over the UTF-16 units: tens of nanoseconds for a UUID.
  let hash = 0x811c9dc5;
  for (let i = 0; i < versionId.length; i++) hash = Math.imul(hash ^ versionId.charCodeAt(i), 0x01000193);
  return (hash >>> 0) % count;
}

async function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(what)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
