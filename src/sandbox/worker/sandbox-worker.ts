import { performance } from 'node:perf_hooks';
import { ErrorCode } from '../../errors/index.js';
import { sanitizeLogs } from '../capabilities/log.js';
import type { RunEnvelope } from '../in-isolate/bootstrap.js';
import type {
  CallMeta,
  CapResultMessage,
  ExecMessage,
  ResultMessage,
  StatsMessage,
  WireSource,
  WorkerConfig,
  WorkerToParent,
} from '../protocol.js';
import { PROPAGATED_SDK_CODES, SandboxError, truncateMessage } from '../sandbox-error.js';
import type { LogEntry } from '../types.js';
import { SyncStartPolicy } from './sync-start-policy.js';
import {
  AddonIsolate,
  describeIsolateError,
  isMemoryError,
  isTimeoutError,
  type DisposeReason,
  type SiteContext,
} from './addon-isolate.js';

/** Capability requests one call may have outstanding at once. */
export const MAX_PENDING_CAPABILITY_CALLS = 16;
/** How close to its deadline an SDK timeout counts as the call's own timeout, in ms. */
const OWN_DEADLINE_SLACK_MS = 250;
/** Watchdog period: CPU limits and idle isolates are checked this often. */
const WATCHDOG_MS = 20;
/** CPU an isolate may burn while none of its calls runs before it is treated as runaway. */
const IDLE_CPU_BUDGET_NS = 50_000_000n;
/** Versions whose start record a worker keeps (the oldest is forgotten beyond this). */
const MAX_START_POLICIES = 10_000;
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
}

interface PendingCap {
  call: ActiveCall;
  /** The id the isolate gave the request (its `resume` settles that one). */
  isoCapId: number;
}

/**
 * Runs addon calls inside one worker process: the isolate cache (per version, LRU, idle eviction,
 * count and memory caps), wall-time timers, a CPU watchdog, and the bridge between isolates' SDK calls
 * and the parent process. Transport-free: `send` and `handle` are wired to IPC by `worker-main.ts`.
 */
export class SandboxWorker {
  private readonly isolates = new Map<string, AddonIsolate>();
  private readonly sources = new Map<string, WireSource>();
  /** By version: whether its calls start on this thread (see SyncStartPolicy). */
  private readonly startPolicies = new Map<string, SyncStartPolicy>();
  private readonly calls = new Map<number, ActiveCall>();
  private readonly caps = new Map<number, PendingCap>();
  /** Calls whose entry waited for the host: their envelope comes through the context's `done`. */
  private readonly waiters = new Map<number, (envelope: RunEnvelope) => void>();
  private nextCapId = 1;
  private watchdog: NodeJS.Timeout | null = null;
  private statsScheduled = false;

  constructor(
    private readonly config: WorkerConfig,
    private readonly send: (message: WorkerToParent) => void,
  ) {}

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
   * Hands an SDK reply to the isolate. For a version that starts on this thread (SyncStartPolicy)
   * the continuation runs here and now, under the call's time limit, and is timed like a start;
   * resolving through isolated-vm's thread pool instead costs two thread hand-offs per SDK call
   * (measured: ~0.5 ms of the ~1.4 ms from an answer to the call's result). Other versions
   * continue on the pool, so a slow continuation never holds this event loop.
   */
  private resume(call: ActiveCall, isoCapId: number, replyJson: string): void {
    const { site, iso } = call;
    if (call.settled || site === null || iso === null || iso.disposed) return;
    const args: [number, string] = [isoCapId, replyJson];
    const options = { arguments: { copy: true }, timeout: this.budget(call) } as const;
    const policy = this.startPolicy(call.msg.versionId);
    if (!policy.startSync) {
      site.resume.apply(undefined, args, options).catch((err: unknown) => this.resumeFailed(call, err));
      return;
    }
    try {
      timed(iso, policy, () => site.resume.applySync(undefined, args, options));
    } catch (err) {
      this.resumeFailed(call, err);
    }
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
      rssBytes: process.memoryUsage.rss(),
      activeCalls: this.calls.size,
    };
  }

