import { performance } from 'node:perf_hooks';
import { LRUCache } from 'lru-cache';
import { ErrorCode } from '../../errors/index.js';
import { sanitizeLogs } from '../capabilities/log.js';
import type { RunEnvelope } from '../in-isolate/bootstrap.js';
import type {
  CallMeta,
  CapResultMessage,
  ExecMessage,
  ResultMessage,
  StartReport,
  StatsMessage,
  WireSource,
  WorkerConfig,
  WorkerToParent,
} from '../protocol.js';
import { PROPAGATED_SDK_CODES, SandboxError, truncateMessage } from '../sandbox-error.js';
import type { LogEntry } from '../types.js';
import {
  AddonIsolate,
  describeIsolateError,
  isMemoryError,
  isTimeoutError,
  type CodeCache,
  type DisposeReason,
  type SiteContext,
} from './addon-isolate.js';

/** Capability requests one call may have outstanding at once. */
export const MAX_PENDING_CAPABILITY_CALLS = 16;
/** How close to its deadline an SDK timeout counts as the call's own timeout, in ms. */
const OWN_DEADLINE_SLACK_MS = 250;
/** Watchdog period: the CPU limits of running calls are checked this often. */
const WATCHDOG_MS = 20;
/** Idle isolates (eviction, work outside a call) are checked this often. */
const IDLE_SWEEP_MS = 1000;
/** CPU an isolate may burn while none of its calls runs before it is treated as runaway. */
const IDLE_CPU_BUDGET_NS = 50_000_000n;
/**
 * Longest a synchronous start may hold the worker's thread (ms, wall time: isolated-vm's timeout).
 * A start cut there is retried on the pool when it had not asked the host for anything yet, and
 * keeps its (version, site) off synchronous starts for good (the parent's start policy).
 */
export const SYNC_SLICE_MS = 50;
/** What a new isolate counts for in the memory budget until it is measured (a little above decision 0007's figure). */
export const NEW_ISOLATE_ESTIMATE_BYTES = 2 * 1024 * 1024;
/** Versions without a live isolate whose code a worker keeps (it asks the parent for the rest). */
const SPARE_SOURCES = 64;
/** An isolate is measured after a call at most this often. */
const SAMPLE_EVERY_MS = 1000;
/** Stats messages are sent at most this often. */
const STATS_EVERY_MS = 20;
/** Codes the bootstrap itself may report (not via an SDK error). */
const BOOTSTRAP_CODES: ReadonlySet<string> = new Set([
  ErrorCode.NotFound,
  ErrorCode.OutputTooLarge,
  ErrorCode.MemoryLimitExceeded,
  ErrorCode.AddonError,
]);

interface ActiveCall {
  readonly msg: ExecMessage;
  readonly startedAt: number;
  readonly deadline: number;
  readonly timer: NodeJS.Timeout;
  settled: boolean;
  iso: AddonIsolate | null;
  site: SiteContext | null;
  cpuStart: bigint;
  readonly pendingCaps: Set<number>;
  /** SDK requests the call has sent; a start cut at the synchronous slice is retried only with none. */
  capsSent: number;
  /** Set once a synchronous start was cut: the call (and its retry) then start on the pool. */
  overran: boolean;
  /** CPU time (ms) its start took, for the parent's start policy. */
  startCpuMs: number;
}

interface PendingCap {
  call: ActiveCall;
  /** The id the isolate gave the request (its `resume` settles that one). */
  isoCapId: number;
}

/**
 * Runs addon calls inside one worker process: the isolate cache (one isolate per version and site,
 * LRU, idle eviction, kept within a budget of measured memory and a count cap), wall-time timers,
 * a CPU watchdog, and the bridge between isolates' SDK calls and the parent process.
 * Transport-free: `send` and `handle` are wired to IPC by `worker-main.ts`.
 *
 * The worker's event loop must stay free whatever addon code does: the only synchronous calls into
 * an isolate are a start the parent allowed (bounded by {@link SYNC_SLICE_MS}) and the `take` right
 * after it, both only while the isolate has nothing queued (see {@link AddonIsolate.busy}).
 */
