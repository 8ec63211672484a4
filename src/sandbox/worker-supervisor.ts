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
import { WASM_MEMORY_REPORT_OP } from './in-isolate/bootstrap.js';
import type {
  AddonLimits,
  SandboxGuilty,
  SandboxLogger,
  SandboxWorkerKill,
  SandboxWorkerStats,
  WorkerKillReason,
} from './types.js';
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
/**
 * A worker that sent nothing for this long has a stalled event loop (it reports stats every second
 * and answers calls as they end): a deadline missed then blames the calls that may have been running.
 */
export const STALL_AFTER_MS = 1500;
/**
 * A version held responsible for a kill runs only on the worker slot it was caught on for this long
 * (each kill renews it): a bulkhead, so its next calls cannot take another worker down with them.
 */
export const CONVICTED_PIN_MS = 60_000;
/** An innocent call is retried only if at least this much of its time is left. */
export const MIN_RETRY_MS = 50;
/** SDK calls that change nothing and reach nothing outside: a call that made only these may run again. */
const RETRY_SAFE_OPS: ReadonlySet<string> = new Set(['storage.get', 'storage.list']);
/**
 * SDK calls whose effects the host holds until the call succeeds (issue 31): a call that made these
 * may run again once the host has dropped what it holds for it (`discardEffects`).
 */
const HELD_EFFECT_OPS: ReadonlySet<string> = new Set(['storage.set', 'storage.delete', 'events.emit']);

/** A call waiting to run again on the replacement of a worker that crashed (see `onCrash`). */
interface LaneRetry {
  job: DispatchJob;
  resolve: InFlightCall['resolve'];
  reject: InFlightCall['reject'];
}

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
  /** 0 for the first try; 1 once retried after its worker was stopped (never retried twice). */
  readonly attempt: number;
  /** Re-run on the replacement of a worker that crashed with no culprit named (see `onCrash`). */
  readonly laneRetry: boolean;
  /** Set by an SDK call the host holds the effects of (a write, an emit): see HELD_EFFECT_OPS. */
  effectful: boolean;
  /** Set by any other SDK call that is not a read (http.fetch, a dependency call): it never runs twice. */
  reachedOut: boolean;
  /** SDK calls of this call the host has not answered yet: while it waits, it is not running. */
  hostPending: number;
  /** performance.now() of the host's last answer to it (0: none yet). */
  lastReplyAt: number;
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
  /** A worker whose last reported RSS passes this is stopped; null: no cap. */
  maxWorkerRssBytes?: number | null;
  /** Every kill or crash, once, after its calls were failed or retried. */
  onKill?: (kill: SandboxWorkerKill) => void;
  /**
   * Asks the host to drop the effects it holds for a call about to run again; false when it cannot
   * (then the call is not run again).
   */
  discardEffects?: (call: InFlightCall) => boolean;
  onCapability: (call: InFlightCall, request: CapRequestMessage) => Promise<CapResultMessage>;
}

/**
 * Owns the worker processes: forks them, routes each call to a worker (warm one first, else least
 * busy), enforces a hard deadline per call, and replaces a worker that dies, failing its in-flight
 * calls with SANDBOX_CRASHED.
 */
export class WorkerSupervisor {
  crashes = 0;
  retriedCalls = 0;
  /**
   * Per slot, the calls of a crashed worker waiting to run again on its replacement, one version
   * and site at a time (see `onCrash`).
   */
  private readonly lanes = new Map<number, { groups: LaneRetry[][]; running: boolean }>();
  /** Versions held responsible for a kill: the slot they are confined to, until when (Date.now()). */
  private readonly pinned = new Map<string, { slot: number; until: number }>();
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
  dispatch(job: DispatchJob): Promise<{ message: SuccessMessage; workerId: number }> {
    return new Promise((resolve, reject) => {
      this.launch(job, 0, resolve, reject).catch(reject);
    });
  }

