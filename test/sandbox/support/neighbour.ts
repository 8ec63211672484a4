// Shared pieces of the noisy-neighbour tests (issue 28): an honest caller that keeps calling while a
// hostile one runs, a watcher of the sandbox workers' PIDs, and the hostile addons' sources. They
// assert only what any correct sandbox must keep (promises to other tenants), never how it keeps
// them, so tests built on them stay valid whatever the fix looks like.
import { performance } from 'node:perf_hooks';
import type { AddonBundle, CapabilityScope, SandboxPool } from '../../../src/sandbox/index.js';
import { call, functionsAddon, makeBundle, MemoryCapabilities, sleep } from '../helpers.js';
import { machineSlowdown } from '../../support/machine-speed.js';

/** What an honest neighbour saw while it kept calling. */
export interface NeighbourReport {
  /** Calls that returned the right answer. */
  ok: number;
  /** Calls that failed or returned a wrong answer: code (or `WRONG_ANSWER`) and message. */
  failures: { code: string; message: string }[];
  /** Latency of every call, in ms, in the order they ended. */
  latenciesMs: number[];
}

/** A running neighbour: {@link NeighbourLoop.stop} ends it and resolves with what it saw. */
export interface NeighbourLoop {
  stop(): Promise<NeighbourReport>;
  /** Calls ended so far (ok or not). */
  readonly calls: number;
}

/**
 * Calls `once` from `concurrency` loops, each pausing `pauseMs` between calls, until stopped.
 * `once` resolves when the call was right and throws (an error with a `code` when it has one)
 * when it was not. A pause keeps the neighbour from being load itself on a 2-core machine.
 */
export function keepCalling(
  once: (n: number) => Promise<void>,
  { concurrency = 2, pauseMs = 5 }: { concurrency?: number; pauseMs?: number } = {},
): NeighbourLoop {
  const report: NeighbourReport = { ok: 0, failures: [], latenciesMs: [] };
  let stopped = false;
  let n = 0;
  const loops = Array.from({ length: concurrency }, async () => {
    while (!stopped) {
      const started = performance.now();
      try {
        await once((n += 1));
        report.ok += 1;
      } catch (err) {
        const { code, message } = err as { code?: unknown; message?: unknown };
        report.failures.push({
          code: typeof code === 'string' ? code : 'WRONG_ANSWER',
          message: String(message).slice(0, 300),
        });
      }
      report.latenciesMs.push(performance.now() - started);
      if (pauseMs > 0) await sleep(pauseMs);
    }
  });
  return {
    get calls() {
      return report.ok + report.failures.length;
    },
    async stop() {
      stopped = true;
      await Promise.all(loops);
      return report;
    },
  };
}

/**
 * The honest addon: `add` adds two numbers in well under a millisecond; `add-after-read` first reads
 * its storage (storage.read), as most real calls do, so it waits for the host with its worker's
 * event loop free to take the answer.
 */
export const HONEST_SOURCE = functionsAddon(`{
  add: (d) => ({ sum: d.a + d.b }),
  'add-after-read': async (d, ctx) => { await ctx.storage.get('honest'); return { sum: d.a + d.b }; },
}`);

/** The key the honest addon reads, and how long {@link NeighbourCapabilities} takes to answer it. */
export const HONEST_READ_KEY = 'honest';
export const HONEST_READ_MS = 20;

/**
 * {@link MemoryCapabilities} whose storage reads wait per key: the honest neighbour's read
 * {@link HONEST_READ_MS} (so it always has calls in flight, as a site with traffic has), others
 * as set in `readDelays`.
 */
export class NeighbourCapabilities extends MemoryCapabilities {
  readonly readDelays = new Map<string, number>([[HONEST_READ_KEY, HONEST_READ_MS]]);

  override async storageGet(scope: CapabilityScope, key: string): Promise<unknown | null> {
    const delay = this.readDelays.get(key) ?? 0;
    if (delay > 0) await sleep(delay);
    return super.storageGet(scope, key);
  }
}

/**
 * The honest addon's time limit: an answer later than this breaks the tenant's own contract. 1 s
 * on the calibration machine, scaled by how much slower this one is.
 */
export const HONEST_TIMEOUT_MS = Math.round(1000 * machineSlowdown());

/** An honest addon's bundle: default limits (what an ordinary addon gets), a fresh version. */
export function honestBundle(overrides: Partial<AddonBundle> = {}): AddonBundle {
  return makeBundle(HONEST_SOURCE, {
    permissions: ['storage.read'],
    limits: { timeoutMs: HONEST_TIMEOUT_MS },
    ...overrides,
  });
}

