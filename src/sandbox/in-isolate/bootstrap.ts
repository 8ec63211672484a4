/**
 * Code that runs inside every addon context before the addon's own script. Like `html-template.ts`, it
 * is injected as source text, so {@link sandboxBootstrap} must not reference anything outside its body.
 *
 * It takes the raw host reference from the global, keeps it in a closure and deletes the global, so addon
 * code never holds an isolated-vm object. Everything crossing the boundary is a JSON string or a plain
 * copied object.
 */
import type { HtmlKit, SafeHtml } from './html-template.js';
import type { CallMeta } from '../protocol.js';

/** What `run` hands back to the worker (copied out of the isolate). */
export type RunEnvelope =
  | { ok: true; output: string; logs: unknown[]; logsTruncated: boolean }
  | { ok: false; code: string; message: string; sdk: boolean; logs: unknown[]; logsTruncated: boolean };

/** Settles at once (an envelope) when the entry returns a plain value, else through a promise. */
export type RunFunction = (
  meta: CallMeta,
  inputJson: string,
  configJson: string,
) => RunEnvelope | Promise<RunEnvelope>;

/**
 * What the bootstrap hands the worker. `start` begins a call (the worker calls it synchronously:
 * an asynchronous call into an isolate costs ~70 µs of thread hand-off, a synchronous one ~10 µs);
 * its microtasks run before that call returns, so `take` then has the envelope of every entry that
 * did not wait for the host. Otherwise `take` registers the call, and the envelope arrives later
 * through the worker's `done` reference.
 */
export interface BootstrapDriver {
  /** Runs an entry; returns its envelope when it settled at once, else it comes through `take`/`done`. */
  start(meta: CallMeta, inputJson: string, configJson: string): RunEnvelope | undefined;
  take(execId: number): RunEnvelope | undefined;
  /**
   * Settles the SDK call `capId` with the host's JSON reply. The worker calls it synchronously
   * where it can, so the continuation runs at once, under a time limit, without the hops through
   * isolated-vm's thread pool that resolving a host promise costs.
   */
  resume(capId: number, replyJson: string): void;
}

/** Global names the worker sets before the bootstrap runs; the bootstrap deletes them. */
export const BOOTSTRAP_GLOBALS = {
  host: '__tp_host',
  done: '__tp_done',
  wasm: '__tp_wasm',
  crashTest: '__tp_crash',
  /** The isolate's `memoryMb`: what the context's WebAssembly memories may hold together. */
  wasmLimitMb: '__tp_wasm_limit_mb',
} as const;

/**
 * SDK-channel op the bootstrap uses to tell the supervisor how many bytes of WebAssembly memory the
 * context holds (fire and forget, only after an allocation): it names the version and site whose
 * memory grew when a worker must be recycled for its resident size.
 */
export const WASM_MEMORY_REPORT_OP = 'sandbox.wasm-memory';

interface HostReference {
  applyIgnored(receiver: undefined, args: unknown[], options: object): void;
}

interface DoneReference {
  applyIgnored(receiver: undefined, args: unknown[], options: object): void;
}

type AnyFunction = (...args: unknown[]) => unknown;