  /** Sends `job` to a worker: the one routing picks, or the replacement in slot `lane` once it is up. */
  private async launch(
    job: DispatchJob,
    attempt: number,
    resolve: InFlightCall['resolve'],
    reject: InFlightCall['reject'],
    lane?: number,
  ): Promise<void> {
    const slot = lane ?? this.pinnedSlot(job.versionId);
    // A pinned version also waits while its slot re-runs a crashed worker's calls.
    const usable = (): WorkerHandle | null => {
      if (slot === undefined) return this.pick(job.versionId);
      const handle = this.slots[slot];
      return handle?.ready === true && (lane !== undefined || !this.lanes.has(slot)) ? handle : null;
    };
    // Every wake-up (a worker ready, a slot's re-runs done) is checked again until the deadline:
    // the first one may free a worker this call cannot take yet.
    let worker = usable();
    const until = Date.now() + READY_TIMEOUT_MS;
    while (worker === null && !this.closing && Date.now() < until) {
      await this.waitForReady(until - Date.now());
      worker = usable();
    }
    if (worker === null || this.closing) {
      throw new SandboxError(ErrorCode.ServiceUnavailable, 'No sandbox worker is available.');
    }
    const chosen = worker;
    const execId = this.nextExecId++;
    const call: InFlightCall = {
      execId,
      sentAt: performance.now(),
      job,
      worker: chosen,
      settled: false,
      capTotal: 0,
      sourceResent: false,
      attempt,
      laneRetry: lane !== undefined,
      effectful: false,
      reachedOut: false,
      hostPending: 0,
      lastReplyAt: 0,
      resolve,
      reject,
      deadline: setTimeout(() => this.onDeadline(call), job.limits.timeoutMs + DEADLINE_GRACE_MS),
    };
    this.calls.set(execId, call);
    chosen.inFlight.set(execId, call);
    this.sendExec(call, !chosen.knownVersions.has(job.versionId));
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
      () => this.wakeReadyWaiters(),
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
    // A slot re-running a crashed worker's calls takes nothing else until they are done.
    const slots =
      this.lanes.size === 0 ? this.slots : this.slots.map((h, slot) => (this.lanes.has(slot) ? null : h));
    return pickWorker(slots, home, performance.now(), this.spillAfterMs);
  }

  private wakeReadyWaiters(): void {
    const waiters = this.readyWaiters;
    this.readyWaiters = [];
    for (const wake of waiters) wake();
  }

