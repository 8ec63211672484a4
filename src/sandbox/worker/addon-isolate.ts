import ivm from 'isolated-vm';
import { ErrorCode } from '../../errors/index.js';
import { BOOTSTRAP_GLOBALS, type BootstrapDriver } from '../in-isolate/bootstrap.js';
import type { WireSource } from '../protocol.js';
import { SandboxError, truncateMessage } from '../sandbox-error.js';
import { BOOTSTRAP_SOURCE } from './bootstrap-source.js';

/**
 * Worker-side host function the bootstrap calls for every SDK capability. It answers later, with
 * JSON, through the context's `resume` (or never, for a request it refuses to serve).
 */
export type HostCallHandler = (
  isolate: AddonIsolate,
  siteKey: string,
  execId: unknown,
  capId: unknown,
  op: unknown,
  argsJson: unknown,
) => void;

/** Worker-side function the bootstrap calls with the envelope of a call that waited for the host. */
export type DoneHandler = (execId: unknown, envelope: unknown) => void;

/** One site's context: its own globals and builtins, with the addon's module loaded once. */
export interface SiteContext {
  readonly key: string;
  readonly context: ivm.Context;
  /** The bootstrap's {@link BootstrapDriver} methods. */
  readonly start: ivm.Reference<BootstrapDriver['start']>;
  readonly take: ivm.Reference<BootstrapDriver['take']>;
  readonly resume: ivm.Reference<BootstrapDriver['resume']>;
  active: number;
  lastUsedAt: number;
}

/** Why an isolate was thrown away; calls still running in it fail with this. */
export interface DisposeReason {
  code: ErrorCode;
  message: string;
}

/** V8 code caches of compiled scripts, by version id (and {@link BOOTSTRAP_CACHE_KEY}), shared by a worker's isolates. */
export type CodeCache = Map<string, ivm.ExternalCopy<ArrayBuffer>>;

/** The bootstrap's entry in a {@link CodeCache}. */
export const BOOTSTRAP_CACHE_KEY = 'sandbox:bootstrap';

/** Contexts kept per isolate; the least recently used idle one is released beyond this. */
export const MAX_CONTEXTS_PER_ISOLATE = 32;

/**
 * The isolate of one addon version inside a worker (the worker keeps one per version and site):
 * compiled bootstrap and addon scripts (compiled once, run in each new site context) and the site
 * contexts themselves.
 *
 * Every asynchronous operation on the isolate goes through {@link track}, so {@link busy} says
 * whether isolated-vm may be running or have queued work for it: a synchronous call into a busy
 * isolate waits for the isolate's lock, that is for everything queued before it, and holds the
 * worker's event loop meanwhile.
 */
export class AddonIsolate {
  readonly isolate: ivm.Isolate;
  /** Settles when both scripts are compiled; rejects with ADDON_ERROR on a syntax error. */
  readonly ready: Promise<void>;
  readonly activeCalls = new Set<object>();
  lastUsedAt = Date.now();
  /** CPU time at the moment the isolate last became idle; growth beyond it means background work. */
  idleCpuMark = 0n;
  disposeReason: DisposeReason | null = null;
  /** Memory this isolate counts for in the worker's budget, in bytes (an estimate until sampled). */
  accountedBytes: number;
  /** When {@link accountedBytes} was last measured (epoch ms), 0 before the first sample. */
  sampledAt = 0;
  private sampling = false;
  private pendingAsync = 0;
  private bootstrapScript: ivm.Script | null = null;
  private addonScript: ivm.Script | null = null;
  private readonly contexts = new Map<string, Promise<SiteContext>>();
  /** Settled contexts, in least recently used order. */
  private readonly sites = new Map<string, SiteContext>();
  /** The version's wasm module, decoded once for every context that instantiates it. */
  private readonly wasm: Uint8Array | null;

  constructor(
    /** The worker's key of this isolate (version and site). */
    readonly key: string,
    readonly versionId: string,
    private readonly source: WireSource,
    readonly memoryMb: number,
    estimatedBytes: number,
    private readonly onHostCall: HostCallHandler,
    private readonly onDone: DoneHandler,
    private readonly crashTest: boolean,
    private readonly codeCache: CodeCache,
  ) {
    this.accountedBytes = estimatedBytes;
    this.isolate = new ivm.Isolate({ memoryLimit: memoryMb });
    this.wasm = source.wasmBase64 === null ? null : new Uint8Array(Buffer.from(source.wasmBase64, 'base64'));
    this.ready = this.compile();
    // Observed by callers; keep an unobserved rejection from crashing the worker.
    this.ready.catch(() => undefined);
  }