/**
 * An honest tenant on `siteId` calling `add` and `add-after-read` of its addons in turn (by default
 * two honest addons, which a sandbox may place apart; a shared addon's bundle must export both
 * too) until stopped; a wrong sum counts as a failure. Give the pool {@link NeighbourCapabilities}
 * so the reads wait for the host.
 */
export function honestNeighbour(
  pool: SandboxPool,
  {
    bundles = [honestBundle(), honestBundle()],
    siteId = 'site-b',
    concurrency = 2,
    pauseMs = 10,
  }: { bundles?: AddonBundle[]; siteId?: string; concurrency?: number; pauseMs?: number } = {},
): NeighbourLoop {
  return keepCalling(
    async (n) => {
      const bundle = bundles[n % bundles.length];
      const fn = Math.floor(n / bundles.length) % 2 === 0 ? 'add' : 'add-after-read';
      const result = await call(pool, bundle, fn, { a: n, b: 1 }, { siteId });
      const sum = (result.output as { sum?: unknown } | null)?.sum;
      if (sum !== n + 1) throw new Error(`add(${n}, 1) answered ${JSON.stringify(result.output)}`);
    },
    { concurrency, pauseMs },
  );
}

/** What {@link watchWorkerPids} saw. */
export interface PidReport {
  /** The workers' PIDs when watching started. */
  initial: number[];
  /** Every worker PID seen while watching (replacements included), in the order first seen. */
  seen: number[];
  /** True when any worker was replaced while watching. */
  changed: boolean;
}

/**
 * Samples the pool's worker PIDs (`stats().perWorker[].pid`) every `everyMs` until stopped, so a
 * worker killed and replaced between two looks at the end is still noticed.
 */
export function watchWorkerPids(pool: Pick<SandboxPool, 'stats'>, everyMs = 10): { stop(): PidReport } {
  const pidsOf = (stats: ReturnType<SandboxPool['stats']>) =>
    stats.perWorker.map((w) => w.pid).filter((pid): pid is number => pid !== null);
  const initial = pidsOf(pool.stats());
  const seen = new Set(initial);
  const look = () => {
    for (const pid of pidsOf(pool.stats())) seen.add(pid);
  };
  const timer = setInterval(look, everyMs);
  return {
    stop() {
      clearInterval(timer);
      look();
      return { initial, seen: [...seen], changed: seen.size > initial.length };
    },
  };
}

/** Outcome of one hostile call: `OK`, or the error's code. */
export async function outcomeOf(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
    return 'OK';
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' ? code : `THROWN ${String((err as Error).message).slice(0, 100)}`;
  }
}

/** Counts of each outcome, e.g. `{ OK: 2, EXECUTION_TIMEOUT: 4 }`. */
export function tally(outcomes: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const outcome of outcomes) counts[outcome] = (counts[outcome] ?? 0) + 1;
  return counts;
}

/** A busy-wait on the wall clock, as hostile sources spell it (no timers exist in an isolate). */
const SPIN = `const spinFor = (ms) => { const t = Date.now(); while (Date.now() - t < ms) {} };`;

/**
 * Sources of the hostile addons, one per class of issue 28 and variations. Every one takes its
 * durations and sizes from its input (or config), so tests and the benchmark size them.
 */