  /** The slot a version held responsible for a kill is confined to, if it still is. */
  private pinnedSlot(versionId: string): number | undefined {
    if (this.pinned.size === 0) return undefined;
    const pin = this.pinned.get(versionId);
    if (pin === undefined) return undefined;
    if (pin.until > Date.now()) return pin.slot;
    this.pinned.delete(versionId);
    return undefined;
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
      // The worker's channel closed before its 'exit' arrived: the call never reached it, so it
      // goes to the next usable worker (this one takes no more), its own time limit anew.
      worker.ready = false;
      call.settled = true;
      clearTimeout(call.deadline);
      this.calls.delete(call.execId);
      worker.inFlight.delete(call.execId);
      const lane = call.laneRetry ? worker.slot : undefined;
      this.launch(job, call.attempt, call.resolve, call.reject, lane).catch(call.reject);
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
        if (message.op === WASM_MEMORY_REPORT_OP) {
          this.noteWasmMemory(handle, call, message.argsJson);
          handle.send({ t: 'cap-result', capId: message.capId, ok: true, valueJson: 'null' });
          return;
        }
        if (HELD_EFFECT_OPS.has(message.op)) call.effectful = true;
        else if (!RETRY_SAFE_OPS.has(message.op)) call.reachedOut = true;
        call.capTotal += 1;
        call.hostPending += 1;
        this.opts.onCapability(call, message).then(
          (reply) => {
            call.hostPending -= 1;
            call.lastReplyAt = performance.now();
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
        if (
          this.opts.maxWorkerRssBytes != null &&
          message.rssBytes > this.opts.maxWorkerRssBytes &&
          !handle.killed &&
          !this.closing
        ) {
          this.onRssExceeded(handle, message.rssBytes);
        }
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
    if (this.closing) {
      for (const call of [...handle.inFlight.values()] as InFlightCall[]) {
        this.settle(call, new SandboxError(ErrorCode.ServiceUnavailable, 'The sandbox pool is closing.'));
      }
      return;
    }
    this.crashes += 1;
    // A worker the supervisor stopped had its calls failed or retried (and its kill reported) then.
    if (!handle.killed) this.onCrash(handle, code, signal);
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

  /**
   * A worker died by itself: nothing says which call did it. The culprit is the version and site of
   * a call re-run from an earlier crash (see below), else the only one in flight; its calls fail.
   * Without one, every call runs again once on this worker's replacement, one version and site
   * at a time, and the replacement takes no other call meanwhile: a culprit among them then
   * crashes it with only its own calls there, and is named; no healthy worker's calls share its fate.
   */
  private onCrash(handle: WorkerHandle, code: number | null, signal: NodeJS.Signals | null): void {
    const inFlight = [...handle.inFlight.values()] as InFlightCall[];
    const keys = new Set(inFlight.map(callKey));
    const rerun = new Set(inFlight.filter((call) => call.laneRetry).map(callKey));
    const guiltyKeys = rerun.size > 0 ? rerun : keys.size === 1 ? keys : new Set<string>();
    const how = signal ?? `exit code ${code}`;
    this.stopCalls(
      handle,
      'crashed',
      guiltyKeys,
      inFlight,
      () =>
        new SandboxError(
          ErrorCode.SandboxCrashed,
          `The sandbox worker running this call stopped (${how}); calls of this addon version on this site were running when it did.`,
        ),
      [],
      handle.slot,
    );
  }

  /** Queues calls (one version and site) to run again on the replacement of the worker in `slot`. */
  private enqueueLane(slot: number, group: LaneRetry[]): void {
    let lane = this.lanes.get(slot);
    if (lane === undefined) this.lanes.set(slot, (lane = { groups: [], running: false }));
    lane.groups.push(group);
    if (!lane.running) void this.runLane(slot, lane);
  }

  private async runLane(slot: number, lane: { groups: LaneRetry[][]; running: boolean }): Promise<void> {
    lane.running = true;
    while (lane.groups.length > 0 && !this.closing) {
      const group = lane.groups.shift()!;
      await Promise.all(
        group.map(
          (retry) =>
            new Promise<void>((done) => {
              const resolve: LaneRetry['resolve'] = (value) => {
                done();
                retry.resolve(value);
              };
              const reject = (err: Error) => {
                done();
                retry.reject(err);
              };
              this.launch(retry.job, 1, resolve, reject, slot).catch(reject);
            }),
        ),
      );
    }
    lane.running = false;
    this.lanes.delete(slot);
    this.wakeReadyWaiters();
    for (const group of lane.groups.splice(0)) {
      for (const retry of group) {
        retry.reject(new SandboxError(ErrorCode.ServiceUnavailable, 'The sandbox pool is closing.'));
      }
    }
  }

  /**
   * A call missed its deadline: the worker is stopped. If the worker kept answering, the call is the
   * culprit; if it fell silent (its event loop stalled), the culprit is the oldest call that may
   * have been running when it did: sent before, and not waiting for an SDK answer then (a call sent
   * later never started, a quick one would have ended). Without one, the call itself.
   */
  private onDeadline(call: InFlightCall): void {
    if (call.settled) return;
    const worker = call.worker;
    const stalled = performance.now() - worker.lastMessageAt > STALL_AFTER_MS;
    let culprit = call;
    if (stalled) {
      for (const other of worker.inFlight.values() as Iterable<InFlightCall>) {
        const silentSince = worker.lastMessageAt;
        if (other.sentAt <= silentSince && other.hostPending === 0 && other.lastReplyAt <= silentSince) {
          culprit = other;
          break;
        }
      }
    }
    const guiltyKeys = new Set([callKey(culprit)]);
    const timeLimit = `its wall-time limit of ${call.job.limits.timeoutMs} ms`;
    if (guiltyKeys.has(callKey(call))) {
      this.settle(
        call,
        new SandboxError(ErrorCode.ExecutionTimeout, `The addon did not finish within ${timeLimit}.`),
      );
    } else {
      // Its time is up, so it cannot run again; the failure is not its own.
      this.settle(
        call,
        new SandboxError(
          ErrorCode.SandboxCrashed,
          `The sandbox worker running this call stopped answering because of another addon's call and was replaced; the call did not finish within ${timeLimit}.`,
        ),
      );
    }
    this.stopWorker(
      call.worker,
      stalled ? 'stalled' : 'deadline',
      guiltyKeys,
      [call],
      () =>
        new SandboxError(
          ErrorCode.ExecutionTimeout,
          'Another call of this addon version on this site did not finish in time; the sandbox worker running it was replaced.',
        ),
    );
  }

  /** The worker passed its RSS cap: the version and site holding the most wasm memory there are blamed. */
  private onRssExceeded(handle: WorkerHandle, rssBytes: number): void {
    const holder = handle.largestWasmHolder();
    const guiltyKeys = new Set(holder === null ? [] : [`${holder.versionId}\u0000${holder.siteId}`]);
    this.stopWorker(
      handle,
      'rss',
      guiltyKeys,
      [],
      () =>
        new SandboxError(
          ErrorCode.MemoryLimitExceeded,
          `The addon's memory took its sandbox worker past the platform's cap (${Math.round(rssBytes / 1048576)} MB resident); the worker was replaced.`,
        ),
    );
  }

  /** SIGKILLs a worker, failing the guilty calls in flight and retrying the others. */
  private stopWorker(
    handle: WorkerHandle,
    reason: WorkerKillReason,
    guiltyKeys: Set<string>,
    alreadyFailed: InFlightCall[],
    guiltyError: () => Error,
  ): void {
    if (handle.killed) return;
    const inFlight = [...handle.inFlight.values()] as InFlightCall[];
    handle.kill();
    this.stopCalls(handle, reason, guiltyKeys, inFlight, guiltyError, alreadyFailed);
  }

  private stopCalls(
    handle: WorkerHandle,
    reason: WorkerKillReason,
    guiltyKeys: Set<string>,
    inFlight: InFlightCall[],
    guiltyError: () => Error,
    alreadyFailed: InFlightCall[] = [],
    retryLane?: number,
  ): void {
    let failed = alreadyFailed.length;
    let retried = 0;
    const guilty = new Map<string, SandboxGuilty>();
    const lanes = new Map<string, LaneRetry[]>();
    for (const call of inFlight) {
      const key = callKey(call);
      if (guiltyKeys.has(key)) {
        failed += 1;
        const error = guiltyError();
        // The quarantine counts a SANDBOX_CRASHED only when its version was held responsible.
        if (error instanceof SandboxError) error.blamed = true;
        this.settle(call, error);
        continue;
      }
      const job = this.retryJob(call);
      if (job === null) {
        failed += 1;
        continue;
      }
      retried += 1;
      if (retryLane === undefined) {
        this.launch(job, 1, call.resolve, call.reject).catch(call.reject);
      } else {
        let group = lanes.get(key);
        if (group === undefined) lanes.set(key, (group = []));
        group.push({ job, resolve: call.resolve, reject: call.reject });
      }
    }
    for (const group of lanes.values()) this.enqueueLane(retryLane!, group);
    for (const key of guiltyKeys) {
      const versionId = key.slice(0, key.indexOf('\u0000'));
      this.pinned.delete(versionId);
      this.pinned.set(versionId, { slot: handle.slot, until: Date.now() + CONVICTED_PIN_MS });
      // Bounded: the oldest pins go first.
      if (this.pinned.size > 10_000) this.pinned.delete(this.pinned.keys().next().value!);
    }
    const known = [...alreadyFailed, ...inFlight];
    for (const key of guiltyKeys) guilty.set(key, this.describeGuilty(key, handle, known));
    this.opts.onKill?.({
      at: new Date(),
      workerId: handle.slot,
      pid: handle.pid,
      reason,
      guilty: [...guilty.values()],
      failedCalls: failed,
      retriedCalls: retried,
      rssBytes: handle.lastStats?.rssBytes ?? 0,
    });
  }

  private describeGuilty(key: string, handle: WorkerHandle, inFlight: InFlightCall[]): SandboxGuilty {
    const [versionId, siteId] = key.split('\u0000');
    const call = inFlight.find((c) => callKey(c) === key);
    if (call !== undefined) {
      const { scope } = call.job.env;
      return {
        addonId: scope.addonId,
        addonName: scope.addonName,
        version: call.job.meta.version,
        versionId,
        siteId,
      };
    }
    const report = handle.wasmReports.get(key);
    return {
      addonId: report?.addonId ?? '',
      addonName: report?.addonName ?? '',
      version: report?.version ?? '',
      versionId,
      siteId,
    };
  }

  /**
   * What to send again for an innocent call of a stopped worker (once), detached from that worker;
   * null, the call failed, when it may not run again: it ran again already, it made an SDK call
   * other than a read (its writes and events are dropped with it, but an http.fetch or a dependency
   * call may have done something a second run would repeat), or too little of its time is left.
   */
  private retryJob(call: InFlightCall): DispatchJob | null {
    const left = call.job.env.deadline - Date.now();
    const why =
      call.attempt > 0
        ? 'it had been retried once already'
        : call.reachedOut
          ? 'it had made SDK calls (http.fetch, a dependency call) that a second run would repeat'
          : call.effectful && (call.hostPending > 0 || this.opts.discardEffects?.(call) !== true)
            ? 'its storage writes or events could not be dropped first'
            : left < MIN_RETRY_MS
              ? 'too little of its time was left'
              : this.closing
                ? 'the pool is closing'
                : null;
    if (why !== null) {
      this.settle(
        call,
        new SandboxError(
          ErrorCode.SandboxCrashed,
          `The sandbox worker running this call was stopped, not because of this call; it was not run again because ${why}.`,
        ),
      );
      return null;
    }
    // Detached from the dead worker without settling its caller's promise: the new run does.
    call.settled = true;
    clearTimeout(call.deadline);
    this.calls.delete(call.execId);
    call.worker.inFlight.delete(call.execId);
    this.retriedCalls += 1;
    return { ...call.job, limits: { ...call.job.limits, timeoutMs: Math.floor(left) } };
  }

  private noteWasmMemory(handle: WorkerHandle, call: InFlightCall, argsJson: string): void {
    let bytes: unknown;
    try {
      bytes = (JSON.parse(argsJson) as { bytes?: unknown }).bytes;
    } catch {
      return;
    }
    if (typeof bytes !== 'number' || !Number.isFinite(bytes) || bytes < 0) return;
    const { scope } = call.job.env;
    handle.noteWasmMemory({
      versionId: call.job.versionId,
      siteId: scope.siteId,
      addonId: scope.addonId,
      addonName: scope.addonName,
      version: call.job.meta.version,
      bytes,
    });
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

/** A call's version and site: what guilt is assigned to. */
function callKey(call: InFlightCall): string {
  return `${call.job.versionId}\u0000${call.job.env.scope.siteId}`;
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