  /** Sends fresh stats soon, once per burst of changes, so the parent's gauges follow evictions. */
  private statsChanged(): void {
    if (this.statsScheduled) return;
    this.statsScheduled = true;
    setImmediate(() => {
      this.statsScheduled = false;
      this.send(this.stats());
    });
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
    let iso = this.isolates.get(msg.versionId);
    if (iso !== undefined && iso.disposed) iso = undefined;
    if (iso === undefined) {
      const source = this.sources.get(msg.versionId);
      if (source === undefined) {
        this.finish(call, { t: 'need-source', id: msg.id });
        return;
      }
      this.makeRoom(msg.limits.memoryMb);
      iso = new AddonIsolate(
        msg.versionId,
        source,
        msg.limits.memoryMb,
        (isolate, siteKey, execId, capId, op, argsJson) =>
          this.onHostCall(isolate, siteKey, execId, capId, op, argsJson),
        (execId, envelope) => {
          if (typeof execId !== 'number') return;
          const waiter = this.waiters.get(execId);
          this.waiters.delete(execId);
          waiter?.(envelope as RunEnvelope);
        },
        this.config.allowCrashTest,
      );
      this.isolates.set(msg.versionId, iso);
      this.statsChanged();
    } else {
      this.isolates.delete(msg.versionId);
      this.isolates.set(msg.versionId, iso);
    }
    const current = iso;
    current.lastUsedAt = Date.now();
    current.activeCalls.add(call);
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
    try {
      // The entry and its microtasks run now, under the call's budget: on this thread for versions
      // known to start quickly, otherwise on isolated-vm's pool so a slow one leaves this event
      // loop (other addons' calls, SDK answers) free.
      const args: [CallMeta, string, string] = [msg.meta, msg.inputJson, msg.configJson];
      const options = {
        arguments: { copy: true },
        result: { copy: true },
        timeout: this.budget(call),
      } as const;
      const starts = this.startPolicy(msg.versionId);
      // An entry that returns a plain value hands its envelope back at once; one that awaits
      // leaves it to `take` (settled by now) or to the context's `done`.
      const entered = timed(current, starts, () =>
        starts.startSync
          ? site.start.applySync(undefined, args, options)
          : site.start.apply(undefined, args, options),
      );
      envelope = (entered instanceof Promise ? await entered : entered) as RunEnvelope | undefined;
      envelope ??= site.take.applySync(undefined, [msg.meta.execId], { result: { copy: true } }) as
        RunEnvelope | undefined;
      if (call.settled) return;
    } catch (err) {
      // `run` catches everything the entry throws; what still escapes is a limit, or a promise
      // rejection the addon left unhandled, which isolated-vm reports as the call's failure.
      if (isTimeoutError(err) || isMemoryError(err) || current.disposed) throw err;
      throw new SandboxError(ErrorCode.AddonError, describeIsolateError(err));
    }
    if (envelope === undefined) {
      // The entry awaits the host (SDK calls); the watchdog bounds its CPU, the deadline its time.
      if (call.settled) return;
      envelope = await new Promise<RunEnvelope>((resolve) => this.waiters.set(msg.meta.execId, resolve));
    }
    if (call.settled) return;
    this.finish(call, this.envelopeResult(call, envelope, cold));
  }

  /** Time the next synchronous stretch may take: the rest of the wall budget, at most the CPU limit. */
  private budget(call: ActiveCall): number {
    const wallLeft = call.deadline - performance.now();
    return Math.max(1, Math.floor(Math.min(wallLeft, call.msg.limits.cpuTimeMs)));
  }