export class SandboxWorker {
  /** By {@link isolateKey}, least recently used first in `rkeys()`; eviction is ours (busy ones stay). */
  private readonly isolates: LRUCache<string, AddonIsolate>;
  /** Isolates with calls running, which the watchdog checks every {@link WATCHDOG_MS}. */
  private readonly running = new Set<AddonIsolate>();
  /** Live isolates per version, so a version's code is kept while any of them lives. */
  private readonly liveByVersion = new Map<string, number>();
  private readonly sources = new Map<string, WireSource>();
  /** Compiled code of the bootstrap and of the versions whose source is kept, for new isolates. */
  private readonly codeCache: CodeCache = new Map();
  private readonly calls = new Map<number, ActiveCall>();
  private readonly caps = new Map<number, PendingCap>();
  /** Calls whose entry waited for the host: their envelope comes through the context's `done`. */
  private readonly waiters = new Map<number, (envelope: RunEnvelope) => void>();
  /** Envelopes that came through `done` before their call started waiting for them. */
  private readonly early = new Map<number, RunEnvelope>();
  private nextCapId = 1;
  private watchdog: NodeJS.Timeout | null = null;
  private lastSweep = 0;
  private statsScheduled = false;
  private statsSentAt = -Infinity;
  private statsTimer: NodeJS.Timeout | null = null;
  /** Sum of the isolates' {@link AddonIsolate.accountedBytes}. */
  private accountedBytes = 0;
  /** What a new isolate is expected to take: the mean of the samples so far. */
  private estimateBytes = NEW_ISOLATE_ESTIMATE_BYTES;
  private readonly budgetBytes: number;

  constructor(
    private readonly config: WorkerConfig,
    private readonly send: (message: WorkerToParent) => void,
  ) {
    this.isolates = new LRUCache({ max: Math.max(1, config.maxIsolates) });
    this.budgetBytes = Math.max(1, config.isolateMemoryBudgetMb) * 1024 * 1024;
  }

  /** Starts one call; the answer goes out through `send`. */
  execute(msg: ExecMessage): void {
    const startedAt = performance.now();
    const call: ActiveCall = {
      msg,
      startedAt,
      deadline: startedAt + msg.limits.timeoutMs,
      timer: setTimeout(() => this.onWallTimeout(call), msg.limits.timeoutMs),
      settled: false,
      iso: null,
      site: null,
      cpuStart: 0n,
      pendingCaps: new Set(),
      capsSent: 0,
      overran: false,
      startCpuMs: 0,
    };
    this.calls.set(msg.meta.execId, call);
    this.ensureWatchdog();
    this.run(call).catch((err: unknown) => {
      this.finish(call, this.errorResult(call, err));
    });
  }

  /** Delivers the parent's answer to a capability request. */
  capabilityResult(msg: CapResultMessage): void {
    const pending = this.caps.get(msg.capId);
    if (pending === undefined) return;
    this.caps.delete(msg.capId);
    pending.call.pendingCaps.delete(msg.capId);
    // A call that already ended never sees the answer: no addon code runs outside a call's limits.
    if (pending.call.settled) return;
    this.resume(
      pending.call,
      pending.isoCapId,
      msg.ok ? `{"ok":true,"value":${msg.valueJson}}` : reply(msg.code, msg.message),
    );
  }

  /**
   * Hands an SDK reply to the isolate. The continuation always runs on isolated-vm's pool: it is
   * addon code of unknown length, and a synchronous call would also wait for whatever the isolate
   * has queued. It costs one thread hand-off more than running it here.
   */
  private resume(call: ActiveCall, isoCapId: number, replyJson: string): void {
    const { site, iso } = call;
    if (call.settled || site === null || iso === null || iso.disposed) return;
    iso
      .track(
        site.resume.apply(undefined, [isoCapId, replyJson], {
          arguments: { copy: true },
          timeout: this.budget(call),
        }),
      )
      .catch((err: unknown) => this.resumeFailed(call, err));
  }

