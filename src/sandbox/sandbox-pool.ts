import { AppError, ErrorCode } from '../errors/index.js';
import { CAPABILITY_HANDLERS, type CapabilityEnv } from './capabilities/index.js';
import { isPlainRecord } from './capabilities/capability-context.js';
import {
  DEFAULT_ADDON_LIMITS,
  DEFAULT_PLATFORM_LIMITS,
  MAX_CALL_DEPTH,
  mergeLimits,
  resolveLimits,
} from './limits.js';
import type { CapRequestMessage, CapResultMessage, WireSource } from './protocol.js';
import { encodeJsonInput, parseUntrustedJson } from './safe-json.js';
import { isJsonText, RawJson, stringifyWithRawJson } from '../shared/raw-json.js';
import { SandboxError, truncateMessage } from './sandbox-error.js';
import type {
  AddonBundle,
  AddonLimits,
  CapabilityScope,
  EntryKind,
  ExecutionRequest,
  ExecutionResult,
  HostCapabilities,
  SandboxLogger,
  SandboxPoolOptions,
  SandboxStats,
  SandboxWorkerKill,
} from './types.js';
import { WorkerSupervisor, type InFlightCall } from './worker-supervisor.js';
import { defaultIsolateMemoryBudgetMb } from './isolate-budget.js';
import { StartPolicies } from './start-policy.js';
import { workerNodeFlags } from './worker-handle.js';

/** SDK calls one execution may make in total. */
export const MAX_CAPABILITY_CALLS_PER_EXECUTION = 1000;
const ENTRY_KINDS: ReadonlySet<string> = new Set<EntryKind>(['function', 'widget', 'handler', 'hook']);
const MAX_ENTRY_NAME_CHARS = 200;

/** Worker kills the pool remembers for the dashboard. */
export const RECENT_WORKER_KILLS = 50;

/** One addon's concurrent calls: in flight, per site, and the calls waiting for a slot. */
interface AddonSlots {
  running: number;
  readonly bySite: Map<string, number>;
  readonly waiting: SlotWaiter[];
}

interface SlotWaiter {
  readonly siteId: string;
  readonly limit: number;
  readonly admit: () => void;
  readonly fail: (err: Error) => void;
}

