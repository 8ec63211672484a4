import { randomUUID } from 'node:crypto';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { AppError, ErrorCode, NotFoundError, ValidationError, type FieldProblem } from '../errors/index.js';
import { parseAddonManifest, type AddonManifest } from '../addons/addon-manifest.js';
import { ADDON_PACKAGE_FILES, readAddonPackage, type AddonPackage } from '../addons/addon-package.js';
import {
  SandboxPool,
  type AddonBundle,
  type AddonLimits,
  type CapabilityScope,
  type EntryKind,
  type HostCapabilities,
  type LogEntry,
} from '../sandbox/index.js';
import { validateWithDefaults } from '../shared/json-schema.js';
import { probeExports, type ProbeResult } from '../addons/addon-exports.js';
import { addonBundle } from '../addons/addon-bundle.js';
import type { HandlerEvent } from '../events/delivery-worker.js';
import { functionSample, readFixtures, widgetSample, type Fixtures, type HttpFixture } from './fixtures.js';

/** The site every local run acts for (a fixed, valid UUID, so addons that show it look normal). */
export const LOCAL_SITE_ID = '00000000-0000-4000-8000-00000000000a';
const LOCAL_INSTALLATION_ID = '00000000-0000-4000-8000-00000000000b';

/** An addon loaded for the local run: its folder, normalised manifest and installation config. */
export interface LocalAddon {
  pkg: AddonPackage;
  manifest: AddonManifest;
  fixtures: Fixtures;
  /** The installation config (`ctx.config`): fixtures' `config` with the schema defaults applied. */
  config: unknown;
  /** Why the config cannot be used (it does not match `configSchema`), or null. */
  configProblems: FieldProblem[] | null;
}

/** One entry run in the sandbox, as reported per line (and in `--json`). */
export interface EntryRun {
  kind: Exclude<EntryKind, 'hook'>;
  name: string;
  status: 'ok' | 'error' | 'skipped';
  /** The error code when not ok (EXECUTION_TIMEOUT, ADDON_ERROR, BAD_USER_INPUT, ...). */
  code: string | null;
  message: string | null;
  /** Where the input came from: fixtures.json, or `{}` with the schema defaults. */
  inputFrom: 'fixtures' | 'defaults';
  /** Wall time in the worker, loading the module included (each entry starts a fresh isolate). */
  durationMs: number | null;
  cpuTimeMs: number | null;
  /** The addon isolate's used heap after the call (what its memory limit measures); null on failure. */
  memoryBytes: number | null;
  /** UTF-8 bytes of the JSON output, the size `maxOutputBytes` limits. */
  outputBytes: number | null;
  output: unknown;
  logs: LogEntry[];
  logsTruncated: boolean;
  /** Events the entry emitted (kept in memory by the local run). */
  events: { name: string; data: unknown }[];
}

function errorCode(error: unknown): string {
  return error instanceof AppError ? error.code : ErrorCode.InternalServerError;
}