  private resumeFailed(call: ActiveCall, err: unknown): void {
    if (call.settled) return;
    this.finish(call, this.errorResult(call, err));
  }

  stats(): StatsMessage {
    let contexts = 0;
    let reserved = 0;
    for (const iso of this.isolates.values()) {
      contexts += iso.contextCount;
      reserved += iso.memoryMb;
    }
    return {
      t: 'stats',
      isolates: this.isolates.size,
      contexts,
      reservedMemoryMb: reserved,
      isolateMemoryBytes: this.accountedBytes,
      isolateMemoryBudgetBytes: this.budgetBytes,
      rssBytes: process.memoryUsage.rss(),
      activeCalls: this.calls.size,
    };
  }

  /**
   * Sends fresh stats soon, so the parent's gauges follow evictions: once per burst of changes.
   * `sampled` (a new memory sample, which calls spread over thousands of isolates bring on nearly
   * every call) waits up to {@link STATS_EVERY_MS} after the last message, since a stats message
   * walks every isolate kept; an isolate made or disposed is sent at once.
   */
  private statsChanged(sampled = false): void {
    const wait = sampled ? this.statsSentAt + STATS_EVERY_MS - performance.now() : 0;
    if (this.statsTimer !== null) {
      if (wait > 0) return;
      clearTimeout(this.statsTimer);
      this.statsTimer = null;
    } else if (this.statsScheduled) return;
    const send = () => {
      this.statsScheduled = false;
      this.statsTimer = null;
      this.statsSentAt = performance.now();
      this.send(this.stats());
    };
    this.statsScheduled = true;
    if (wait > 0) this.statsTimer = setTimeout(send, wait);
    else setImmediate(send);
  }

  /** Disposes every isolate; running calls fail with SANDBOX_CRASHED. */
  shutdown(): void {
    for (const iso of [...this.isolates.values()]) {
      this.disposeIsolate(iso, {
        code: ErrorCode.SandboxCrashed,
        message: 'The sandbox worker is shutting down.',
      });
    }
    if (this.watchdog !== null) clearInterval(this.watchdog);
    this.watchdog = null;
  }