/** Builds the context's globals (`module`, `exports`, `console`, `html`, `raw`) and returns the driver. */
export function sandboxBootstrap(createHtmlKit: () => HtmlKit): BootstrapDriver {
  'use strict';
  const g = globalThis as unknown as Record<string, unknown>;
  const host = g.__tp_host as HostReference;
  const done = g.__tp_done as DoneReference;
  const wasmBytes = g.__tp_wasm as ArrayBuffer | undefined;
  const crashTest = g.__tp_crash === true;
  // 64 (the default memoryMb) if the worker does not say.
  const wasmLimitMb = typeof g.__tp_wasm_limit_mb === 'number' ? g.__tp_wasm_limit_mb : 64;
  delete g.__tp_wasm_limit_mb;
  delete g.__tp_host;
  delete g.__tp_done;
  delete g.__tp_wasm;
  delete g.__tp_crash;

  // Primordials: addon code may replace globals and prototype methods of its own context later on.
  const hostApplyIgnored = host.applyIgnored;
  const doneApplyIgnored = done.applyIgnored;
  const PromiseCtor = Promise;
  const promiseThen = Promise.prototype.then;
  const reflectApply = Reflect.apply;
  const jsonParse = JSON.parse;
  const jsonStringify = JSON.stringify;
  const freeze = Object.freeze;
  const defineProperty = Object.defineProperty;
  const setPrototypeOf = Object.setPrototypeOf;
  const hasOwn = Object.prototype.hasOwnProperty;
  const dateNow = Date.now;
  const toStr = String;
  const ErrorCtor = Error;
  const RangeErrorCtor = RangeError;
  const weakSetAdd = WeakSet.prototype.add;
  const weakSetHas = WeakSet.prototype.has;
  const isArray = Array.isArray;

  // Option objects without a prototype, so a polluted Object.prototype cannot change how values cross.
  const applyOptions = setPrototypeOf({ arguments: setPrototypeOf({ copy: true }, null) }, null) as object;

  class AddonSdkError extends ErrorCtor {
    code: string;
    constructor(code: string, message: string) {
      super(message);
      this.code = code;
      this.name = 'AddonSdkError';
    }
  }
  const sdkErrors = new WeakSet<object>();
  function sdkError(code: string, message: string): AddonSdkError {
    const err = new AddonSdkError(code, message);
    reflectApply(weakSetAdd, sdkErrors, [err]);
    return err;
  }

  // SDK calls waiting for the host, by id; only the worker's `resume` settles them.
  const replies = setPrototypeOf({}, null) as Record<number, (json: string) => void>;
  let nextCapId = 1;

  /** Sends an SDK request; `owned` collects the ids of one call's requests (see `end`). */
  function hostCall(
    execId: number,
    op: string,
    argsJson: string,
    owned: Record<number, true>,
  ): Promise<string> {
    const capId = nextCapId++;
    return new PromiseCtor<string>((resolve) => {
      replies[capId] = resolve;
      owned[capId] = true;
      reflectApply(hostApplyIgnored, host, [undefined, [execId, capId, op, argsJson], applyOptions]);
    });
  }

  const kit = createHtmlKit();

  // The call running now (the most recently started one still running), for memory reports.
  let reportExecId = 0;
  const memoryErrors = new WeakSet<object>();
  guardWebAssemblyMemory();

  /**
   * WebAssembly memories live outside the V8 heap, so isolated-vm's memoryLimit does not see them:
   * the context's memories together may hold at most `wasmLimitMb`. The constructors and `grow` are
   * replaced before addon code runs (the originals stay in this closure); a memory's `maximum` is
   * clamped to the budget so wasm's own `memory.grow` cannot take one memory past it either. Memory
   * that is garbage counts until collected: a refused allocation collects first, then decides.
   */
  function guardWebAssemblyMemory(): void {
    const wa = g.WebAssembly as Record<string, unknown> | undefined;
    if (wa === undefined) return;
    const PAGE = 65536;
    const budgetPages = Math.floor((wasmLimitMb * 1024 * 1024) / PAGE);
    const OrigMemory = wa.Memory as new (descriptor: object) => object;
    const OrigInstance = wa.Instance as new (module: unknown, imports?: unknown) => { exports: unknown };
    const origInstantiate = wa.instantiate as (...args: unknown[]) => Promise<unknown>;
    const memoryProto = OrigMemory.prototype as Record<string, unknown>;
    const origGrow = memoryProto.grow as (delta: number) => number;
    const bufferGetter = Object.getOwnPropertyDescriptor(memoryProto, 'buffer')!.get!;
    const reflectConstruct = Reflect.construct;
    const WeakRefCtor = WeakRef;
    const weakRefDeref = WeakRef.prototype.deref;
    const weakMapGet = WeakMap.prototype.get;
    const weakMapSet = WeakMap.prototype.set;
    const objectKeys = Object.keys;
    const TypeErrorCtor = TypeError;
    const isFinite = Number.isFinite;
    const floor = Math.floor;
    // `gc` is on the global only when the worker runs with --expose-gc: kept here, taken from addons.
    const collect = typeof g.gc === 'function' ? (g.gc as () => void) : null;
    if (collect !== null) g.gc = undefined;

    interface Tracked {
      ref: WeakRef<object>;
      pages: number;
    }
    let tracked: Tracked[] = [];
    const byMemory = new WeakMap<object, Tracked>();

    const pagesOf = (memory: object): number =>
      floor((reflectApply(bufferGetter, memory, []) as ArrayBuffer).byteLength / PAGE);
    const recordedPages = (): number => {
      let sum = 0;
      for (let i = 0; i < tracked.length; i += 1) sum += tracked[i].pages;
      return sum;
    };
    /** Drops collected memories and re-reads the size of live ones (wasm code may have grown them). */
    const refresh = (): void => {
      const live: Tracked[] = [];
      for (let i = 0; i < tracked.length; i += 1) {
        const memory = reflectApply(weakRefDeref, tracked[i].ref, []) as object | undefined;
        if (memory === undefined) continue;
        tracked[i].pages = pagesOf(memory);
        live[live.length] = tracked[i];
      }
      tracked = live;
    };
    const refuse = (pages: number): never => {
      const err = new RangeErrorCtor(
        `WebAssembly.Memory: ${pages} more pages would exceed the addon's memory limit of ${wasmLimitMb} MB.`,
      );
      reflectApply(weakSetAdd, memoryErrors, [err]);
      throw err;
    };
    let reportedPages = 0;
    /** Tells the supervisor the context's wasm bytes when they moved by 1 MiB or more since it last did. */
    const report = (): void => {
      if (reportExecId === 0) return;
      const pages = recordedPages();
      if (pages - reportedPages < 16 && reportedPages - pages < 16) return;
      reportedPages = pages;
      const json = jsonStringify({ bytes: pages * PAGE });
      reflectApply(hostApplyIgnored, host, [
        undefined,
        [reportExecId, 0, 'sandbox.wasm-memory', json],
        applyOptions,
      ]);
    };
    /** Throws unless `pages` more fit in the budget. */
    const reserve = (pages: number): void => {
      if (recordedPages() + pages <= budgetPages) return;
      if (collect !== null) collect();
      refresh();
      if (recordedPages() + pages > budgetPages) refuse(pages);
    };
    const track = (memory: object): Tracked => {
      let entry = reflectApply(weakMapGet, byMemory, [memory]) as Tracked | undefined;
      if (entry === undefined) {
        entry = { ref: new WeakRefCtor(memory), pages: pagesOf(memory) };
        reflectApply(weakMapSet, byMemory, [memory, entry]);
        tracked[tracked.length] = entry;
      }
      return entry;
    };
    const toPages = (value: unknown, what: string): number => {
      const n = +(value as number);
      if (!isFinite(n) || n < 0 || floor(n) !== n || n > 65536) {
        throw new TypeErrorCtor(`WebAssembly.Memory: ${what} must be a number of pages from 0 to 65536.`);
      }
      return n;
    };
    /** Counts the memories an instance exports (defined in the module, not created through Memory). */
    const trackExports = (instance: { exports: unknown }): void => {
      const exportsValue = instance.exports as Record<string, unknown>;
      const names = objectKeys(exportsValue);
      let added = false;
      for (let i = 0; i < names.length; i += 1) {
        const value = exportsValue[names[i]];
        if (typeof value !== 'object' || value === null) continue;
        try {
          reflectApply(bufferGetter, value, []);
        } catch {
          continue;
        }
        if (reflectApply(weakMapGet, byMemory, [value]) === undefined) {
          track(value);
          added = true;
        }
      }
      if (!added) return;
      report();
      if (recordedPages() > budgetPages) reserve(0);
    };

    const Memory = function Memory(this: unknown, descriptor: unknown) {
      if (new.target === undefined) throw new TypeErrorCtor("WebAssembly.Memory must be invoked with 'new'");
      if (typeof descriptor !== 'object' || descriptor === null) {
        throw new TypeErrorCtor('WebAssembly.Memory: the argument must be an object.');
      }
      // Each field is read once: a getter could answer differently to the check and to V8.
      const d = descriptor as Record<string, unknown>;
      const address = d.address;
      const index = d.index;
      if ((address !== undefined && address !== 'i32') || (index !== undefined && index !== 'i32')) {
        throw new TypeErrorCtor('WebAssembly.Memory: only 32-bit memories are available.');
      }
      const initialValue = d.initial === undefined ? d.minimum : d.initial;
      const initial = toPages(initialValue, 'initial');
      const maximumValue = d.maximum;
      const shared = d.shared === true;
      let maximum = maximumValue === undefined ? budgetPages : toPages(maximumValue, 'maximum');
      if (maximum > budgetPages) maximum = budgetPages;
      if (maximum < initial) maximum = initial;
      reserve(initial);
      const copy = setPrototypeOf({ initial, maximum, shared }, null);
      const memory = reflectConstruct(OrigMemory, [copy], new.target) as object;
      track(memory);
      report();
      return memory;
    } as unknown as new (descriptor: object) => object;
    defineProperty(Memory, 'prototype', { value: memoryProto });
    defineProperty(memoryProto, 'constructor', { value: Memory, writable: true, configurable: true });
    defineProperty(memoryProto, 'grow', {
      value: function grow(this: object, delta: unknown): number {
        const pages = toPages(delta, 'delta');
        const entry = track(this);
        entry.pages = pagesOf(this);
        reserve(pages);
        const previous = reflectApply(origGrow, this, [pages]) as number;
        entry.pages = pagesOf(this);
        report();
        return previous;
      },
      writable: true,
      configurable: true,
    });

    const Instance = function Instance(this: unknown, module: unknown, imports?: unknown) {
      if (new.target === undefined)
        throw new TypeErrorCtor("WebAssembly.Instance must be invoked with 'new'");
      const instance = reflectConstruct(OrigInstance, [module, imports], new.target) as { exports: unknown };
      trackExports(instance);
      return instance;
    } as unknown as typeof OrigInstance;
    const instanceProto = OrigInstance.prototype as object;
    defineProperty(Instance, 'prototype', { value: instanceProto });
    defineProperty(instanceProto, 'constructor', { value: Instance, writable: true, configurable: true });

    const instantiate = function instantiate(...args: unknown[]): Promise<unknown> {
      const pending = reflectApply(origInstantiate, wa, args) as Promise<unknown>;
      return reflectApply(promiseThen, pending, [
        (result: unknown) => {
          const instance =
            typeof result === 'object' && result !== null && reflectApply(hasOwn, result, ['instance'])
              ? (result as { instance: { exports: unknown } }).instance
              : (result as { exports: unknown });
          trackExports(instance);
          return result;
        },
      ]) as Promise<unknown>;
    };
    for (const [name, value] of [
      ['Memory', Memory],
      ['Instance', Instance],
      ['instantiate', instantiate],
    ] as const) {
      defineProperty(wa, name, { value, writable: true, configurable: true, enumerable: false });
    }
  }

  let wasmModule: unknown = null;
  if (wasmBytes !== undefined) {
    const wasm = g.WebAssembly as { Module: new (bytes: ArrayBuffer) => unknown };
    wasmModule = new wasm.Module(wasmBytes);
  }

  const mod: { exports: unknown } = { exports: {} };
  g.module = mod;
  g.exports = mod.exports;

  type Level = 'debug' | 'info' | 'warn' | 'error';
  type Logger = (level: Level, args: unknown[]) => void;
  // console.* goes to the most recently started call still running; ctx.log is exact.
  let consoleTarget: Logger | null = null;
  const consoleMethod =
    (level: Level) =>
    (...args: unknown[]): void => {
      if (consoleTarget !== null) consoleTarget(level, args);
    };
  g.console = freeze({
    log: consoleMethod('info'),
    info: consoleMethod('info'),
    debug: consoleMethod('debug'),
    warn: consoleMethod('warn'),
    error: consoleMethod('error'),
  });
  for (const [name, value] of [
    ['html', kit.html],
    ['raw', kit.raw],
  ] as const) {
    defineProperty(g, name, { value, writable: true, configurable: true, enumerable: false });
  }
  if (crashTest) {
    g.__sandboxCrashWorkerForTest = () => {
      void hostCall(0, 'debug.crash', '{}', setPrototypeOf({}, null) as Record<number, true>);
    };
  }

  function describe(value: unknown): string {
    try {
      if (typeof value === 'object' && value !== null) {
        const message = (value as { message?: unknown }).message;
        if (typeof message === 'string') return message;
      }
      return toStr(value);
    } catch {
      return 'The addon threw a value that cannot be printed.';
    }
  }

  function formatLogArg(value: unknown): string {
    try {
      if (typeof value === 'string') return value;
      if (value instanceof ErrorCtor) return `${toStr(value.name)}: ${toStr(value.message)}`;
      const json = jsonStringify(value);
      return json === undefined ? toStr(value) : json;
    } catch {
      return '[unprintable]';
    }
  }

  function lookup(exportsValue: unknown, table: string, name: string): unknown {
    if (exportsValue === null || (typeof exportsValue !== 'object' && typeof exportsValue !== 'function')) {
      return undefined;
    }
    const entries = (exportsValue as Record<string, unknown>)[table];
    if (entries === null || (typeof entries !== 'object' && typeof entries !== 'function')) return undefined;
    if (!reflectApply(hasOwn, entries, [name])) return undefined;
    return (entries as Record<string, unknown>)[name];
  }

  function markup(value: unknown, field: string): string | null {
    if (value === null || value === undefined) return null;
    if (kit.isSafeHtml(value)) return (value as SafeHtml).__html;
    if (typeof value === 'string') return value;
    throw sdkError('ADDON_ERROR', `Widget ${field} must be a string or html\`...\`.`);
  }

  function widgetOutput(value: unknown): Record<string, string> {
    if (typeof value === 'string' || kit.isSafeHtml(value)) return { html: markup(value, 'html') ?? '' };
    if (typeof value !== 'object' || value === null || isArray(value)) {
      throw sdkError('ADDON_ERROR', 'A widget must return html`...` or { html, css?, javascript? }.');
    }
    const parts = value as Record<string, unknown>;
    const out: Record<string, string> = { html: markup(parts.html, 'html') ?? '' };
    const css = markup(parts.css, 'css');
    const javascript = markup(parts.javascript, 'javascript');
    if (css !== null) out.css = css;
    if (javascript !== null) out.javascript = javascript;
    return out;
  }

  /** What `await` would treat as a promise (reading `then` may run addon code: it is the addon's). */
  function isThenable(value: unknown): boolean {
    return (
      ((typeof value === 'object' && value !== null) || typeof value === 'function') &&
      typeof (value as { then?: unknown }).then === 'function'
    );
  }

  function nullProto<T extends object>(value: T): T {
    return setPrototypeOf(value, null) as T;
  }

  const run: RunFunction = function run(meta, inputJson, configJson) {
    const logs: unknown[] = [];
    let logChars = 0;
    let logsTruncated = false;
    let active = true;
    // This call's SDK requests: those still unanswered when it ends are forgotten (a request the
    // addon did not await would otherwise keep its resolver for the isolate's lifetime).
    const owned = nullProto({}) as Record<number, true>;

    const log: Logger = (level, args) => {
      if (logsTruncated) return;
      let message = '';
      for (let i = 0; i < args.length; i += 1) message += (i === 0 ? '' : ' ') + formatLogArg(args[i]);
      const cost = message.length + 24;
      if (logChars + cost > meta.maxLogChars) {
        logsTruncated = true;
        return;
      }
      logChars += cost;
      logs[logs.length] = nullProto({ level, message, at: dateNow() });
    };

    async function call(op: string, args: Record<string, unknown>): Promise<unknown> {
      if (!active) throw sdkError('ADDON_ERROR', `ctx was used after its call ended (${op}).`);
      const argsJson = jsonStringify(args);
      const replyJson = await hostCall(meta.execId, op, argsJson, owned);
      // An answer that lands after the call ended (the worker may not know yet) never resumes
      // the addon: its continuation would run outside every limit of the call.
      if (!active) return new Promise<never>(() => undefined);
      const reply = jsonParse(replyJson) as {
        ok: boolean;
        value?: unknown;
        code?: string;
        message?: string;
      };
      if (reply.ok === true) return reply.value === undefined ? null : reply.value;
      throw sdkError(toStr(reply.code), toStr(reply.message));
    }

    function response(raw: unknown): unknown {
      const r = raw as {
        status: number;
        statusText: string;
        headers: Record<string, string>;
        url: string;
        body: string;
      };
      return freeze({
        status: r.status,
        statusText: r.statusText,
        ok: r.status >= 200 && r.status < 300,
        url: r.url,
        headers: freeze(r.headers),
        text: async () => r.body,
        json: async () => jsonParse(r.body),
      });
    }

    const config = jsonParse(configJson) as unknown;
    const input = jsonParse(inputJson) as unknown;
    const ctx = freeze({
      config,
      site: freeze({ id: meta.siteId }),
      addon: freeze({ name: meta.addonName, version: meta.version }),
      installationId: meta.installationId,
      requestId: meta.requestId,
      log: (...args: unknown[]) => log('info', args),
      debug: (...args: unknown[]) => log('debug', args),
      info: (...args: unknown[]) => log('info', args),
      warn: (...args: unknown[]) => log('warn', args),
      error: (...args: unknown[]) => log('error', args),
      storage: freeze({
        get: (key: unknown) => call('storage.get', { key }),
        set: async (key: unknown, value: unknown) => {
          await call('storage.set', { key, value });
        },
        delete: (key: unknown) => call('storage.delete', { key }),
        list: (opts?: Record<string, unknown>) =>
          call('storage.list', { prefix: opts?.prefix, limit: opts?.limit, cursor: opts?.cursor }),
      }),
      events: freeze({
        emit: (name: unknown, data?: unknown, options?: unknown) =>
          call('events.emit', { name, data, options }),
      }),
      addons: freeze({
        call: (addon: unknown, fn: unknown, data?: unknown) => call('addons.call', { addon, fn, data }),
      }),
      http: freeze({
        fetch: async (url: unknown, init?: Record<string, unknown>) =>
          response(
            await call('http.fetch', {
              url: toStr(url),
              method: init?.method,
              headers: init?.headers,
              body: init?.body,
            }),
          ),
      }),
      html: kit.html,
      raw: kit.raw,
      unsafeHTML: kit.raw,
      wasm: wasmModule === null ? null : freeze({ module: wasmModule }),
    });

    const envelopeOf = (value: unknown): RunEnvelope => {
      let output: string | undefined;
      try {
        output = jsonStringify(value);
      } catch (err) {
        throw sdkError('ADDON_ERROR', `The result is not JSON-serialisable: ${describe(err)}`);
      }
      if (output === undefined) output = 'null';
      if (output.length > meta.maxOutputChars) {
        return {
          ok: false,
          code: 'OUTPUT_TOO_LARGE',
          message: `The result is larger than the addon's limit of ${meta.maxOutputChars} bytes.`,
          sdk: false,
          logs,
          logsTruncated,
        };
      }
      return { ok: true, output, logs, logsTruncated };
    };
    const failure = (err: unknown): RunEnvelope => {
      let code = 'ADDON_ERROR';
      let sdk = false;
      if (typeof err === 'object' && err !== null && reflectApply(weakSetHas, sdkErrors, [err])) {
        code = (err as AddonSdkError).code;
        sdk = true;
      } else if (
        (typeof err === 'object' && err !== null && reflectApply(weakSetHas, memoryErrors, [err])) ||
        (err instanceof RangeErrorCtor && describe(err) === 'Array buffer allocation failed')
      ) {
        code = 'MEMORY_LIMIT_EXCEEDED';
      }
      const message = describe(err);
      return { ok: false, code, message: message.slice(0, 2000), sdk, logs, logsTruncated };
    };
    const previousConsole = consoleTarget;
    const previousReport = reportExecId;
    const end = () => {
      active = false;
      for (const capId in owned) delete replies[capId as unknown as number];
      if (consoleTarget === log) consoleTarget = previousConsole;
      if (reportExecId === meta.execId) reportExecId = previousReport;
    };
    // A widget's output is checked once its render settled.
    const finishValue = (value: unknown): RunEnvelope =>
      envelopeOf(meta.kind === 'widget' ? widgetOutput(value) : value);

    consoleTarget = log;
    reportExecId = meta.execId;
    let produced: unknown;
    let pending = false;
    try {
      const exported = mod.exports;
      const missing = (what: string): RunEnvelope => ({
        ok: false as const,
        code: 'NOT_FOUND',
        message: `Addon "${meta.addonName}" has no ${what} "${meta.name}".`,
        sdk: false,
        logs,
        logsTruncated,
      });
      switch (meta.kind) {
        case 'function': {
          const fn = lookup(exported, 'functions', meta.name);
          if (typeof fn !== 'function') return missing('function');
          produced = (fn as AnyFunction)(input, ctx);
          break;
        }
        case 'handler': {
          const fn = lookup(exported, 'handlers', meta.name);
          if (typeof fn !== 'function') return missing('handler');
          produced = (fn as AnyFunction)(input, ctx);
          break;
        }
        case 'widget': {
          const widget = lookup(exported, 'widgets', meta.name);
          // The pool sends a widget's [widgetConfig, context] pair as its input.
          const [widgetConfig, context] = input as [unknown, unknown];
          if (typeof widget === 'function') produced = (widget as AnyFunction)(widgetConfig, context, ctx);
          else if (
            typeof widget === 'object' &&
            widget !== null &&
            typeof (widget as { render?: unknown }).render === 'function'
          ) {
            produced = (widget as { render: AnyFunction }).render(widgetConfig, context, ctx);
          } else return missing('widget');
          break;
        }
        case 'hook': {
          // Lifecycle hooks are optional: a missing one succeeds with null.
          const fn = lookup(exported, 'hooks', meta.name);
          if (typeof fn !== 'function') produced = null;
          else if (meta.name === 'upgrade') {
            const from =
              typeof input === 'object' && input !== null
                ? (input as { fromVersion?: unknown }).fromVersion
                : input;
            produced = (fn as AnyFunction)(from ?? null, ctx);
          } else produced = (fn as AnyFunction)(ctx);
          break;
        }
        default:
          return missing('entry');
      }
      pending = isThenable(produced);
      if (!pending) return finishValue(produced);
    } catch (err) {
      return failure(err);
    } finally {
      if (!pending) end();
    }
    // The entry returned a promise (or a thenable): the call settles when it does. Resolved through
    // a promise of this context's own, so a hostile `then` runs as addon code under the call's limits.
    const settled = new PromiseCtor<unknown>((resolve) => resolve(produced));
    return reflectApply(promiseThen, settled, [
      (value: unknown) => {
        try {
          return finishValue(value);
        } catch (err) {
          return failure(err);
        } finally {
          end();
        }
      },
      (err: unknown) => {
        end();
        return failure(err);
      },
    ]) as Promise<RunEnvelope>;
  };

  // Null-prototype records and captured methods: addon code may patch Object, Map or Promise
  // prototypes of its own context, and must not reach or reroute another call's envelope.
  const finished = setPrototypeOf({}, null) as Record<number, RunEnvelope>;
  const waiting = setPrototypeOf({}, null) as Record<number, true>;
  const doneOptions = setPrototypeOf({ arguments: setPrototypeOf({ copy: true }, null) }, null) as object;

  /** What escaped `run` itself (not the entry, whose errors `run` reports with their codes). */
  function startFailure(err: unknown): RunEnvelope {
    return {
      ok: false,
      code: 'ADDON_ERROR',
      message: describe(err).slice(0, 2000),
      sdk: false,
      logs: [],
      logsTruncated: false,
    };
  }

  function settle(execId: number, envelope: RunEnvelope): void {
    if (waiting[execId] === true) {
      delete waiting[execId];
      reflectApply(doneApplyIgnored, done, [undefined, [execId, envelope], doneOptions]);
    } else {
      finished[execId] = envelope;
    }
  }

  return freeze(
    setPrototypeOf(
      {
        start(meta: CallMeta, inputJson: string, configJson: string): RunEnvelope | undefined {
          const execId = meta.execId;
          let result: RunEnvelope | Promise<RunEnvelope>;
          try {
            result = run(meta, inputJson, configJson);
          } catch (err) {
            return startFailure(err);
          }
          // Settled already (the entry returned a plain value): the envelope goes back as the
          // result of this very call, without a second call to take it.
          if (!(result instanceof PromiseCtor)) return result;
          reflectApply(promiseThen, result, [
            (envelope: RunEnvelope) => settle(execId, envelope),
            (err: unknown) => settle(execId, startFailure(err)),
          ]);
          return undefined;
        },
        take(execId: number): RunEnvelope | undefined {
          const envelope = finished[execId];
          if (envelope !== undefined) {
            delete finished[execId];
            return envelope;
          }
          waiting[execId] = true;
          return undefined;
        },
        resume(capId: number, replyJson: string): void {
          const settle = replies[capId];
          if (settle === undefined) return;
          delete replies[capId];
          settle(replyJson);
        },
      },
      null,
    ),
  ) as BootstrapDriver;
}
