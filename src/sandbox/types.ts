/**
 * Public types of the sandbox engine. The engine is transport-agnostic: callers hand it a bundle and an
 * entry to run, and a {@link HostCapabilities} implementation that backs the addon SDK.
 */

/** Resource limits of one addon. Every field is capped by the pool's platform limits. */
export interface AddonLimits {
  /** Heap limit of the addon's isolate, in MB (minimum 8). */
  memoryMb: number;
  /** Wall-clock limit of one call, in ms, including module load and capability round trips. */
  timeoutMs: number;
  /** CPU time one call may spend inside the isolate, in ms. */
  cpuTimeMs: number;
  /** Size of the JSON-encoded input (and, separately, of the config), in bytes. */
  maxInputBytes: number;
  /** Size of the JSON-encoded output, in bytes. */
  maxOutputBytes: number;
  /** Calls of this addon in flight at once, across the whole pool. */
  maxConcurrentCalls: number;
  /** Bytes of `ctx.log` output kept per call; the rest is dropped and `logsTruncated` is set. */
  maxLogBytes: number;
}

/** One published addon version, as the sandbox needs it. */
export interface AddonBundle {
  /** Identifies the exact code; isolates and compiled scripts are cached per version id. */
  versionId: string;
  addonId: string;
  addonName: string;
  version: string;
  /** One self-contained script that assigns `module.exports` (see `docs/sandbox.md`). */
  source: string;
  /** Optional WebAssembly binary, compiled inside the isolate and exposed as `ctx.wasm.module`. */
  wasm?: Uint8Array | null;
  /** Granted permissions, e.g. `storage.read`, `storage.write`, `events.emit`, `http.fetch`. */
  permissions: string[];
  limits?: Partial<AddonLimits>;
  /** Addons this one may call through `ctx.addons.call`, by name (value: semver range). */
  dependencies: Record<string, string>;
  /** Hosts `ctx.http.fetch` may reach: `api.example.com`, `*.example.com` or `host:port`. */
  httpAllow: string[];
  /** Event names `ctx.events.emit` may emit. */
  emits: string[];
}

export type EntryKind = 'function' | 'widget' | 'handler' | 'hook';

export interface ExecutionRequest {
  bundle: AddonBundle;
  siteId: string;
  installationId: string | null;
  /** The installation's configuration, visible as `ctx.config`. */
  config: unknown;
  entry: { kind: EntryKind; name: string };
  /**
   * Function: its data. Widget: the render context. Handler: the event. Hook `upgrade`: `{ fromVersion }`.
   */
  input: unknown;
  /**
   * Widget entries only: the widget's own config (the render function's first argument), distinct
   * from the installation config in `ctx.config`. Defaults to `config`.
   */
  widgetConfig?: unknown;
  /** Report {@link ExecutionResult.heapUsedBytes} (costs a heap statistics read; local runs only). */
  measureHeap?: boolean;
  /** 0 for a call from outside; `ctx.addons.call` adds one per hop. */
  callDepth?: number;
  requestId?: string;
  /**
   * Return the output as a `RawJson` (src/shared/raw-json.ts) of the (validated) JSON text instead of parsing it: for
   * callers that only pass it on (responses, `ctx.addons.call`).
   */
  rawOutput?: boolean;
  /** Identifies this call to the host capabilities (as {@link CapabilityScope.executionId}). */
  executionId?: string;
  /**
   * Epoch ms by which the call must end (a dependency call: its caller's deadline). Its wall-time
   * limit is cut to what is left, so a callee never outlives its caller.
   */
  deadlineAt?: number;
}

export interface LogEntry {
  level: 'debug' | 'info' | 'warn' | 'error';
  message: string;
  /** Milliseconds since the epoch, as the isolate's clock saw it. */
  at: number;
}