  private async run(call: ActiveCall): Promise<void> {
    const { msg } = call;
    if (msg.source !== null) this.rememberSource(msg.versionId, msg.source);
    const key = isolateKey(msg.versionId, msg.meta.siteId);
    let iso = this.isolates.get(key);
    if (iso !== undefined && iso.disposed) iso = undefined;
    if (iso === undefined) {
      const source = this.sources.get(msg.versionId);
      if (source === undefined) {
        this.finish(call, { t: 'need-source', id: msg.id });
        return;
      }
      this.makeRoom();
      iso = new AddonIsolate(
        key,
        msg.versionId,
        source,
        msg.limits.memoryMb,
        this.estimateBytes,
        (isolate, siteKey, execId, capId, op, argsJson) =>
          this.onHostCall(isolate, siteKey, execId, capId, op, argsJson),
        (execId, envelope) => this.onDone(execId, envelope as RunEnvelope),
        this.config.allowCrashTest,
        this.codeCache,
      );
      this.isolates.set(key, iso);
      this.accountedBytes += iso.accountedBytes;
      this.liveByVersion.set(msg.versionId, (this.liveByVersion.get(msg.versionId) ?? 0) + 1);
      this.statsChanged();
    }
    const current = iso;
    current.lastUsedAt = Date.now();
    current.activeCalls.add(call);
    this.running.add(current);
    call.iso = current;
    call.cpuStart = current.cpuTime;
    try {
      await current.ready;
    } catch (err) {
      // A version that does not compile is not worth keeping.
      this.disposeIsolate(current, { code: ErrorCode.AddonError, message: describeIsolateError(err) });
      throw err;
    }
    if (call.settled) return;
    const { site, cold } = await current.site(msg.meta.siteId, this.budget(call));
    if (cold) this.statsChanged();
    if (call.settled) return;
    call.site = site;
    site.active += 1;
    site.lastUsedAt = Date.now();
    let envelope: RunEnvelope | undefined;
    // The entry and its microtasks run now, under the call's budget: on this thread when the parent
    // allows it and the isolate has nothing queued (a synchronous call would wait for all of it),
    // bounded by SYNC_SLICE_MS; otherwise on isolated-vm's pool, leaving this event loop free.
    const sync = msg.startSync === true && !call.overran && !current.busy;
    const budget = this.budget(call);
    const args: [CallMeta, string, string] = [msg.meta, msg.inputJson, msg.configJson];
    const cpuBefore = current.cpuTime;
    try {
      if (sync) {
        const slice = Math.min(budget, SYNC_SLICE_MS);
        try {
          envelope = site.start.applySync(undefined, args, {
            arguments: { copy: true },
            result: { copy: true },
            timeout: slice,
          }) as RunEnvelope | undefined;
          // Nothing was queued meanwhile (this thread did not run): `take` does not wait.
          envelope ??= site.take.applySync(undefined, [msg.meta.execId], {
            result: { copy: true },
            timeout: SYNC_SLICE_MS,
          }) as RunEnvelope | undefined;
        } catch (err) {
          if (isTimeoutError(err) && slice < budget) {
            this.cutSyncStart(call, current);
            return;
          }
          throw err;
        }
      } else {
        envelope = (await current.track(
          site.start.apply(undefined, args, {
            arguments: { copy: true },
            result: { copy: true },
            timeout: budget,
          }),
        )) as RunEnvelope | undefined;
        if (call.settled) return;
        envelope ??= (await current.track(
          site.take.apply(undefined, [msg.meta.execId], { result: { copy: true } }),
        )) as RunEnvelope | undefined;
      }
      if (!current.disposed) call.startCpuMs = Number(current.cpuTime - cpuBefore) / 1e6;
      if (call.settled) return;
    } catch (err) {
      // `run` catches everything the entry throws; what still escapes is a limit, or a promise
      // rejection the addon left unhandled, which isolated-vm reports as the call's failure.
      if (isTimeoutError(err)) call.startCpuMs = Infinity;
      if (isTimeoutError(err) || isMemoryError(err) || current.disposed) throw err;
      throw new SandboxError(ErrorCode.AddonError, describeIsolateError(err));
    }
    if (envelope === undefined) {
      // The entry awaits the host (SDK calls); the watchdog bounds its CPU, the deadline its time.
      if (call.settled) return;
      const execId = msg.meta.execId;
      envelope = this.early.get(execId);
      this.early.delete(execId);
      envelope ??= await new Promise<RunEnvelope>((resolve) => this.waiters.set(execId, resolve));
    }
    if (call.settled) return;
    const heapUsedBytes =
      msg.measureHeap === true && !current.disposed
        ? await current.usedHeapBytes().catch(() => undefined)
        : undefined;
    if (call.settled) return;
    this.finish(call, this.envelopeResult(call, envelope, cold, heapUsedBytes));
  }

  /**
   * A synchronous start ran past its slice and was terminated: the isolate goes (its state may be
   * half-updated; only this version and site use it) and the call starts again on the pool, unless
   * it had already asked the host for something (a second run would ask again).
   */
  private cutSyncStart(call: ActiveCall, iso: AddonIsolate): void {
    call.overran = true;
    call.startCpuMs = Infinity;
    iso.activeCalls.delete(call);
    if (call.site !== null) call.site.active -= 1;
    call.site = null;
    call.iso = null;
    this.disposeIsolate(iso, {
      code: ErrorCode.ExecutionTimeout,
      message: `Another call of this addon version on this site ran over ${SYNC_SLICE_MS} ms on the worker's thread.`,
    });
    if (call.capsSent > 0) {
      this.finish(
        call,
        this.failure(
          call.msg.id,
          ErrorCode.ExecutionTimeout,
          `The addon ran over ${SYNC_SLICE_MS} ms on the worker's thread after an SDK call; it starts on the thread pool from now on.`,
        ),
      );
      return;
    }
    this.run(call).catch((err: unknown) => this.finish(call, this.errorResult(call, err)));
  }