export const HOSTILE = {
  /** Item 1: `async` functions that spin for `d.ms` (within generous limits) before returning. */
  asyncSpinner: `${SPIN}
module.exports = { functions: {
  spin: async (d) => { spinFor(d.ms); return 'spun'; },
  quick: () => 'quick',
} };`,
  /** Item 1 through a widget render: an async render that spins for `context.ms`. */
  widgetSpinner: `${SPIN}
module.exports = { widgets: { spin: async (config, context) => { spinFor(context.ms); return { html: '<p>spun</p>' }; } } };`,
  /** Item 1 through an event handler: an async handler that spins for `event.data.ms`. */
  handlerSpinner: `${SPIN}
module.exports = { handlers: { onSpin: async (event) => { spinFor(event.data.ms); } } };`,
  /** Item 1 through a lifecycle hook: an async install hook that spins for `ctx.config.ms`. */
  hookSpinner: `${SPIN}
module.exports = { hooks: { install: async (ctx) => { spinFor(ctx.config.ms); } } };`,
  /**
   * Item 2: `quick` earns a version fast starts; `spin` then spins for `d.ms` on whatever thread
   * starts it; `spin-after-answer` does so in the continuation after an SDK answer (needs
   * storage.read).
   */
  policyGamer: `${SPIN}
module.exports = { functions: {
  quick: () => 'quick',
  spin: (d) => { spinFor(d.ms); return 'spun'; },
  'spin-after-answer': async (d, ctx) => { await ctx.storage.get('k'); spinFor(d.ms); return 'spun'; },
} };`,
  /**
   * Items 3 and 3b: an addon installed on several sites. `add` and `add-after-read` are its honest
   * functions (as the honest addon's); `hold`
   * waits for a slow SDK answer (storage.read; the host decides how slow); `spin` never ends.
   */
  shared: `module.exports = { functions: {
  add: (d) => ({ sum: d.a + d.b }),
  'add-after-read': async (d, ctx) => { await ctx.storage.get('honest'); return { sum: d.a + d.b }; },
  hold: async (d, ctx) => { await ctx.storage.get('slow'); return 'held'; },
  spin: () => { for (;;) {} },
} };`,
  /** Promise-job floods: microtasks that never end, at once or after an SDK answer (storage.read). */
  promiseFlood: `module.exports = { functions: {
  flood: async () => { for (;;) await null; },
  'flood-after-answer': async (d, ctx) => { await ctx.storage.get('k'); for (;;) await null; },
  'fan-out': async () => { const step = () => Promise.resolve().then(() => { step(); step(); }); step(); return new Promise(() => {}); },
} };`,
  /**
   * Item 4: memory a call keeps (in the site's globals, every page written so it is resident)
   * beyond `memoryMb`: `wasm` keeps a
   * `WebAssembly.Memory` of `d.pages` 64 KiB pages, `grow` grows one kept memory by `d.pages`,
   * `buffer` keeps a filled ArrayBuffer of `d.mb` MiB (counted by the isolate's limit today);
   * `spin` never ends (a timeout disposes the isolate, and what it kept with it).
   */
  memoryHog: `const touch = (buffer) => { const bytes = new Uint8Array(buffer); for (let i = 0; i < bytes.length; i += 4096) bytes[i] = 1; };
module.exports = { functions: {
  spin: () => { for (;;) {} },
  wasm: (d) => { const memory = new WebAssembly.Memory({ initial: d.pages }); touch(memory.buffer); (globalThis.kept ??= []).push(memory); return kept.length; },
  grow: (d) => { globalThis.grown ??= new WebAssembly.Memory({ initial: 1 }); grown.grow(d.pages); touch(grown.buffer); return grown.buffer.byteLength; },
  buffer: (d) => { const b = new ArrayBuffer(d.mb * 1024 * 1024); touch(b); (globalThis.kept ??= []).push(b); return kept.length; },
} };`,
  /** Item 5: a caller that calls its dependency `d.dep` (function `work`) and returns its answer. */
  caller: `module.exports = { functions: { call: async (d, ctx) => ctx.addons.call(d.dep, 'work', d) } };`,
  /**
   * Item 5: a dependency that spins for `d.ms`, then writes `late` to its storage (storage.write):
   * a write that reaches the host after its caller ended shows the call outlived it. With
   * `d.next` it calls that dependency instead of spinning (a chain; `d.rest` names the next
   * ones), then writes.
   */
  dependency: `${SPIN}
module.exports = { functions: { work: async (d, ctx) => {
  if (d.next) await ctx.addons.call(d.next, 'work', { ...d, next: d.rest?.[0], rest: d.rest?.slice(1) });
  else spinFor(d.ms);
  await ctx.storage.set('late', Date.now());
  return 'done';
} } };`,
  /**
   * Crashers: `heap` exhausts the heap, `stack` the stack, `catastrophic` kills its worker
   * process (needs the pool's `allowCrashTest`; the nearest thing to a V8 crash an addon can ask for).
   */
  crasher: `module.exports = { functions: {
  heap: () => { const hoard = []; for (;;) hoard.push(new Array(1e6).fill(Math.random())); },
  stack: () => { const dive = (n) => dive(n + 1) + 1; return dive(0); },
  catastrophic: () => { __sandboxCrashWorkerForTest(); return new Promise(() => {}); },
} };`,
} as const;

/** Percentile of numbers in any order (nearest rank). */
export function percentileOf(values: number[], p: number): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)];
}
