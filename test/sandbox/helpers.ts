import { randomUUID } from 'node:crypto';
import { AppError, ErrorCode } from '../../src/errors/index.js';
import {
  SandboxPool,
  type AddonBundle,
  type CapabilityScope,
  type EntryKind,
  type ExecutionRequest,
  type ExecutionResult,
  type HostCapabilities,
  type SandboxPoolOptions,
} from '../../src/sandbox/index.js';

/**
 * In-memory HostCapabilities: a test double of the interface the lead backs with Prisma. Storage is
 * scoped per addon and site, the way the real one must be.
 */
export class MemoryCapabilities implements HostCapabilities {
  readonly store = new Map<string, unknown>();
  readonly events: { scope: CapabilityScope; name: string; data: unknown }[] = [];
  readonly scopes: CapabilityScope[] = [];
  /** Installed addons by name, for callAddon. */
  readonly addons = new Map<string, AddonBundle>();
  pool: SandboxPool | null = null;
  failNext: Error | null = null;
  /** Milliseconds every storage read waits before answering (0: at once). */
  storageDelayMs = 0;

  private key(scope: CapabilityScope, key: string): string {
    return `${scope.addonId}\u0000${scope.siteId}\u0000${key}`;
  }

  private check(scope: CapabilityScope): void {
    this.scopes.push(scope);
    if (this.failNext !== null) {
      const err = this.failNext;
      this.failNext = null;
      throw err;
    }
  }

  async storageGet(scope: CapabilityScope, key: string): Promise<unknown | null> {
    this.check(scope);
    if (this.storageDelayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.storageDelayMs));
    return this.store.has(this.key(scope, key))
      ? structuredClone(this.store.get(this.key(scope, key)))
      : null;
  }

  async storageSet(scope: CapabilityScope, key: string, value: unknown): Promise<void> {
    this.check(scope);
    if (key === 'quota') throw new AppError(ErrorCode.StorageQuotaExceeded, 'Storage quota exceeded.');
    this.store.set(this.key(scope, key), structuredClone(value));
  }

  async storageDelete(scope: CapabilityScope, key: string): Promise<boolean> {
    this.check(scope);
    return this.store.delete(this.key(scope, key));
  }

  async storageList(
    scope: CapabilityScope,
    opts: { prefix?: string; limit?: number; cursor?: string },
  ): Promise<{ keys: string[]; cursor: string | null }> {
    this.check(scope);
    const base = this.key(scope, '');
    const keys = [...this.store.keys()]
      .filter((k) => k.startsWith(base))
      .map((k) => k.slice(base.length))
      .filter((k) => k.startsWith(opts.prefix ?? ''))
      .filter((k) => opts.cursor === undefined || k > opts.cursor)
      .sort();
    const limit = opts.limit ?? 100;
    const page = keys.slice(0, limit);
    return { keys: page, cursor: keys.length > limit ? page[page.length - 1] : null };
  }

  async emitEvent(scope: CapabilityScope, name: string, data: unknown): Promise<{ id: string }> {
    this.check(scope);
    this.events.push({ scope, name, data });
    return { id: `evt-${this.events.length}` };
  }

  async callAddon(
    scope: CapabilityScope,
    addonName: string,
    functionName: string,
    data: unknown,
  ): Promise<unknown> {
    this.check(scope);
    const bundle = this.addons.get(addonName);
    if (bundle === undefined || this.pool === null)
      throw new AppError(ErrorCode.NotFound, `No addon ${addonName}.`);
    const result = await this.pool.execute({
      bundle,
      siteId: scope.siteId,
      installationId: null,
      config: null,
      entry: { kind: 'function', name: functionName },
      input: data,
      callDepth: scope.callDepth + 1,
      requestId: scope.requestId,
      // As the app does: a dependency call never outlives its caller.
      deadlineAt: scope.deadlineAt,
    });
    return result.output;
  }
}

let counter = 0;

/** A bundle with a fresh version id unless one is given. */
export function makeBundle(source: string, overrides: Partial<AddonBundle> = {}): AddonBundle {
  counter += 1;
  const name = overrides.addonName ?? `addon-${counter}`;
  return {
    versionId: randomUUID(),
    addonId: `id-${name}`,
    addonName: name,
    version: '1.0.0',
    source,
    wasm: null,
    permissions: [],
    limits: {},
    dependencies: {},
    httpAllow: [],
    emits: [],
    ...overrides,
  };
}

/** Source of an addon exporting the given functions object literal. */
export function functionsAddon(functionsLiteral: string): string {
  return `module.exports = { functions: ${functionsLiteral} };`;
}

export function createPool(
  capabilities: MemoryCapabilities,
  opts: Partial<SandboxPoolOptions> = {},
): SandboxPool {
  const pool = new SandboxPool({ workers: 2, capabilities, ...opts });
  capabilities.pool = pool;
  return pool;
}

export interface CallOptions {
  siteId?: string;
  kind?: EntryKind;
  config?: unknown;
  widgetConfig?: unknown;
  measureHeap?: boolean;
  installationId?: string | null;
  callDepth?: number;
}

export function call(
  pool: SandboxPool,
  bundle: AddonBundle,
  name: string,
  input: unknown = null,
  opts: CallOptions = {},
): Promise<ExecutionResult> {
  const req: ExecutionRequest = {
    bundle,
    siteId: opts.siteId ?? 'site-1',
    installationId: opts.installationId ?? null,
    config: opts.config ?? null,
    entry: { kind: opts.kind ?? 'function', name },
    input,
    ...(opts.widgetConfig === undefined ? {} : { widgetConfig: opts.widgetConfig }),
    ...(opts.measureHeap ? { measureHeap: true } : {}),
    callDepth: opts.callDepth,
  };
  return pool.execute(req);
}

/** Resolves to the error code of a rejected call (fails the test if it succeeds). */
export async function codeOf(promise: Promise<unknown>): Promise<{ code: string; message: string }> {
  try {
    const value = await promise;
    throw new Error(`expected a rejection, got ${JSON.stringify(value)?.slice(0, 200)}`);
  } catch (err) {
    if (err instanceof AppError) return { code: err.code, message: err.message };
    throw err;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Wasm module exporting `add(i32, i32) -> i32` and `spin()` (an infinite loop), hand-assembled.
 */
// prettier-ignore
export const WASM_ADD_AND_SPIN = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  // type section: (i32, i32) -> i32 ; () -> ()
  0x01, 0x0a, 0x02, 0x60, 0x02, 0x7f, 0x7f, 0x01, 0x7f, 0x60, 0x00, 0x00,
  // function section: f0: type 0, f1: type 1
  0x03, 0x03, 0x02, 0x00, 0x01,
  // export section: "add" -> f0, "spin" -> f1
  0x07, 0x0e, 0x02, 0x03, 0x61, 0x64, 0x64, 0x00, 0x00, 0x04, 0x73, 0x70, 0x69, 0x6e, 0x00, 0x01,
  // code section
  0x0a, 0x11, 0x02,
  // f0: local.get 0, local.get 1, i32.add, end
  0x07, 0x00, 0x20, 0x00, 0x20, 0x01, 0x6a, 0x0b,
  // f1: loop (void) br 0 end end
  0x07, 0x00, 0x03, 0x40, 0x0c, 0x00, 0x0b, 0x0b,
]);