  /** The `done` of a context: the envelope of a call that waited for the host. */
  private onDone(execId: unknown, envelope: RunEnvelope): void {
    if (typeof execId !== 'number') return;
    const waiter = this.waiters.get(execId);
    if (waiter !== undefined) {
      this.waiters.delete(execId);
      waiter(envelope);
    } else if (this.calls.has(execId)) {
      // `take` ran on the pool and its answer is still on its way here.
      this.early.set(execId, envelope);
    }
  }

  /** Time the next synchronous stretch may take: the rest of the wall budget, at most the CPU limit. */
  private budget(call: ActiveCall): number {
    const wallLeft = call.deadline - performance.now();
    return Math.max(1, Math.floor(Math.min(wallLeft, call.msg.limits.cpuTimeMs)));
  }

  private envelopeResult(
    call: ActiveCall,
    envelope: RunEnvelope,
    cold: boolean,
    heapUsedBytes: number | undefined,
  ): ResultMessage {
    const { msg } = call;
    if (typeof envelope !== 'object' || envelope === null || typeof envelope.ok !== 'boolean') {
      return this.failure(msg.id, ErrorCode.AddonError, 'The addon produced a malformed result.');
    }
    if (!envelope.ok) {
      let code = String(envelope.code);
      if (envelope.sdk === true) {
        // An SDK call cut short by this call's own deadline (http.fetch is bounded by it) means
        // the call ran out of time, as the wall timer it races would say; a nested addon's timeout
        // long before the deadline stays ADDON_ERROR.
        const ownDeadline =
          code === ErrorCode.ExecutionTimeout && call.deadline - performance.now() < OWN_DEADLINE_SLACK_MS;
        if (!ownDeadline && !PROPAGATED_SDK_CODES.has(code)) code = ErrorCode.AddonError;
      } else if (!BOOTSTRAP_CODES.has(code)) {
        code = ErrorCode.AddonError;
      }
      if (code === ErrorCode.MemoryLimitExceeded && call.iso !== null) {
        const reason = {
          code: ErrorCode.MemoryLimitExceeded,
          message: 'The addon exceeded its memory limit.',
        };
        const result = this.failure(
          msg.id,
          reason.code,
          `${reason.message} (${truncateMessage(String(envelope.message), 200)})`,
        );
        this.finish(call, result);
        this.disposeIsolate(call.iso, reason);
        return result;
      }
      // What the addon logged before it failed is what its author most needs to see.
      return {
        ...this.failure(msg.id, code, String(envelope.message)),
        ...envelopeLogs(envelope, msg.limits.maxLogBytes),
      };
    }
    if (typeof envelope.output !== 'string') {
      return this.failure(msg.id, ErrorCode.AddonError, 'The addon produced a malformed result.');
    }
    if (Buffer.byteLength(envelope.output) > msg.limits.maxOutputBytes) {
      return this.failure(
        msg.id,
        ErrorCode.OutputTooLarge,
        `The result is larger than the addon's limit of ${msg.limits.maxOutputBytes} bytes.`,
      );
    }
    const iso = call.iso;
    const cpuNs = iso === null || iso.disposed ? 0n : iso.cpuTime - call.cpuStart;
    const start: StartReport = { cpuMs: call.startCpuMs, overran: call.overran };
    return {
      ...(heapUsedBytes === undefined ? {} : { heapUsedBytes }),
      start,
      t: 'result',
      id: msg.id,
      ok: true,
      outputJson: envelope.output,
      ...envelopeLogs(envelope, msg.limits.maxLogBytes),
      durationMs: performance.now() - call.startedAt,
      cpuTimeMs: Number(cpuNs) / 1e6,
      cold,
    };
  }