  get disposed(): boolean {
    return this.disposeReason !== null || this.isolate.isDisposed;
  }

  /** True while an asynchronous operation on the isolate is queued or running. */
  get busy(): boolean {
    return this.pendingAsync > 0;
  }

  /** Counts `operation` (an asynchronous isolated-vm call on this isolate) in {@link busy} until it settles. */
  track<T>(operation: Promise<T>): Promise<T> {
    this.pendingAsync += 1;
    const settled = () => {
      this.pendingAsync -= 1;
    };
    operation.then(settled, settled);
    return operation;
  }

  /**
   * Measures the isolate (heap committed, malloc'd and external memory: a little above what it
   * adds to the process's RSS) without waiting for its lock; resolves to the new figure, or null
   * when a sample is already under way or the isolate is gone.
   */
  async sample(): Promise<number | null> {
    if (this.sampling || this.disposed) return null;
    this.sampling = true;
    try {
      const heap = await this.track(this.isolate.getHeapStatistics());
      if (this.disposed) return null;
      this.sampledAt = Date.now();
      return heap.total_physical_size + heap.malloced_memory + heap.externally_allocated_size;
    } catch {
      return null;
    } finally {
      this.sampling = false;
    }
  }

  /** The isolate's used heap, measured without waiting for its lock. */
  async usedHeapBytes(): Promise<number> {
    return (await this.track(this.isolate.getHeapStatistics())).used_heap_size;
  }

  get contextCount(): number {
    return this.contexts.size;
  }

  get cpuTime(): bigint {
    return this.isolate.isDisposed ? 0n : this.isolate.cpuTime;
  }

  private async compile(): Promise<void> {
    this.bootstrapScript = await this.compileCached(
      BOOTSTRAP_CACHE_KEY,
      BOOTSTRAP_SOURCE,
      'sandbox:///bootstrap.js',
    );
    const filename = `addon:///${encodeURIComponent(this.source.addonName)}@${encodeURIComponent(this.source.version)}.js`;
    try {
      this.addonScript = await this.compileCached(this.versionId, this.source.source, filename);
    } catch (err) {
      throw new SandboxError(
        ErrorCode.AddonError,
        `The code of addon "${this.source.addonName}" does not compile: ${describeIsolateError(err)}`,
      );
    }
  }

  /**
   * Compiles with V8's code cache of an earlier compile of the same script in this worker (each
   * site of a version has an isolate of its own, and reparsing the bootstrap is a good part of a
   * new site's first call: decision 0007). V8 checks the data against the source and rejects
   * what does not match; only this worker's own compiles produce it.
   */
  private async compileCached(cacheKey: string, source: string, filename: string): Promise<ivm.Script> {
    const cached = this.codeCache.get(cacheKey);
    const options =
      cached === undefined ? { filename, produceCachedData: true } : { filename, cachedData: cached };
    const script = (await this.track(this.isolate.compileScript(source, options))) as ivm.Script &
      ivm.CachedDataResult & { cachedDataRejected?: boolean };
    if (cached === undefined && script.cachedData !== undefined)
      this.codeCache.set(cacheKey, script.cachedData);
    else if (script.cachedDataRejected === true) this.codeCache.delete(cacheKey);
    return script;
  }

  /**
   * The context of `siteKey`, creating it (bootstrap, wasm, addon top level, all under `timeoutMs`)
   * when this isolate has none yet. `cold` is true for the call that created it.
   */
  async site(siteKey: string, timeoutMs: number): Promise<{ site: SiteContext; cold: boolean }> {
    const existing = this.contexts.get(siteKey);
    if (existing !== undefined) {
      const site = await existing;
      // Re-insert: Map order is the LRU order.
      if (this.sites.delete(siteKey)) this.sites.set(siteKey, site);
      return { site, cold: false };
    }
    this.releaseContextsBeyond(MAX_CONTEXTS_PER_ISOLATE - 1);
    const created = this.createContext(siteKey, timeoutMs);
    this.contexts.set(siteKey, created);
    try {
      const site = await created;
      if (this.contexts.get(siteKey) === created) this.sites.set(siteKey, site);
      return { site, cold: true };
    } catch (err) {
      if (this.contexts.get(siteKey) === created) this.contexts.delete(siteKey);
      throw err;
    }
  }

