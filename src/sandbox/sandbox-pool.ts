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
} from './types.js';
import { WorkerSupervisor, type InFlightCall } from './worker-supervisor.js';
import { defaultIsolateMemoryBudgetMb } from './isolate-budget.js';
import { StartPolicies } from './start-policy.js';
import { workerNodeFlags } from './worker-handle.js';

/** SDK calls one execution may make in total. */
export const MAX_CAPABILITY_CALLS_PER_EXECUTION = 1000;
const ENTRY_KINDS: ReadonlySet<string> = new Set<EntryKind>(['function', 'widget', 'handler', 'hook']);
const MAX_ENTRY_NAME_CHARS = 200;

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
  private readonly concurrent = new Map<string, number>();
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
      nodeFlags: workerNodeFlags(opts.v8PoolSize),
      logger: this.logger,
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

    const running = this.concurrent.get(bundle.addonId) ?? 0;
    if (running >= limits.maxConcurrentCalls) {
      throw new SandboxError(
        ErrorCode.TooManyConcurrentCalls,
        `Addon "${bundle.addonName}" already has ${running} calls running (limit ${limits.maxConcurrentCalls}).`,
        { limit: limits.maxConcurrentCalls },
      );
    }
    // Counted before the first await, so a burst of calls cannot all pass the check above.
    this.concurrent.set(bundle.addonId, running + 1);
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
      const left = (this.concurrent.get(bundle.addonId) ?? 1) - 1;
      if (left <= 0) this.concurrent.delete(bundle.addonId);
      else this.concurrent.set(bundle.addonId, left);
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
      rssBytes: sum((w) => w.rssBytes),
      inFlight: this.inFlight,
      crashes: this.supervisor.crashes,
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