  private errorResult(call: ActiveCall, err: unknown): ResultMessage {
    const id = call.msg.id;
    const iso = call.iso;
    if (iso !== null && iso.disposeReason !== null) {
      return this.failure(id, iso.disposeReason.code, iso.disposeReason.message);
    }
    if (isTimeoutError(err)) {
      const result = this.failure(
        id,
        ErrorCode.ExecutionTimeout,
        `The addon exceeded its time limit (${call.msg.limits.cpuTimeMs} ms CPU, ${call.msg.limits.timeoutMs} ms wall).`,
      );
      if (iso !== null) {
        this.finish(call, result);
        this.disposeIsolate(iso, {
          code: ErrorCode.ExecutionTimeout,
          message: 'Another call of this addon version on this site exceeded its time limit.',
        });
      }
      return result;
    }
    if (isMemoryError(err)) {
      const result = this.failure(id, ErrorCode.MemoryLimitExceeded, 'The addon exceeded its memory limit.');
      if (iso !== null) {
        this.finish(call, result);
        this.disposeIsolate(iso, {
          code: ErrorCode.MemoryLimitExceeded,
          message: 'The addon exceeded its memory limit.',
        });
      }
      return result;
    }
    if (err instanceof SandboxError) return this.failure(id, err.code, err.message);
    process.stderr.write(`sandbox worker: unexpected error in call ${id}: ${String(err)}\n`);
    return this.failure(id, ErrorCode.SandboxCrashed, 'The sandbox failed while running the addon.');
  }

  private failure(id: number, code: string, message: string): Extract<ResultMessage, { ok: false }> {
    return { t: 'result', id, ok: false, code, message: truncateMessage(message) };
  }

  private onWallTimeout(call: ActiveCall): void {
    if (call.settled) return;
    const result = this.failure(
      call.msg.id,
      ErrorCode.ExecutionTimeout,
      `The addon did not finish within its wall-time limit of ${call.msg.limits.timeoutMs} ms.`,
    );
    this.finish(call, result);
    // The isolate may be spinning or holding a promise that never settles: only disposal is certain.
    if (call.iso !== null) {
      this.disposeIsolate(call.iso, {
        code: ErrorCode.ExecutionTimeout,
        message: 'Another call of this addon version on this site exceeded its time limit.',
      });
    }
  }

  private finish(call: ActiveCall, result: ResultMessage): void {
    if (call.settled) return;
    call.settled = true;
    clearTimeout(call.timer);
    this.calls.delete(call.msg.meta.execId);
    this.waiters.delete(call.msg.meta.execId);
    this.early.delete(call.msg.meta.execId);
    for (const capId of call.pendingCaps) this.caps.delete(capId);
    call.pendingCaps.clear();
    if (call.site !== null) {
      call.site.active -= 1;
      call.site.lastUsedAt = Date.now();
    }
    const iso = call.iso;
    if (iso !== null && iso.activeCalls.delete(call) && iso.activeCalls.size === 0) {
      iso.lastUsedAt = Date.now();
      iso.idleCpuMark = iso.cpuTime;
      this.running.delete(iso);
      if (!iso.disposed && Date.now() - iso.sampledAt >= SAMPLE_EVERY_MS) this.measure(iso);
    }
    this.send(result);
  }

  /** Samples an isolate's memory (asynchronously) and updates the budget's figures. */
  private measure(iso: AddonIsolate): void {
    void iso.sample().then((bytes) => {
      if (bytes === null || iso.disposed || this.isolates.peek(iso.key) !== iso) return;
      this.accountedBytes += bytes - iso.accountedBytes;
      iso.accountedBytes = bytes;
      // A running mean (weighted towards recent samples) of what an isolate takes.
      this.estimateBytes = Math.round(this.estimateBytes * 0.9 + bytes * 0.1);
      this.statsChanged(true);
    });
  }