  private envelopeResult(call: ActiveCall, envelope: RunEnvelope, cold: boolean): ResultMessage {
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
    const heapUsedBytes =
      msg.measureHeap === true && iso !== null && !iso.disposed
        ? iso.isolate.getHeapStatisticsSync().used_heap_size
        : undefined;
    return {
      ...(heapUsedBytes === undefined ? {} : { heapUsedBytes }),
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
          message: 'Another call of this addon version exceeded its time limit.',
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
        message: 'Another call of this addon version exceeded its time limit.',
      });
    }
  }

  private finish(call: ActiveCall, result: ResultMessage): void {
    if (call.settled) return;
    call.settled = true;
    clearTimeout(call.timer);
    this.calls.delete(call.msg.meta.execId);
    this.waiters.delete(call.msg.meta.execId);
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
    }
    this.send(result);
  }

  private disposeIsolate(iso: AddonIsolate, reason: DisposeReason): void {
    iso.dispose(reason);
    if (this.isolates.get(iso.versionId) === iso) this.isolates.delete(iso.versionId);
    this.statsChanged();
    for (const call of [...iso.activeCalls] as ActiveCall[]) {
      this.finish(call, this.failure(call.msg.id, reason.code, reason.message));
    }
  }

  /** The start policy of a version; kept across isolate replacements, for a bounded number of versions. */
  private startPolicy(versionId: string): SyncStartPolicy {
    let policy = this.startPolicies.get(versionId);
    if (policy === undefined) {
      if (this.startPolicies.size >= MAX_START_POLICIES) {
        this.startPolicies.delete(this.startPolicies.keys().next().value!);
      }
      policy = new SyncStartPolicy();
      this.startPolicies.set(versionId, policy);
    }
    return policy;
  }

  private rememberSource(versionId: string, source: WireSource): void {
    this.sources.delete(versionId);
    this.sources.set(versionId, source);
    const maxSources = Math.max(16, this.config.maxIsolates * 2);
    const forgotten: string[] = [];
    for (const key of this.sources.keys()) {
      if (this.sources.size <= maxSources) break;
      if (this.isolates.has(key)) continue;
      this.sources.delete(key);
      forgotten.push(key);
    }
    if (forgotten.length > 0) this.send({ t: 'evicted', versionIds: forgotten });
  }

  /** Evicts idle isolates, least recently used first, until one more of `memoryMb` fits. */
  private makeRoom(memoryMb: number): void {
    const fits = () => {
      let reserved = memoryMb;
      for (const iso of this.isolates.values()) reserved += iso.memoryMb;
      return (
        this.isolates.size + 1 <= this.config.maxIsolates && reserved <= this.config.maxTotalIsolateMemoryMb
      );
    };
    for (const iso of [...this.isolates.values()]) {
      if (fits()) return;
      if (iso.activeCalls.size === 0) {
        this.disposeIsolate(iso, { code: ErrorCode.ServiceUnavailable, message: 'The isolate was evicted.' });
      }
    }
    if (!fits()) {
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
  // runaway background work, and idle eviction.
  private watch(): void {
    const now = Date.now();
    for (const iso of [...this.isolates.values()]) {
      if (iso.disposed) continue;
      const cpu = iso.cpuTime;
      if (iso.activeCalls.size > 0) {
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
              message: 'Another call of this addon version exceeded its time limit.',
            });
            break;
          }
        }
        continue;
      }
      if (cpu - iso.idleCpuMark > IDLE_CPU_BUDGET_NS) {
        this.disposeIsolate(iso, {
          code: ErrorCode.ExecutionTimeout,
          message: 'The isolate ran code outside a call.',
        });
        continue;
      }
      if (now - iso.lastUsedAt > this.config.idleIsolateMs) {
        this.disposeIsolate(iso, { code: ErrorCode.ServiceUnavailable, message: 'The isolate was evicted.' });
        this.sources.delete(iso.versionId);
        this.send({ t: 'evicted', versionIds: [iso.versionId] });
        continue;
      }
      iso.releaseContextsIdleSince(now - this.config.idleIsolateMs);
    }
    if (this.isolates.size === 0 && this.calls.size === 0 && this.watchdog !== null) {
      clearInterval(this.watchdog);
      this.watchdog = null;
    }
  }
}

/**
 * Enters an isolate through `enter` and tells the version's policy how much of the isolate's CPU
 * time it took (for an entry on the pool, with whatever else the isolate ran meanwhile). An entry
 * that spun into its time limit is the slowest kind: that the isolate is replaced for it must not
 * give the version a clean record.
 */
function timed<T>(iso: AddonIsolate, policy: SyncStartPolicy, enter: () => T): T {
  const cpuBefore = iso.cpuTime;
  const noted = (value: unknown) => {
    if (!iso.disposed) policy.note(Number(iso.cpuTime - cpuBefore) / 1e6);
    return value;
  };
  const failed = (err: unknown): never => {
    if (isTimeoutError(err)) policy.note(Infinity);
    throw err;
  };
  let value: T;
  try {
    value = enter();
  } catch (err) {
    return failed(err);
  }
  return (value instanceof Promise ? value.then(noted, failed) : noted(value)) as T;
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