const silentLogger: SandboxLogger = {
  debug: () => undefined,
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

/** Bundles made by {@link sealBundle}: deeply frozen, so the pool need not copy them per call. */
const sealedBundles = new WeakSet<AddonBundle>();

/**
 * A deeply frozen copy of a bundle, for callers that run the same version many times (the bundle
 * loader): the pool then resolves its limits once and skips the per-call snapshot it takes of
 * bundles that could change under a running call.
 */
export function sealBundle(bundle: AddonBundle): AddonBundle {
  const sealed: AddonBundle = Object.freeze({
    ...bundle,
    permissions: Object.freeze([...bundle.permissions]) as string[],
    limits: bundle.limits ? Object.freeze({ ...bundle.limits }) : undefined,
    dependencies: Object.freeze({ ...bundle.dependencies }),
    httpAllow: Object.freeze([...bundle.httpAllow]) as string[],
    emits: Object.freeze([...bundle.emits]) as string[],
  });
  sealedBundles.add(sealed);
  return sealed;
}

/**
 * Runs addon code in a supervised pool of worker processes, each holding isolated-vm isolates.
 *
 * The pool owns everything that must not be left to a worker: limit resolution, input size checks,
 * the per-addon concurrency limit, and every permission check of the SDK (a compromised worker can
 * only ask; the pool decides with the bundle it was given for that call).
 */
export class SandboxPool {
  private readonly supervisor: WorkerSupervisor;
  private readonly platformLimits: AddonLimits;
  private readonly defaultLimits: AddonLimits;
  private readonly capabilities: HostCapabilities;
  private readonly fetchImpl: typeof fetch;
  private readonly logger: SandboxLogger;
  private readonly slots = new Map<string, AddonSlots>();
  private readonly kills: SandboxWorkerKill[] = [];
  private readonly onWorkerKill: ((kill: SandboxWorkerKill) => void) | undefined;
  /** Whether each (version, site) may start on a worker's thread; outlives any worker. */
  private readonly startPolicies = new StartPolicies();
  private readonly limitsOfSealed = new WeakMap<AddonBundle, AddonLimits>();
  private starting: Promise<void> | null = null;
  /** Set once the workers are up: calls then skip awaiting `start` (one microtask each). */
  private started = false;
  private closed = false;
  private inFlight = 0;

  constructor(opts: SandboxPoolOptions) {
    const workers = Math.max(1, Math.floor(opts.workers ?? 2));
    this.platformLimits = mergeLimits(DEFAULT_PLATFORM_LIMITS, opts.platformLimits);
    this.defaultLimits = resolveLimits(opts.defaultLimits, DEFAULT_ADDON_LIMITS, this.platformLimits);
    this.capabilities = opts.capabilities;
    this.fetchImpl = opts.fetchImpl ?? globalThis.fetch.bind(globalThis);
    this.logger = opts.logger ?? silentLogger;
    this.onWorkerKill = opts.onWorkerKill;
    const maxRssMb = opts.maxWorkerRssMb;
    const maxIsolates = Math.max(workers, Math.floor(opts.maxIsolates ?? 20_000));
    const budgetMb = Math.max(
      8,
      Math.floor(
        opts.isolateMemoryBudgetMb ??
          (opts.maxTotalIsolateMemoryMb === undefined
            ? defaultIsolateMemoryBudgetMb(workers)
            : opts.maxTotalIsolateMemoryMb / workers),
      ),
    );
    const idleIsolateMs = Math.max(1, Math.floor(opts.idleIsolateMs ?? 5 * 60_000));
    this.supervisor = new WorkerSupervisor({
      workers,
      spillAfterMs: opts.spillAfterMs,
      nodeFlags: workerNodeFlags(opts.v8PoolSize, this.platformLimits.memoryMb),
      logger: this.logger,
      maxWorkerRssBytes:
        typeof maxRssMb === 'number' && Number.isFinite(maxRssMb) && maxRssMb > 0
          ? Math.floor(maxRssMb * 1024 * 1024)
          : null,
      onKill: (kill) => this.workerKilled(kill),
      discardEffects: (call) => this.capabilities.discardCallEffects?.(call.job.env.scope) === true,
      workerConfig: (slot) => ({
        workerId: slot,
        maxIsolates: Math.max(1, Math.ceil(maxIsolates / workers)),
        isolateMemoryBudgetMb: budgetMb,
        idleIsolateMs,
        allowCrashTest: opts.allowCrashTest === true,
      }),
      onCapability: (call, request) => this.onCapability(call, request),
    });
  }

  /** Forks the workers. `execute` calls it on first use; call it at boot to fail fast. */
  start(): Promise<void> {
    if (this.closed) return Promise.reject(new Error('SandboxPool is closed.'));
    this.starting ??= this.supervisor.start().then(() => {
      this.started = true;
    });
    return this.starting;
  }

  /** The limits a call of `bundle` runs with: its own, else the defaults, capped by the platform. */
  effectiveLimits(bundle: Pick<AddonBundle, 'limits'>): AddonLimits {
    return resolveLimits(bundle.limits, this.defaultLimits, this.platformLimits);
  }

  /** {@link effectiveLimits} of a sealed bundle, resolved once. */
  private sealedLimits(bundle: AddonBundle): AddonLimits {
    let limits = this.limitsOfSealed.get(bundle);
    if (!limits) this.limitsOfSealed.set(bundle, (limits = this.effectiveLimits(bundle)));
    return limits;
  }

  /**
   * Runs one entry of an addon and returns its JSON-safe output.
   * @throws SandboxError with a sandbox code (see docs/sandbox.md), AppError NOT_FOUND for a missing entry, or
   *   BAD_USER_INPUT for a malformed request.
   */
  async execute(req: ExecutionRequest): Promise<ExecutionResult> {
    if (this.closed) throw new SandboxError(ErrorCode.ServiceUnavailable, 'The sandbox pool is closed.');
    validateRequest(req);
    const callDepth = req.callDepth ?? 0;
    if (!Number.isInteger(callDepth) || callDepth < 0 || callDepth > MAX_CALL_DEPTH) {
      throw new SandboxError(
        ErrorCode.AddonError,
        `The addon call depth limit of ${MAX_CALL_DEPTH} was reached.`,
      );
    }
    const { bundle } = req;
    const sealed = sealedBundles.has(bundle);
    let limits = sealed ? this.sealedLimits(bundle) : this.effectiveLimits(bundle);
    if (req.deadlineAt !== undefined) {
      const left = Math.floor(req.deadlineAt - Date.now());
      if (!(left >= 1)) {
        throw new SandboxError(ErrorCode.ExecutionTimeout, "The caller's deadline has already passed.");
      }
      if (left < limits.timeoutMs) limits = { ...limits, timeoutMs: left };
    }
    // A widget gets two arguments from the caller; they travel as one pair so the input limit
    // covers both and the worker protocol stays one input string.
    const input =
      req.entry.kind === 'widget' ? [req.widgetConfig ?? req.config ?? null, req.input ?? null] : req.input;
    const inputJson = encodeJsonInput(input, 'input', limits.maxInputBytes);
    const configJson = encodeJsonInput(req.config ?? null, 'config', limits.maxInputBytes);

    const waited = this.acquireSlot(bundle.addonId, bundle.addonName, req.siteId, limits);
    if (waited !== null) await waited;
    this.inFlight += 1;
    try {
      if (!this.started) await this.start();
      const deadlineAt = Date.now() + limits.timeoutMs;
      const scope: CapabilityScope = {
        addonId: bundle.addonId,
        addonName: bundle.addonName,
        versionId: bundle.versionId,
        siteId: req.siteId,
        installationId: req.installationId,
        callDepth,
        requestId: req.requestId,
        executionId: req.executionId,
        deadlineAt,
      };
      const env: CapabilityEnv = {
        scope,
        // Snapshot what permission checks read, so a caller mutating its bundle mid-call changes
        // nothing (a sealed bundle cannot change).
        bundle: sealed
          ? bundle
          : {
              ...bundle,
              permissions: [...bundle.permissions],
              dependencies: { ...bundle.dependencies },
              httpAllow: [...bundle.httpAllow],
              emits: [...bundle.emits],
            },
        limits,
        capabilities: this.capabilities,
        fetchImpl: this.fetchImpl,
        deadline: deadlineAt,
      };
      const startSync = this.startPolicies.startSync(bundle.versionId, req.siteId);
      const dispatched = this.supervisor.dispatch({
        versionId: bundle.versionId,
        source: () => toWireSource(bundle),
        limits,
        meta: {
          kind: req.entry.kind,
          name: req.entry.name,
          siteId: req.siteId,
          installationId: req.installationId,
          addonName: bundle.addonName,
          version: bundle.version,
          requestId: req.requestId ?? null,
          callDepth,
          maxOutputChars: limits.maxOutputBytes,
          maxLogChars: limits.maxLogBytes,
        },
        inputJson,
        configJson,
        env,
        measureHeap: req.measureHeap === true,
        startSync,
      });
      const { message, workerId } = await dispatched.catch((err: unknown) => {
        if (err instanceof AppError) this.startPolicies.failed(bundle.versionId, req.siteId, err.code);
        throw err;
      });
      this.startPolicies.succeeded(bundle.versionId, req.siteId, message.start);
      let output: unknown;
      if (req.rawOutput === true) {
        if (!isJsonText(message.outputJson)) throw malformedOutput();
        output = new RawJson(message.outputJson);
      } else {
        try {
          output = parseUntrustedJson(message.outputJson);
        } catch {
          throw malformedOutput();
        }
      }
      return {
        output,
        logs: message.logs,
        logsTruncated: message.logsTruncated,
        durationMs: message.durationMs,
        cpuTimeMs: message.cpuTimeMs,
        workerId,
        cold: message.cold,
        ...(message.heapUsedBytes === undefined ? {} : { heapUsedBytes: message.heapUsedBytes }),
      };
    } finally {
      this.inFlight -= 1;
      this.releaseSlot(bundle.addonId, req.siteId);
    }
  }

  /**
   * Takes one of the addon's concurrent slots for a call of `siteId`: at once (null) when the addon
   * has a free slot and the site is under its fair share, the slots divided evenly among the sites
   * with calls running or waiting; otherwise, if the site is under its share, a promise that settles
   * when a slot frees up (bounded: as many waiters as slots, each for at most its call's time limit).
   * A site at its share, or with the queue full, is refused with TOO_MANY_CONCURRENT_CALLS. The
   * delivery worker claims per addon on the same principle: one tenant's burst waits, others go on.
   */
  private acquireSlot(
    addonId: string,
    addonName: string,
    siteId: string,
    limits: AddonLimits,
  ): Promise<void> | null {
    let slots = this.slots.get(addonId);
    if (slots === undefined) {
      slots = { running: 0, bySite: new Map(), waiting: [] };
      this.slots.set(addonId, slots);
    }
    const limit = limits.maxConcurrentCalls;
    const share = fairShare(slots, siteId, limit);
    const ofSite = slots.bySite.get(siteId) ?? 0;
    // Counted before the first await, so a burst of calls cannot all pass the check.
    if ((slots.running < limit || crowdedOut(slots, siteId, limit, share)) && ofSite < share) {
      take(slots, siteId);
      return null;
    }
    if (ofSite >= share || slots.waiting.length >= limit) {
      if (slots.running === 0 && slots.waiting.length === 0) this.slots.delete(addonId);
      const message =
        share < limit
          ? `Addon "${addonName}" already has ${ofSite} calls running for this site, its fair share of the addon's ${limit} concurrent calls (other sites keep the rest).`
          : `Addon "${addonName}" already has ${slots.running} calls running (limit ${limit}).`;
      throw new SandboxError(ErrorCode.TooManyConcurrentCalls, message, { limit, share });
    }
    const owner = slots;
    return new Promise<void>((resolve, reject) => {
      const waiter: SlotWaiter = {
        siteId,
        limit,
        admit: () => {
          clearTimeout(timer);
          resolve();
        },
        fail: (err) => {
          clearTimeout(timer);
          reject(err);
        },
      };
      const timer = setTimeout(() => {
        const at = owner.waiting.indexOf(waiter);
        if (at >= 0) owner.waiting.splice(at, 1);
        if (owner.running === 0 && owner.waiting.length === 0) this.slots.delete(addonId);
        reject(
          new SandboxError(
            ErrorCode.TooManyConcurrentCalls,
            `Addon "${addonName}" had no free concurrent slot (limit ${limit}) within ${limits.timeoutMs} ms.`,
            { limit, share },
          ),
        );
      }, limits.timeoutMs);
      owner.waiting.push(waiter);
    });
  }

  /** Gives a call's slot back, to the first waiting call whose site is under its fair share. */
  private releaseSlot(addonId: string, siteId: string): void {
    const slots = this.slots.get(addonId);
    if (slots === undefined) return;
    slots.running -= 1;
    const left = (slots.bySite.get(siteId) ?? 1) - 1;
    if (left <= 0) slots.bySite.delete(siteId);
    else slots.bySite.set(siteId, left);
    for (let i = 0; i < slots.waiting.length;) {
      const waiter = slots.waiting[i];
      if (slots.running >= waiter.limit) break;
      if ((slots.bySite.get(waiter.siteId) ?? 0) < fairShare(slots, waiter.siteId, waiter.limit)) {
        slots.waiting.splice(i, 1);
        take(slots, waiter.siteId);
        waiter.admit();
      } else i += 1;
    }
    if (slots.running === 0 && slots.waiting.length === 0) this.slots.delete(addonId);
  }

  /** The last worker kills and crashes (at most RECENT_WORKER_KILLS), newest first. */
  recentWorkerKills(): SandboxWorkerKill[] {
    return [...this.kills].reverse();
  }

  private workerKilled(kill: SandboxWorkerKill): void {
    this.kills.push(kill);
    if (this.kills.length > RECENT_WORKER_KILLS) this.kills.shift();
    // Names and ids only: never the call's input, output or logs.
    this.logger.error(
      {
        workerId: kill.workerId,
        pid: kill.pid,
        reason: kill.reason,
        guilty: kill.guilty.map((g) => ({
          addon: g.addonName,
          version: g.version,
          versionId: g.versionId,
          siteId: g.siteId,
        })),
        failedCalls: kill.failedCalls,
        retriedCalls: kill.retriedCalls,
        rssBytes: kill.rssBytes,
      },
      kill.reason === 'crashed' ? 'sandbox worker crashed; replaced' : 'sandbox worker stopped; replaced',
    );
    try {
      this.onWorkerKill?.(kill);
    } catch (err) {
      this.logger.error({ err }, 'sandbox worker kill listener failed');
    }
  }

  stats(): SandboxStats {
    const perWorker = this.supervisor.stats();
    const sum = (pick: (w: (typeof perWorker)[number]) => number) =>
      perWorker.reduce((n, w) => n + pick(w), 0);
    return {
      workers: perWorker.length,
      workersReady: perWorker.filter((w) => w.ready).length,
      isolates: sum((w) => w.isolates),
      contexts: sum((w) => w.contexts),
      reservedMemoryMb: sum((w) => w.reservedMemoryMb),
      isolateMemoryBytes: sum((w) => w.isolateMemoryBytes),
      memoryPerIsolateBytes:
        sum((w) => w.isolates) === 0
          ? 0
          : Math.round(sum((w) => w.isolateMemoryBytes) / sum((w) => w.isolates)),
      isolateMemoryBudgetBytes: sum((w) => w.isolateMemoryBudgetBytes),
      rssBytes: sum((w) => w.rssBytes),
      inFlight: this.inFlight,
      crashes: this.supervisor.crashes,
      retriedCalls: this.supervisor.retriedCalls,
      perWorker,
    };
  }

  /** Whether the next call of `versionId` for `siteId` may start on a worker's thread (diagnostics, tests). */
  startsSync(versionId: string, siteId: string): boolean {
    return this.startPolicies.startSync(versionId, siteId);
  }

  /** Stops the workers. Calls still running fail with SERVICE_UNAVAILABLE. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const slots of this.slots.values()) {
      for (const waiter of slots.waiting.splice(0)) {
        waiter.fail(new SandboxError(ErrorCode.ServiceUnavailable, 'The sandbox pool is closed.'));
      }
    }
    await this.starting?.catch(() => undefined);
    await this.supervisor.close();
  }

  private async onCapability(call: InFlightCall, request: CapRequestMessage): Promise<CapResultMessage> {
    const { capId, op } = request;
    try {
      const handler = CAPABILITY_HANDLERS.get(op);
      if (handler === undefined) {
        throw new AppError(ErrorCode.BadUserInput, `Unknown SDK call "${truncateMessage(op, 50)}".`);
      }
      if (call.capTotal > MAX_CAPABILITY_CALLS_PER_EXECUTION) {
        throw new AppError(
          ErrorCode.RateLimited,
          `One call may make at most ${MAX_CAPABILITY_CALLS_PER_EXECUTION} SDK calls.`,
        );
      }
      const args = parseUntrustedJson(request.argsJson);
      if (!isPlainRecord(args)) throw new AppError(ErrorCode.BadUserInput, `${op}: malformed arguments.`);
      const value = await handler(call.job.env, args);
      // A RawJson (a dependency's output) goes back as its text.
      return { t: 'cap-result', capId, ok: true, valueJson: stringifyWithRawJson(value ?? null)! };
    } catch (err) {
      if (err instanceof AppError) {
        return { t: 'cap-result', capId, ok: false, code: err.code, message: truncateMessage(err.message) };
      }
      this.logger.error(
        { err, op, addonId: call.job.env.scope.addonId, siteId: call.job.env.scope.siteId },
        'sandbox capability failed',
      );
      return {
        t: 'cap-result',
        capId,
        ok: false,
        code: ErrorCode.InternalServerError,
        message: `${op} failed because of a host error.`,
      };
    }
  }
}

/** The slots one site may hold: the addon's limit split evenly among the sites using or waiting for it. */
function fairShare(slots: AddonSlots, siteId: string, limit: number): number {
  const sites = new Set(slots.bySite.keys());
  for (const waiter of slots.waiting) sites.add(waiter.siteId);
  sites.add(siteId);
  return Math.max(1, Math.floor(limit / sites.size));
}

/**
 * Whether another site holds more than its share of a full addon: a site under its share then
 * takes one of a quarter more slots at once, instead of waiting for that site's slow calls to end.
 */
function crowdedOut(slots: AddonSlots, siteId: string, limit: number, share: number): boolean {
  if (slots.running >= limit + Math.floor(limit / 4)) return false;
  for (const [other, held] of slots.bySite) if (other !== siteId && held > share) return true;
  return false;
}

function take(slots: AddonSlots, siteId: string): void {
  slots.running += 1;
  slots.bySite.set(siteId, (slots.bySite.get(siteId) ?? 0) + 1);
}

/** The worker's answer is not the JSON text it must be: only a broken or compromised worker says that. */
const malformedOutput = () =>
  new SandboxError(ErrorCode.SandboxCrashed, 'The sandbox returned malformed output.');

function toWireSource(bundle: AddonBundle): WireSource {
  return {
    addonId: bundle.addonId,
    addonName: bundle.addonName,
    version: bundle.version,
    source: bundle.source,
    wasmBase64: bundle.wasm ? Buffer.from(bundle.wasm).toString('base64') : null,
  };
}

function validateRequest(req: ExecutionRequest): void {
  const problems: string[] = [];
  const { bundle, entry } = req;
  if (typeof bundle?.versionId !== 'string' || bundle.versionId === '') problems.push('bundle.versionId');
  if (typeof bundle?.addonId !== 'string' || bundle.addonId === '') problems.push('bundle.addonId');
  if (typeof bundle?.source !== 'string') problems.push('bundle.source');
  if (!Array.isArray(bundle?.permissions)) problems.push('bundle.permissions');
  if (typeof req.siteId !== 'string' || req.siteId === '') problems.push('siteId');
  if (!ENTRY_KINDS.has(entry?.kind)) problems.push('entry.kind');
  if (typeof entry?.name !== 'string' || entry.name === '' || entry.name.length > MAX_ENTRY_NAME_CHARS) {
    problems.push('entry.name');
  }
  if (problems.length > 0) {
    throw new AppError(ErrorCode.BadUserInput, `Invalid sandbox request: ${problems.join(', ')}.`);
  }
}