  private disposeIsolate(iso: AddonIsolate, reason: DisposeReason): void {
    const wasLive = !iso.disposed;
    iso.dispose(reason);
    this.running.delete(iso);
    if (this.isolates.peek(iso.key) === iso) this.isolates.delete(iso.key);
    if (wasLive) {
      this.accountedBytes -= iso.accountedBytes;
      const live = (this.liveByVersion.get(iso.versionId) ?? 1) - 1;
      if (live <= 0) this.liveByVersion.delete(iso.versionId);
      else this.liveByVersion.set(iso.versionId, live);
    }
    this.statsChanged();
    for (const call of [...iso.activeCalls] as ActiveCall[]) {
      this.finish(call, this.failure(call.msg.id, reason.code, reason.message));
    }
  }

  private dropCode(versionId: string): void {
    this.codeCache.get(versionId)?.release();
    this.codeCache.delete(versionId);
  }

  private rememberSource(versionId: string, source: WireSource): void {
    this.sources.delete(versionId);
    this.sources.set(versionId, source);
    // The code of every version with a live isolate, and of a few more recently sent.
    const maxSources = this.liveByVersion.size + SPARE_SOURCES;
    const forgotten: string[] = [];
    for (const key of this.sources.keys()) {
      if (this.sources.size <= maxSources) break;
      if (this.liveByVersion.has(key)) continue;
      this.sources.delete(key);
      this.dropCode(key);
      forgotten.push(key);
    }
    if (forgotten.length > 0) this.send({ t: 'evicted', versionIds: forgotten });
  }

  /**
   * Evicts idle isolates, least recently used first, until one more fits: within the count cap, and
   * within the memory budget by what the isolates were measured to take (a new one counts as the
   * mean of the samples until it is measured). The declared `memoryMb` is each isolate's hard
   * limit, not a reservation: an idle isolate takes a small fraction of it (decision 0007).
   */
  private makeRoom(): void {
    const fits = () =>
      this.isolates.size + 1 <= this.config.maxIsolates &&
      this.accountedBytes + this.estimateBytes <= this.budgetBytes;
    if (fits()) return;
    for (const iso of [...this.isolates.rvalues()]) {
      if (iso === undefined || iso.activeCalls.size > 0) continue;
      this.disposeIsolate(iso, { code: ErrorCode.ServiceUnavailable, message: 'The isolate was evicted.' });
      if (fits()) return;
    }
    if (!fits() && this.isolates.size > 0) {
      throw new SandboxError(
        ErrorCode.ServiceUnavailable,
        'The sandbox has no room for another isolate right now; try again shortly.',
      );
    }
  }

  private onHostCall(
    iso: AddonIsolate,
    siteKey: string,
    execId: unknown,
    isoCapId: unknown,
    op: unknown,
    argsJson: unknown,
  ): void {
    if (op === 'debug.crash' && this.config.allowCrashTest) {
      process.kill(process.pid, 'SIGKILL');
    }
    const call = typeof execId === 'number' ? this.calls.get(execId) : undefined;
    // Only the call's own isolate and site may act for it; anything else is never answered and
    // waits, inside its own call's time limit.
    if (call === undefined || call.settled || call.iso !== iso || call.msg.meta.siteId !== siteKey) return;
    if (typeof isoCapId !== 'number' || !Number.isSafeInteger(isoCapId)) return;
    if (typeof op !== 'string' || typeof argsJson !== 'string') {
      this.resume(call, isoCapId, reply(ErrorCode.BadUserInput, 'Malformed SDK call.'));
      return;
    }
    const maxArgsChars = Math.max(call.msg.limits.maxInputBytes, 1024 * 1024) + 64 * 1024;
    if (argsJson.length > maxArgsChars) {
      this.resume(call, isoCapId, reply(ErrorCode.InputTooLarge, `The arguments of ${op} are too large.`));
      return;
    }
    if (call.pendingCaps.size >= MAX_PENDING_CAPABILITY_CALLS) {
      this.resume(
        call,
        isoCapId,
        reply(
          ErrorCode.RateLimited,
          `At most ${MAX_PENDING_CAPABILITY_CALLS} SDK calls may be pending at once; await some first.`,
        ),
      );
      return;
    }
    const capId = this.nextCapId++;
    call.capsSent += 1;
    call.pendingCaps.add(capId);
    this.caps.set(capId, { call, isoCapId });
    this.send({ t: 'cap', id: call.msg.id, capId, op, argsJson });
  }