  private async createContext(siteKey: string, timeoutMs: number): Promise<SiteContext> {
    await this.ready;
    const context = await this.track(this.isolate.createContext());
    try {
      const global = context.global;
      await this.track(
        global.set(
          BOOTSTRAP_GLOBALS.host,
          new ivm.Reference((execId: unknown, capId: unknown, op: unknown, argsJson: unknown) =>
            this.onHostCall(this, siteKey, execId, capId, op, argsJson),
          ),
        ),
      );
      await this.track(
        global.set(
          BOOTSTRAP_GLOBALS.done,
          new ivm.Reference((execId: unknown, envelope: unknown) => this.onDone(execId, envelope)),
        ),
      );
      if (this.wasm !== null) {
        await this.track(
          global.set(BOOTSTRAP_GLOBALS.wasm, new ivm.ExternalCopy(this.wasm).copyInto({ release: true })),
        );
      }
      await this.track(global.set(BOOTSTRAP_GLOBALS.wasmLimitMb, this.memoryMb));
      if (this.crashTest) await this.track(global.set(BOOTSTRAP_GLOBALS.crashTest, true));
      const started = Date.now();
      let start: SiteContext['start'];
      let take: SiteContext['take'];
      let resume: SiteContext['resume'];
      try {
        const driver = (await this.track(
          this.bootstrapScript!.run(context, { reference: true, timeout: timeoutMs }),
        )) as ivm.Reference<BootstrapDriver>;
        start = (await this.track(driver.get('start', { reference: true }))) as SiteContext['start'];
        take = (await this.track(driver.get('take', { reference: true }))) as SiteContext['take'];
        resume = (await this.track(driver.get('resume', { reference: true }))) as SiteContext['resume'];
        driver.release();
      } catch (err) {
        throw loadError(this.source, err, 'WebAssembly module');
      }
      const left = Math.max(1, timeoutMs - (Date.now() - started));
      try {
        await this.track(this.addonScript!.run(context, { timeout: left }));
      } catch (err) {
        throw loadError(this.source, err, 'module');
      }
      return { key: siteKey, context, start, take, resume, active: 0, lastUsedAt: Date.now() };
    } catch (err) {
      context.release();
      throw err;
    }
  }

  /** Releases least recently used contexts without running calls until at most `keep` remain. */
  releaseContextsBeyond(keep: number): void {
    for (const [key, site] of this.sites) {
      if (this.contexts.size <= keep) return;
      if (site.active === 0) this.releaseContext(key, site);
    }
  }

  /** Releases contexts without running calls that were last used before `cutoff` (epoch ms). */
  releaseContextsIdleSince(cutoff: number): void {
    for (const [key, site] of this.sites) {
      if (site.active === 0 && site.lastUsedAt < cutoff) this.releaseContext(key, site);
    }
  }

  private releaseContext(key: string, site: SiteContext): void {
    this.sites.delete(key);
    this.contexts.delete(key);
    site.start.release();
    site.take.release();
    site.resume.release();
    site.context.release();
  }

  /** Frees the isolate. Safe to call twice; running code is terminated. */
  dispose(reason: DisposeReason): void {
    this.disposeReason ??= reason;
    this.contexts.clear();
    this.sites.clear();
    if (!this.isolate.isDisposed) this.isolate.dispose();
  }
}

/** Message of an error that came out of an isolate, without host frames. */
export function describeIsolateError(err: unknown): string {
  if (err instanceof Error) return truncateMessage(err.message);
  return truncateMessage(String(err));
}

/** True for the errors isolated-vm raises when a run hits its `timeout`. */
export function isTimeoutError(err: unknown): boolean {
  return err instanceof Error && err.message.includes('Script execution timed out');
}

/** True for the errors isolated-vm raises when the isolate ran out of heap. */
export function isMemoryError(err: unknown): boolean {
  return err instanceof Error && /memory limit|Array buffer allocation failed/.test(err.message);
}

function loadError(source: WireSource, err: unknown, what: string): unknown {
  if (isTimeoutError(err) || isMemoryError(err) || err instanceof SandboxError) return err;
  if (err instanceof Error && /Isolate (is|was) disposed/.test(err.message)) return err;
  return new SandboxError(
    ErrorCode.AddonError,
    `The ${what} of addon "${source.addonName}" failed to load: ${describeIsolateError(err)}`,
  );
}