export interface ExecutionResult {
  /**
   * The entry's return value after a JSON round trip (widgets: `{ html, css?, javascript? }`), or
   * with `rawOutput` its JSON text as a `RawJson` (src/shared/raw-json.ts).
   */
  output: unknown;
  logs: LogEntry[];
  logsTruncated: boolean;
  /** Wall time inside the worker, module load included. */
  durationMs: number;
  /** CPU time the isolate spent (approximate when calls of one version overlap). */
  cpuTimeMs: number;
  workerId: number;
  /** True when this call loaded the module: a new isolate, or a new context for this site. */
  cold: boolean;
  /** With `measureHeap`: the addon isolate's used heap after the call (its memory limit's measure). */
  heapUsedBytes?: number;
}

/** Who is asking, handed to every {@link HostCapabilities} method. */
export interface CapabilityScope {
  addonId: string;
  addonName: string;
  versionId: string;
  siteId: string;
  installationId: string | null;
  callDepth: number;
  requestId?: string;
  /** {@link ExecutionRequest.executionId} of the call asking: the host keeps per-call state by it. */
  executionId?: string;
  /** Epoch ms when the call asking reaches its wall-time limit: what its dependency calls may use. */
  deadlineAt?: number;
}

/**
 * What the host provides to addon code. Called only after the pool has checked the permission and the
 * argument types and sizes. Throw an `AppError` to give the addon a specific code; any other error is
 * masked as "capability failed".
 */
export interface HostCapabilities {
  storageGet(scope: CapabilityScope, key: string): Promise<unknown | null>;
  storageSet(scope: CapabilityScope, key: string, value: unknown): Promise<void>;
  storageDelete(scope: CapabilityScope, key: string): Promise<boolean>;
  storageList(
    scope: CapabilityScope,
    opts: { prefix?: string; limit?: number; cursor?: string },
  ): Promise<{ keys: string[]; cursor: string | null }>;
  /**
   * With `idempotencyKey`, an event already emitted with that key (same site and addon) is
   * returned instead of a new one (`duplicate: true`).
   */
  emitEvent(
    scope: CapabilityScope,
    name: string,
    data: unknown,
    options?: { idempotencyKey?: string },
  ): Promise<{ id: string; duplicate?: boolean }>;
  /**
   * Runs `functionName` of the installed addon `addonName` for `scope.siteId` and returns its output.
   * The implementation normally resolves the bundle and calls `SandboxPool.execute` with
   * `callDepth: scope.callDepth + 1`.
   */
  callAddon(scope: CapabilityScope, addonName: string, functionName: string, data: unknown): Promise<unknown>;
  /**
   * Optional: drops the storage writes and events held for the call `scope.executionId`, which is
   * about to run again from the start because its worker was stopped for another call. Returns true
   * when done; without it, a call that wrote or emitted is never run again.
   */
  discardCallEffects?(scope: CapabilityScope): boolean;
}

/** The subset of a pino logger the sandbox uses. */
export interface SandboxLogger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
}