  private ensureWatchdog(): void {
    if (this.watchdog !== null) return;
    this.watchdog = setInterval(() => this.watch(), WATCHDOG_MS);
    this.watchdog.unref();
  }

  // CPU limit for continuations that run without an isolated-vm timeout (after an SDK call resolves),
  // every WATCHDOG_MS over the isolates with calls running; runaway background work and idle
  // eviction every IDLE_SWEEP_MS over all of them (thousands may be kept).
  private watch(): void {
    for (const iso of [...this.running]) {
      if (iso.disposed) {
        this.running.delete(iso);
        continue;
      }
      const cpu = iso.cpuTime;
      for (const call of iso.activeCalls as Set<ActiveCall>) {
        const limitNs = BigInt(call.msg.limits.cpuTimeMs) * 1_000_000n;
        if (cpu - call.cpuStart > limitNs) {
          this.finish(
            call,
            this.failure(
              call.msg.id,
              ErrorCode.ExecutionTimeout,
              `The addon exceeded its CPU time limit of ${call.msg.limits.cpuTimeMs} ms.`,
            ),
          );
          this.disposeIsolate(iso, {
            code: ErrorCode.ExecutionTimeout,
            message: 'Another call of this addon version on this site exceeded its time limit.',
          });
          break;
        }
      }
    }
    const now = Date.now();
    if (now - this.lastSweep >= Math.min(IDLE_SWEEP_MS, this.config.idleIsolateMs)) {
      this.lastSweep = now;
      this.sweepIdle(now);
    }
    if (this.isolates.size === 0 && this.calls.size === 0 && this.watchdog !== null) {
      clearInterval(this.watchdog);
      this.watchdog = null;
    }
  }

  private sweepIdle(now: number): void {
    for (const iso of [...this.isolates.values()]) {
      if (iso.disposed || iso.activeCalls.size > 0) continue;
      if (iso.cpuTime - iso.idleCpuMark > IDLE_CPU_BUDGET_NS) {
        this.disposeIsolate(iso, {
          code: ErrorCode.ExecutionTimeout,
          message: 'The isolate ran code outside a call.',
        });
        continue;
      }
      if (now - iso.lastUsedAt > this.config.idleIsolateMs) {
        this.disposeIsolate(iso, { code: ErrorCode.ServiceUnavailable, message: 'The isolate was evicted.' });
        if (!this.liveByVersion.has(iso.versionId) && this.sources.delete(iso.versionId)) {
          this.dropCode(iso.versionId);
          this.send({ t: 'evicted', versionIds: [iso.versionId] });
        }
        continue;
      }
      iso.releaseContextsIdleSince(now - this.config.idleIsolateMs);
    }
  }
}

/** The worker's key of the isolate that runs `versionId` for `siteId`. */
export function isolateKey(versionId: string, siteId: string): string {
  return `${versionId}\u0000${siteId}`;
}

/** The JSON of a failed SDK call, as the isolate's `resume` receives it. */
function reply(code: string, message: string): string {
  return JSON.stringify({ ok: false, code, message });
}

/** An envelope's logs as the worker hands them on: checked, and bounded by the call's log limit. */
function envelopeLogs(
  envelope: RunEnvelope,
  maxLogBytes: number,
): { logs: LogEntry[]; logsTruncated: boolean } {
  const { logs, truncated } = sanitizeLogs(envelope.logs, maxLogBytes);
  return { logs, logsTruncated: envelope.logsTruncated === true || truncated };
}