function errorMessage(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** `{ a: 1, b: 2 }` with `['a']` -> `{ a: 1 }`: the context fields a widget declares in varyOn. */
function pick(context: unknown, fields: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (typeof context !== 'object' || context === null) return out;
  const record = context as Record<string, unknown>;
  for (const field of fields) {
    if (Object.hasOwn(record, field) && record[field] !== undefined) out[field] = record[field];
  }
  return out;
}

/** `payment.*` -> `payment.example`: an event name a handler pattern matches, for sample events. */
function sampleEventName(pattern: string): string {
  return pattern
    .split('.')
    .map((s) => (s === '*' ? 'example' : s))
    .join('.');
}

function fixtureResponse(fixture: HttpFixture): Response {
  const status = Number.isInteger(fixture.status) ? fixture.status! : 200;
  const nullBody = [101, 204, 205, 304].includes(status);
  const text =
    fixture.body === undefined || nullBody
      ? null
      : typeof fixture.body === 'string'
        ? fixture.body
        : JSON.stringify(fixture.body);
  const headers = new Headers(fixture.headers ?? {});
  if (text !== null && typeof fixture.body !== 'string' && !headers.has('content-type')) {
    headers.set('content-type', 'application/json');
  }
  return new Response(text, { status, headers });
}

function normaliseUrl(url: string): string {
  try {
    return new URL(url).href;
  } catch {
    return url;
  }
}

/**
 * The local runner of `themepress addon validate`: the real sandbox (a {@link SandboxPool} with one
 * worker process, the server's default and platform limits) with the host side of the SDK replaced
 * by in-memory fakes. Storage lives in a Map, emitted events are collected, `ctx.addons.call`
 * answers from fixtures or runs a dependency found in a sibling folder, and `ctx.http.fetch`
 * answers from fixtures (real requests only with `network`). Nothing reaches a server or database.
 */
export class LocalRunner {
  private readonly pool: SandboxPool;
  /** By addon id (`local:<name>`). */
  private readonly addons = new Map<string, LocalAddon>();
  private readonly storage = new Map<string, Map<string, string>>();
  private readonly emitted: { addonId: string; name: string; data: unknown }[] = [];
  /** Events by `<addon id>\u0000<idempotency key>`. */
  private readonly idempotencyKeys = new Map<string, string>();
  private readonly siblings = new Map<string, Promise<LocalAddon | null>>();
  private http: Record<string, HttpFixture> = {};
  private sequence = 0;

  constructor(
    private readonly options: {
      /** Folder to look for dependencies in (`<dir>/<dependency name>/`); null: fixtures only. */
      siblingsDir: string | null;
      /** Let unmatched `ctx.http.fetch` calls reach the network. */
      network: boolean;
    },
  ) {
    const capabilities: HostCapabilities = {
      storageGet: async (scope, key) => {
        const value = this.store(scope).get(key);
        return value === undefined ? null : JSON.parse(value);
      },
      storageSet: async (scope, key, value) => {
        this.store(scope).set(key, JSON.stringify(value));
      },
      storageDelete: async (scope, key) => this.store(scope).delete(key),
      storageList: async (scope, opts) => {
        const limit = opts.limit ?? 100;
        const keys = [...this.store(scope).keys()]
          .filter((k) => k.startsWith(opts.prefix ?? '') && (!opts.cursor || k > opts.cursor))
          .sort();
        const page = keys.slice(0, limit);
        return { keys: page, cursor: keys.length > limit ? page[page.length - 1] : null };
      },
      emitEvent: async (scope, name, data, options) => this.emit(scope, name, data, options?.idempotencyKey),
      callAddon: (scope, addonName, functionName, data) =>
        this.callAddon(scope, addonName, functionName, data),
    };
    this.pool = new SandboxPool({
      workers: 1,
      capabilities,
      fetchImpl: (input, init) => this.fetch(input, init),
    });
  }

  /** Forks the sandbox worker (the slow part of a local run). */
  start(): Promise<void> {
    return this.pool.start();
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  /** The limits the server applies to this addon: its manifest's, else the defaults, capped. */
  limits(manifest: Pick<AddonManifest, 'limits'>): AddonLimits {
    return this.pool.effectiveLimits({ limits: manifest.limits });
  }

  /**
   * Loads an addon for runs: the installation config is fixtures' `config` (or `{}`) with the
   * `configSchema` defaults applied, as `installAddon` would store it.
   */
  load(pkg: AddonPackage, manifest: AddonManifest, fixtures: Fixtures): LocalAddon {
    const validated = validateWithDefaults(manifest.configSchema, fixtures.config ?? {}, 'config');
    const addon: LocalAddon = {
      pkg,
      manifest,
      fixtures,
      config: validated.ok ? validated.value : null,
      configProblems: validated.ok ? null : validated.problems,
    };
    this.addons.set(`local:${manifest.name}`, addon);
    const store = this.storeFor(`local:${manifest.name}`);
    for (const [key, value] of Object.entries(fixtures.storage)) {
      if (!store.has(key)) store.set(key, JSON.stringify(value));
    }
    return addon;
  }

  /**
   * Loads the module in the sandbox and lists its entries the way the sandbox resolves them (own
   * properties: functions and handlers that are functions, widgets that are functions or have
   * `render`). A module that fails to load is reported with its error.
   */
  async listExports(pkg: AddonPackage): Promise<ProbeResult> {
    return probeExports(this.pool, {
      name: typeof pkg.manifest.name === 'string' && pkg.manifest.name ? pkg.manifest.name : 'addon',
      version: typeof pkg.manifest.version === 'string' ? pkg.manifest.version : '0.0.0',
      source: pkg.source,
      wasm: pkg.wasmBase64 ? Buffer.from(pkg.wasmBase64, 'base64') : null,
      limits: {},
    });
  }

  /**
   * Runs every function and widget of the addon once, and every handler that fixtures give an
   * event for, one after another (so each measurement is the entry's alone).
   */
  async runAll(addon: LocalAddon, onEntry?: (kind: string, name: string) => void): Promise<EntryRun[]> {
    const runs: EntryRun[] = [];
    for (const fn of addon.manifest.functions) {
      onEntry?.('function', fn.name);
      runs.push(await this.runFunction(addon, fn.name));
    }
    for (const widget of addon.manifest.widgets) {
      onEntry?.('widget', widget.name);
      runs.push(await this.runWidget(addon, widget.name));
    }
    for (const [pattern, handler] of Object.entries(addon.manifest.events.handles)) {
      if (!Object.hasOwn(addon.fixtures.handlers, handler)) continue;
      onEntry?.('handler', handler);
      runs.push(await this.runHandler(addon, handler, pattern));
    }
    return runs;
  }

  /**
   * Runs one function with `input` (else its sample from fixtures), checked against its
   * inputSchema as the server checks it; `themepress addon dev` calls this for the preview page.
   */
  async runFunction(addon: LocalAddon, name: string, given?: { value: unknown }): Promise<EntryRun> {
    const declared = addon.manifest.functions.find((f) => f.name === name);
    if (!declared) throw new NotFoundError('Function', `${addon.manifest.name}/${name}`);
    const sample = given ? { value: given.value, given: true } : functionSample(addon.fixtures, name);
    const base = this.blank('function', name, sample.given);
    const blocked = this.configBlock(addon, base);
    if (blocked) return blocked;
    let input = sample.value;
    if (declared.inputSchema) {
      const checked = validateWithDefaults(declared.inputSchema, sample.value, 'data');
      if (!checked.ok) return this.inputRefused(base, checked.problems, `inputSchema of ${name}`);
      input = checked.value;
    }
    return this.execute(addon, base, { input });
  }

  private async runWidget(addon: LocalAddon, name: string): Promise<EntryRun> {
    const declared = addon.manifest.widgets.find((w) => w.name === name)!;
    const sample = widgetSample(addon.fixtures, name);
    const base = this.blank('widget', name, sample.given);
    const blocked = this.configBlock(addon, base);
    if (blocked) return blocked;
    const checked = validateWithDefaults(declared.configSchema, sample.config, 'config');
    if (!checked.ok) return this.inputRefused(base, checked.problems, `configSchema of widget ${name}`);
    return this.execute(addon, base, {
      input: pick(sample.context, declared.varyOn),
      widgetConfig: checked.value,
    });
  }

  private async runHandler(addon: LocalAddon, name: string, pattern: string): Promise<EntryRun> {
    const base = this.blank('handler', name, true);
    const blocked = this.configBlock(addon, base);
    if (blocked) return blocked;
    const id = randomUUID();
    // The envelope the delivery worker hands to handlers (see docs/events.md).
    const event: HandlerEvent = {
      id,
      idempotencyKey: id,
      name: sampleEventName(pattern),
      source: 'platform',
      sourceAddonId: null,
      siteId: LOCAL_SITE_ID,
      data: addon.fixtures.handlers[name] ?? null,
      createdAt: new Date().toISOString(),
      deliveryId: randomUUID(),
      attempt: 1,
    };
    return this.execute(addon, base, { input: event });
  }

  private blank(kind: EntryRun['kind'], name: string, given: boolean): EntryRun {
    return {
      kind,
      name,
      status: 'ok',
      code: null,
      message: null,
      inputFrom: given ? 'fixtures' : 'defaults',
      durationMs: null,
      cpuTimeMs: null,
      memoryBytes: null,
      outputBytes: null,
      output: null,
      logs: [],
      logsTruncated: false,
      events: [],
    };
  }

  /** An installation config that does not match the schema: the server would never run anything. */
  private configBlock(addon: LocalAddon, base: EntryRun): EntryRun | null {
    if (!addon.configProblems) return null;
    return this.inputRefused(base, addon.configProblems, 'configSchema');
  }

  /**
   * A sample the server would refuse with BAD_USER_INPUT. Guessed samples (`{}`) only skip the
   * entry: the author has not given one yet. A sample from fixtures.json that does not fit is an
   * error: the fixture or the schema is wrong.
   */
  private inputRefused(base: EntryRun, problems: FieldProblem[], against: string): EntryRun {
    const list = problems.map((p) => `${p.field}: ${p.message}`).join('; ');
    if (base.inputFrom === 'defaults') {
      return {
        ...base,
        status: 'skipped',
        code: ErrorCode.BadUserInput,
        message: `no sample in fixtures.json, and {} does not match the ${against} (${list})`,
      };
    }
    return {
      ...base,
      status: 'error',
      code: ErrorCode.BadUserInput,
      message: `the sample in fixtures.json does not match the ${against} (${list})`,
    };
  }

  private bundle(addon: LocalAddon, fresh: boolean): AddonBundle {
    const { manifest, pkg } = addon;
    // A fresh version id per entry gives each run a new isolate: one entry's globals or garbage
    // cannot change another's figures, and every run pays the cold start the server may pay.
    const versionId = fresh ? `local:${manifest.name}:${++this.sequence}` : `local:${manifest.name}:warm`;
    return addonBundle({ versionId, addonId: `local:${manifest.name}` }, manifest, {
      source: pkg.source,
      wasm: pkg.wasmBase64 ? Buffer.from(pkg.wasmBase64, 'base64') : null,
    });
  }

  private async execute(
    addon: LocalAddon,
    base: EntryRun,
    call: { input: unknown; widgetConfig?: unknown },
  ): Promise<EntryRun> {
    const eventsBefore = this.emitted.length;
    // As on the server, a call's writes and events count only if it succeeds (all or nothing).
    const storageBefore = new Map([...this.storage].map(([id, store]) => [id, new Map(store)]));
    const keysBefore = new Map(this.idempotencyKeys);
    const started = performance.now();
    try {
      const result = await this.pool.execute({
        bundle: this.bundle(addon, true),
        siteId: LOCAL_SITE_ID,
        installationId: LOCAL_INSTALLATION_ID,
        config: addon.config,
        entry: { kind: base.kind, name: base.name },
        input: call.input,
        widgetConfig: call.widgetConfig,
        callDepth: 0,
        requestId: 'local-run',
        measureHeap: true,
      });
      return {
        ...base,
        durationMs: result.durationMs,
        cpuTimeMs: result.cpuTimeMs,
        memoryBytes: result.heapUsedBytes ?? null,
        outputBytes: Buffer.byteLength(JSON.stringify(result.output ?? null)),
        output: result.output,
        logs: result.logs,
        logsTruncated: result.logsTruncated,
        events: this.emittedSince(eventsBefore, addon),
      };
    } catch (error) {
      this.storage.clear();
      for (const [id, store] of storageBefore) this.storage.set(id, store);
      this.emitted.length = eventsBefore;
      this.idempotencyKeys.clear();
      for (const [key, id] of keysBefore) this.idempotencyKeys.set(key, id);
      return {
        ...base,
        status: 'error',
        code: errorCode(error),
        message: errorMessage(error),
        durationMs: performance.now() - started,
        memoryBytes: null,
        events: [],
      };
    }
  }

  private emittedSince(index: number, addon: LocalAddon): EntryRun['events'] {
    return this.emitted
      .slice(index)
      .filter((e) => e.addonId === `local:${addon.manifest.name}`)
      .map(({ name, data }) => ({ name, data }));
  }

  private storeFor(addonId: string): Map<string, string> {
    let store = this.storage.get(addonId);
    if (!store) {
      store = new Map();
      this.storage.set(addonId, store);
    }
    return store;
  }

  private store(scope: CapabilityScope): Map<string, string> {
    return this.storeFor(scope.addonId);
  }

  /**
   * Checks event data against the declared schema, as the events service does, and keeps it; an
   * idempotency key this addon already gave returns that event instead.
   */
  private async emit(
    scope: CapabilityScope,
    name: string,
    data: unknown,
    idempotencyKey?: string,
  ): Promise<{ id: string; duplicate: boolean }> {
    const keyed = idempotencyKey === undefined ? undefined : `${scope.addonId}\u0000${idempotencyKey}`;
    const earlier = keyed === undefined ? undefined : this.idempotencyKeys.get(keyed);
    if (earlier) return { id: earlier, duplicate: true };
    const addon = this.addons.get(scope.addonId);
    const declared = addon?.manifest.events.emits.find((e) => e.name === name);
    if (declared?.schema) {
      const result = validateWithDefaults(declared.schema, data, 'data');
      if (!result.ok) throw ValidationError.of(`data of event ${name}`, result.problems);
    }
    this.emitted.push({ addonId: scope.addonId, name, data: data ?? null });
    const id = randomUUID();
    if (keyed !== undefined) this.idempotencyKeys.set(keyed, id);
    return { id, duplicate: false };
  }

  /**
   * `ctx.addons.call` in the local run: the caller's fixtures `addons.<name>.<function>` answer if
   * present; else the dependency is run from `<siblingsDir>/<name>/` in this sandbox, checked like
   * the server does (declared function, input schema); else NOT_FOUND says what to add.
   */
  private async callAddon(
    scope: CapabilityScope,
    addonName: string,
    functionName: string,
    data: unknown,
  ): Promise<unknown> {
    const caller = this.addons.get(scope.addonId);
    const mocks = caller?.fixtures.addons[addonName];
    if (mocks && Object.hasOwn(mocks, functionName)) return mocks[functionName];
    const target = await this.sibling(addonName);
    if (!target) {
      throw new AppError(
        ErrorCode.NotFound,
        `local run: ctx.addons.call("${addonName}", "${functionName}") has no answer: add "addons": { "${addonName}": { "${functionName}": <output> } } to fixtures.json${this.options.siblingsDir ? `, or put the addon in ${path.join(this.options.siblingsDir, addonName)}` : ''}.`,
      );
    }
    const declared = target.manifest.functions.find((f) => f.name === functionName);
    if (!declared) throw new NotFoundError('Function', `${addonName}/${functionName}`);
    let input = data;
    if (declared.inputSchema) {
      const checked = validateWithDefaults(declared.inputSchema, data, 'data');
      if (!checked.ok) throw ValidationError.of(`input of ${functionName}`, checked.problems);
      input = checked.value;
    }
    if (target.configProblems) {
      throw new AppError(
        ErrorCode.BadUserInput,
        `local run: the config of "${addonName}" does not match its configSchema; add "config" to its fixtures.json.`,
      );
    }
    const result = await this.pool.execute({
      bundle: this.bundle(target, false),
      siteId: scope.siteId,
      installationId: LOCAL_INSTALLATION_ID,
      config: target.config,
      entry: { kind: 'function', name: functionName },
      input,
      callDepth: scope.callDepth + 1,
      requestId: scope.requestId,
    });
    return result.output;
  }

  /** A dependency's folder next to the addon being run, loaded once. */
  private sibling(name: string): Promise<LocalAddon | null> {
    let loading = this.siblings.get(name);
    if (!loading) {
      loading = this.loadSibling(name);
      this.siblings.set(name, loading);
    }
    return loading;
  }

  private async loadSibling(name: string): Promise<LocalAddon | null> {
    const loaded = this.addons.get(`local:${name}`);
    if (loaded) return loaded;
    if (!this.options.siblingsDir) return null;
    const directory = path.join(this.options.siblingsDir, name);
    const isFolder = await stat(path.join(directory, ADDON_PACKAGE_FILES.manifest)).then(
      (s) => s.isFile(),
      () => false,
    );
    if (!isFolder) return null;
    const pkg = await readAddonPackage(directory);
    const manifest = parseAddonManifest(pkg.manifest);
    if (manifest.name !== name) return null;
    return this.load(pkg, manifest, await readFixtures(directory));
  }

  private async fetch(input: string | URL | Request, init?: RequestInit): Promise<Response> {
    const url = normaliseUrl(input instanceof Request ? input.url : String(input));
    const method = (init?.method ?? 'GET').toUpperCase();
    const fixture = this.httpFixture(method, url);
    if (fixture) return fixtureResponse(fixture);
    if (this.options.network) return globalThis.fetch(input, init);
    throw new Error(
      `local run: no answer for ${method} ${url}; add "http": { "${method} ${url}": { "status": 200, "body": ... } } to fixtures.json, or pass --network`,
    );
  }

  private httpFixture(method: string, url: string): HttpFixture | null {
    for (const [key, fixture] of Object.entries(this.http)) {
      const space = key.indexOf(' ');
      const keyMethod = space > 0 ? key.slice(0, space).toUpperCase() : null;
      const keyUrl = normaliseUrl(space > 0 ? key.slice(space + 1).trim() : key);
      if (keyUrl === url && (keyMethod === null || keyMethod === method)) return fixture;
    }
    return null;
  }

  /** The HTTP answers of the addon being validated (dependencies run from their folders share them). */
  useHttpFixtures(http: Record<string, HttpFixture>): void {
    this.http = http;
  }
}