export interface SandboxPoolOptions {
  /** Worker processes; default 2. */
  workers?: number;
  /** Upper bounds for every addon's limits (defaults: see `DEFAULT_PLATFORM_LIMITS`). */
  platformLimits?: Partial<AddonLimits>;
  /** Limits of an addon that sets none (defaults: see `DEFAULT_ADDON_LIMITS`). */
  defaultLimits?: Partial<AddonLimits>;
  /**
   * Live isolates across the pool (a count cap; split evenly across workers); least recently used
   * idle ones are evicted beyond it. Default 20,000.
   */
  maxIsolates?: number;
  /**
   * Measured memory (heap and external, sampled after calls) the isolates of one worker may keep,
   * in MB; least recently used idle ones are evicted beyond it. Default: a quarter of the machine's
   * memory split over the workers (`defaultIsolateMemoryBudgetMb`).
   */
  isolateMemoryBudgetMb?: number;
  /** Deprecated: the same budget for the whole pool (split over the workers); `isolateMemoryBudgetMb` wins. */
  maxTotalIsolateMemoryMb?: number;
  /** An isolate unused for this long is disposed. Default 5 minutes. */
  idleIsolateMs?: number;
  /**
   * A version's home worker is passed over once its oldest call in flight is this old. Default
   * SPILL_AFTER_MS (4 ms); tests of packing raise it so a slow test machine does not trigger it.
   */
  spillAfterMs?: number;
  /** V8 background threads of each worker process (`--v8-pool-size`); default 1 (see `workerNodeFlags`). */
  v8PoolSize?: number;
  capabilities: HostCapabilities;
  /** Used for `ctx.http.fetch`; default `globalThis.fetch`. */
  fetchImpl?: typeof fetch;
  logger?: SandboxLogger;
  /**
   * A worker whose resident memory passes this many MB is stopped and replaced (only the calls of the
   * version and site whose WebAssembly memory grew fail; the others are retried). Default: off.
   */
  maxWorkerRssMb?: number;
  /** Called once for every worker the pool stopped or lost (after it was logged). */
  onWorkerKill?: (kill: SandboxWorkerKill) => void;
  /**
   * Test-only: gives addon code a global `__sandboxCrashWorkerForTest()` that kills its worker process.
   * Never enable in production.
   */
  allowCrashTest?: boolean;
}

/** Why a sandbox worker process was stopped or lost. */
export type WorkerKillReason =
  /** A call missed its deadline while the worker still answered. */
  | 'deadline'
  /** A call missed its deadline while the worker's event loop was not answering. */
  | 'stalled'
  /** The worker's resident memory passed `maxWorkerRssMb`. */
  | 'rss'
  /** The process died by itself (a native crash, an abort, a kill from outside). */
  | 'crashed';

/** The addon version and site held responsible for a worker kill. */
export interface SandboxGuilty {
  addonId: string;
  addonName: string;
  version: string;
  versionId: string;
  siteId: string;
}

/** One worker kill or crash, as logged, counted and shown on the dashboard. */
export interface SandboxWorkerKill {
  at: Date;
  workerId: number;
  pid: number | null;
  reason: WorkerKillReason;
  /** Empty when nothing identified a culprit (every call in flight was then retried once if it could be). */
  guilty: SandboxGuilty[];
  /** Calls in flight on the worker that failed (the guilty ones, and innocent ones that could not be retried). */
  failedCalls: number;
  /** Innocent calls sent again to a healthy worker. */
  retriedCalls: number;
  /** The worker's last reported resident memory, in bytes. */
  rssBytes: number;
}

export interface SandboxWorkerStats {
  id: number;
  pid: number | null;
  ready: boolean;
  inFlight: number;
  isolates: number;
  contexts: number;
  /** Sum of the memory limits of the worker's isolates, in MB (hard limits, not reserved). */
  reservedMemoryMb: number;
  /** Measured memory of the worker's isolates (last sample of each, estimates for new ones), in bytes. */
  isolateMemoryBytes: number;
  /** The budget isolateMemoryBytes is kept within, in bytes. */
  isolateMemoryBudgetBytes: number;
  /** Resident set size of the worker process (isolate heaps included), in bytes. */
  rssBytes: number;
}

export interface SandboxStats {
  workers: number;
  workersReady: number;
  isolates: number;
  contexts: number;
  reservedMemoryMb: number;
  /** Measured memory of the isolates across the workers, in bytes. */
  isolateMemoryBytes: number;
  /** isolateMemoryBytes per live isolate (0 without isolates), in bytes. */
  memoryPerIsolateBytes: number;
  /** The workers' budgets for isolateMemoryBytes together, in bytes. */
  isolateMemoryBudgetBytes: number;
  rssBytes: number;
  inFlight: number;
  /** Worker processes that died since the pool started. */
  crashes: number;
  /** Calls sent again to another worker after the worker running them was stopped. */
  retriedCalls: number;
  perWorker: SandboxWorkerStats[];
}
