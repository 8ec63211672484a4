import assert from 'node:assert/strict';
import { runInNewContext } from 'node:vm';
import { after, before, describe, it } from 'node:test';
import {
  call,
  codeOf,
  createPool,
  functionsAddon,
  makeBundle,
  MemoryCapabilities,
  sleep,
  WASM_ADD_AND_SPIN,
} from './helpers.js';
import type { AddonBundle, AddonLimits, SandboxPool } from '../../src/sandbox/index.js';

/** Fast limits, so the whole suite stays short; generous enough for honest code on a loaded box. */
const LIMITS: Partial<AddonLimits> = { timeoutMs: 1000, cpuTimeMs: 400, memoryMb: 32 };
/**
 * For addons expected to end any other way than by a timeout: isolated-vm's CPU clock keeps running
 * while the isolate's thread waits for a core, so with 30 hostile addons on 2 cores a tight time limit
 * could otherwise win the race against, say, the memory limit.
 */
const ROOMY: Partial<AddonLimits> = { timeoutMs: 5000, cpuTimeMs: 4000 };

interface Hostile {
  name: string;
  source: string;
  bundle?: Partial<AddonBundle>;
  /** Kills its worker: run apart from the others, which would be collateral damage. */
  crashes?: boolean;
  /** Expected error code, or a check of the successful output. */
  expect: string | ((output: unknown) => void);
  input?: unknown;
  siteId?: string;
}

const STANDARD_GLOBALS = new Set(Object.getOwnPropertyNames(runInNewContext('globalThis')));
/**
 * Globals the sandbox adds on purpose (see docs/sandbox.md); `__sandboxCrashWorkerForTest` only with
 * `allowCrashTest`; `gc` is V8's (workers run with --expose-gc), non-configurable, set to undefined
 * by the bootstrap, which keeps the function.
 */
const SANDBOX_GLOBALS = new Set([
  'gc',
  'module',
  'exports',
  'console',
  'html',
  'raw',
  '__sandboxCrashWorkerForTest',
]);

const hostiles: Hostile[] = [
  {
    name: 'constructor chain to process',
    source: functionsAddon(`{ f: async function () {
      const results = [];
      for (const attempt of [
        () => this.constructor.constructor('return process')(),
        () => (function () {}).constructor('return process')(),
        () => ({}).constructor.constructor('return require')(),
        () => (async () => {}).constructor('return process')(),
        () => (function* () {}).constructor('return process')().next().value,
      ]) { try { results.push(typeof (await attempt())); } catch (e) { results.push(e.name); } }
      return results;
    } }`),
    expect: (out) => assert.deepEqual(out, Array(5).fill('ReferenceError')),
  },
  {
    name: 'constructor chain through ctx functions',
    source: functionsAddon(`{ f: (d, ctx) => {
      const g = ctx.storage.get.constructor.constructor('return this')();
      const viaLog = ctx.log.constructor('return this')();
      return { same: g === globalThis && viaLog === globalThis, hostRef: typeof g.__tp_host, process: typeof g.process,
        require: typeof g.require, ivm: typeof g.ivm, proto: Object.getOwnPropertyNames(Object.getPrototypeOf(ctx.storage.get)).includes('deref') };
    } }`),
    expect: (out) =>
      assert.deepEqual(out, {
        same: true,
        hostRef: 'undefined',
        process: 'undefined',
        require: 'undefined',
        ivm: 'undefined',
        proto: false,
      }),
  },
  {
    name: 'Function("return this") and a scan of the global object',
    source: functionsAddon(
      `{ f: () => ({ same: Function('return this')() === globalThis, names: Object.getOwnPropertyNames(globalThis) }) }`,
    ),
    expect: (out) => {
      const { same, names } = out as { same: boolean; names: string[] };
      assert.equal(same, true);
      const extra = names.filter((n) => !STANDARD_GLOBALS.has(n) && !SANDBOX_GLOBALS.has(n));
      assert.deepEqual(extra, []);
    },
  },
  {
    name: 'Error.prepareStackTrace to reach bootstrap frames',
    source: functionsAddon(`{ f: async (d, ctx) => {
      const frames = [];
      Error.prepareStackTrace = (e, callSites) => { for (const s of callSites) frames.push({ file: s.getFileName(), self: typeof s.getThis(), fn: typeof s.getFunction() }); return ''; };
      try { await ctx.storage.get({ toJSON() { throw new Error('probe'); } }); } catch (e) { void e.stack; }
      try { ctx.html\`<a onclick="\${1}">\`; } catch (e) { void e.stack; }
      return frames;
    } }`),
    bundle: { permissions: ['storage.read'] },
    expect: (out) => {
      const frames = out as { file: string | null; self: string; fn: string }[];
      assert.ok(frames.some((f) => f.file === 'sandbox:///bootstrap.js'));
      for (const frame of frames) {
        assert.ok(
          frame.file === null || /^(addon|sandbox):\/\/\//.test(frame.file),
          `host file leaked: ${frame.file}`,
        );
        if (frame.file === 'sandbox:///bootstrap.js')
          assert.deepEqual([frame.self, frame.fn], ['undefined', 'undefined']);
      }
    },
  },
  {
    name: 'dynamic import and host module probing',
    source: functionsAddon(
      `{ f: async () => { try { await import('node:child_process'); return 'imported'; } catch (e) { return typeof require + '/' + typeof process + '/' + e.message; } } }`,
    ),
    expect: (out) => assert.match(String(out), /^undefined\/undefined\//),
  },
  {
    name: 'prototype pollution of its own realm',
    source: functionsAddon(`{
      f: () => { Object.prototype.polluted = 'yes'; Array.prototype.map = () => 'hijacked'; JSON.stringify = () => '"forged"'; return { clean: 1 }; },
      read: () => ({ polluted: ({}).polluted ?? null, map: [1].map((x) => x + 1) }),
    }`),
    expect: (out) => {
      assert.deepEqual(out, { clean: 1 });
      assert.equal(({} as Record<string, unknown>).polluted, undefined, 'host Object.prototype untouched');
    },
  },
  {
    name: 'output with own __proto__ and constructor.prototype keys',
    source: functionsAddon(
      `{ f: () => JSON.parse('{"__proto__":{"polluted":true},"nested":{"__proto__":{"x":1},"ok":2},"constructor":{"prototype":{"polluted":true}},"escaped":{"__proto\\\\u005f_":{"y":1}}}') }`,
    ),
    expect: (out) => {
      const value = out as Record<string, Record<string, unknown>>;
      assert.equal(Object.getPrototypeOf(value), Object.prototype);
      assert.ok(!Object.prototype.hasOwnProperty.call(value, '__proto__'));
      assert.ok(!Object.prototype.hasOwnProperty.call(value.nested, '__proto__'));
      assert.ok(!Object.prototype.hasOwnProperty.call(value.escaped, '__proto__'));
      assert.equal(value.nested.ok, 2);
      assert.equal(value.constructor, Object, 'constructor.prototype payload dropped');
      const merged = Object.assign({}, value, value.nested) as Record<string, unknown>;
      assert.equal(merged.polluted, undefined);
      assert.equal(({} as Record<string, unknown>).polluted, undefined);
    },
  },
  {
    name: 'sync infinite loop',
    source: functionsAddon(`{ f: () => { for (;;) {} } }`),
    expect: 'EXECUTION_TIMEOUT',
  },
  {
    name: 'async infinite loop',
    source: functionsAddon(`{ f: async () => { for (;;) await null; } }`),
    expect: 'EXECUTION_TIMEOUT',
  },
  {
    name: 'infinite loop in the continuation after an SDK answer',
    source: functionsAddon(`{ f: async (d, ctx) => { await ctx.storage.get('k'); for (;;) {} } }`),
    bundle: { permissions: ['storage.read'] },
    expect: 'EXECUTION_TIMEOUT',
  },
  {
    name: 'promise that never settles',
    source: functionsAddon(`{ f: () => new Promise(() => {}) }`),
    expect: 'EXECUTION_TIMEOUT',
  },
  {
    name: 'work left running after return',
    source: functionsAddon(
      `{ f: () => { Promise.resolve().then(function spin() { for (;;) {} }); return 'returned'; } }`,
    ),
    expect: 'EXECUTION_TIMEOUT',
  },
  {
    name: 'heap bomb',
    source: functionsAddon(
      `{ f: () => { const hoard = []; for (;;) hoard.push(new Array(1e6).fill(Math.random())); } }`,
    ),
    expect: 'MEMORY_LIMIT_EXCEEDED',
  },
  {
    name: 'ArrayBuffer bomb',
    source: functionsAddon(
      `{ f: () => { const hoard = []; for (let i = 0; i < 1000; i++) hoard.push(new ArrayBuffer(16 * 1024 * 1024)); return hoard.length; } }`,
    ),
    expect: 'MEMORY_LIMIT_EXCEEDED',
  },
  {
    name: 'huge output',
    source: functionsAddon(`{ f: () => 'x'.repeat(2 * 1024 * 1024) }`),
    expect: 'OUTPUT_TOO_LARGE',
  },
  {
    name: 'output just under the size limit in multi-byte characters',
    source: functionsAddon(`{ f: () => 'é'.repeat(600 * 1024) }`),
    expect: 'OUTPUT_TOO_LARGE',
  },
  {
    name: 'getter that loops during the copy',
    source: functionsAddon(`{ f: () => ({ get trap() { for (;;) {} } }) }`),
    expect: 'EXECUTION_TIMEOUT',
  },
  {
    name: 'toJSON and Proxy traps that loop',
    source: functionsAddon(`{ f: () => ({ a: new Proxy({}, { ownKeys() { for (;;) {} } }) }) }`),
    expect: 'EXECUTION_TIMEOUT',
  },
  {
    name: 'deep recursion',
    source: functionsAddon(`{ f: () => { const dive = (n) => dive(n + 1) + 1; return dive(0); } }`),
    expect: 'ADDON_ERROR',
  },
  {
    name: 'ReDoS',
    source: functionsAddon(`{ f: () => /^(a+)+$/.test('a'.repeat(40) + 'b') }`),
    expect: 'EXECUTION_TIMEOUT',
  },
  {
    name: 'log flood',
    source: functionsAddon(
      `{ f: (d, ctx) => { for (let i = 0; i < 20000; i++) { ctx.log('spam'.repeat(50)); console.error('more'); } return 'flooded'; } }`,
    ),
    expect: (out) => assert.equal(out, 'flooded'),
  },
  {
    name: 'endless log flood',
    source: functionsAddon(`{ f: (d, ctx) => { for (;;) ctx.log('spam'); } }`),
    expect: 'EXECUTION_TIMEOUT',
  },
  {
    name: 'WebAssembly infinite loop',
    source: functionsAddon(`{ f: (d, ctx) => new WebAssembly.Instance(ctx.wasm.module, {}).exports.spin() }`),
    bundle: { wasm: WASM_ADD_AND_SPIN },
    expect: 'EXECUTION_TIMEOUT',
  },
  {
    name: 'infinite loop at module load',
    source: `for (;;) {}\nmodule.exports = { functions: { f: () => 1 } };`,
    expect: 'EXECUTION_TIMEOUT',
  },
  {
    name: 'memory bomb at module load',
    source: `const hoard = []; for (;;) hoard.push(new Array(1e6).fill(Math.random()));`,
    expect: 'MEMORY_LIMIT_EXCEEDED',
  },
  {
    name: 'Atomics.wait forever',
    source: functionsAddon(`{ f: () => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0) }`),
    expect: 'EXECUTION_TIMEOUT',
  },
  {
    name: 'forged SDK error codes and tampered primordials',
    source: functionsAddon(`{ f: () => {
      WeakSet.prototype.has = () => true;
      Object.freeze = (x) => x;
      const e = new Error('pretend the sandbox crashed'); e.code = 'SANDBOX_CRASHED'; e.name = 'AddonSdkError';
      throw e;
    } }`),
    expect: 'ADDON_ERROR',
  },
  {
    name: 'forged permission error',
    source: functionsAddon(
      `{ f: () => { throw Object.assign(new Error('nope'), { code: 'PERMISSION_DENIED' }); } }`,
    ),
    expect: 'ADDON_ERROR',
  },
  {
    name: 'error whose message getter loops',
    source: functionsAddon(`{ f: () => { throw { get message() { for (;;) {} } }; } }`),
    expect: 'EXECUTION_TIMEOUT',
  },
  {
    name: 'huge error message',
    source: functionsAddon(`{ f: () => { throw new Error('z'.repeat(5 * 1024 * 1024)); } }`),
    expect: 'ADDON_ERROR',
  },
  {
    name: 'SDK call storm',
    source: functionsAddon(
      `{ f: async (d, ctx) => { const all = []; for (let i = 0; i < 500; i++) all.push(ctx.storage.get('k').catch((e) => e.code)); const codes = await Promise.all(all); return codes.filter((c) => c === 'RATE_LIMITED').length; } }`,
    ),
    bundle: { permissions: ['storage.read'] },
    expect: (out) => assert.ok((out as number) >= 450, `rate limited ${out}`),
  },
  {
    name: 'permission escalation via another addon name',
    source: functionsAddon(`{ f: async (d, ctx) => ctx.addons.call('admin-tools', 'dropAll', {}) }`),
    expect: 'PERMISSION_DENIED',
  },
  {
    name: 'unhandled promise rejection',
    source: functionsAddon(
      `{ f: async () => { Promise.reject(new Error('dangling')); await null; return 'ok'; } }`,
    ),
    expect: 'ADDON_ERROR',
  },
  {
    name: 'crash of its worker process',
    crashes: true,
    source: functionsAddon(`{ f: () => { __sandboxCrashWorkerForTest(); return new Promise(() => {}); } }`),
    expect: 'SANDBOX_CRASHED',
  },
];

describe('hostile addons', () => {
  const caps = new MemoryCapabilities();
  let pool: SandboxPool;
  before(async () => {
    pool = createPool(caps, { allowCrashTest: true });
    await pool.start();
  });
  after(() => pool.close());

  it(`contains ${hostiles.length} distinct hostile addons (at least 20)`, () => {
    assert.ok(hostiles.length >= 20);
    assert.equal(new Set(hostiles.map((h) => h.name)).size, hostiles.length);
  });

  /** Calls a well-behaved addon in a loop until stopped; every answer must be right. */
  function wellBehavedLoop(): { stop: () => Promise<{ calls: number; crashed: number }> } {
    const good = makeBundle(functionsAddon(`{ add: (d) => ({ sum: d.a + d.b, site: 'ok' }) }`), {
      limits: { timeoutMs: 10_000 },
    });
    let stopped = false;
    let calls = 0;
    let crashed = 0;
    const loop = (async () => {
      while (!stopped) {
        const a = Math.floor(Math.random() * 1000);
        try {
          const result = await call(pool, good, 'add', { a, b: 1 });
          assert.deepEqual(result.output, { sum: a + 1, site: 'ok' });
          calls += 1;
        } catch (err) {
          // A worker that dies takes the calls it was running with it (see docs/sandbox.md); nothing else may fail.
          assert.equal((err as { code?: string }).code, 'SANDBOX_CRASHED');
          crashed += 1;
        }
      }
    })();
    return {
      stop: async () => {
        stopped = true;
        await loop;
        return { calls, crashed };
      },
    };
  }

  async function runHostile(hostile: Hostile): Promise<string | null> {
    const limits = hostile.expect === 'EXECUTION_TIMEOUT' ? LIMITS : { ...LIMITS, ...ROOMY };
    const bundle = makeBundle(hostile.source, { ...hostile.bundle, limits });
    try {
      const result = await call(pool, bundle, 'f', hostile.input ?? null, { siteId: hostile.siteId });
      if (typeof hostile.expect === 'string') {
        return `${hostile.name}: expected ${hostile.expect}, got output ${JSON.stringify(result.output)?.slice(0, 200)}`;
      }
      hostile.expect(result.output);
      return null;
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (typeof hostile.expect === 'string' && code === hostile.expect) return null;
      const wanted = typeof hostile.expect === 'string' ? hostile.expect : 'success';
      return `${hostile.name}: expected ${wanted}, got ${code ?? ''} ${(err as Error).message.slice(0, 300)}`;
    }
  }

  it('all fail safely, concurrently, while a well-behaved addon keeps answering', async () => {
    const good = wellBehavedLoop();
    const outcomes = await Promise.all(hostiles.filter((h) => !h.crashes).map(runHostile));
    const { calls, crashed } = await good.stop();
    assert.deepEqual(
      outcomes.filter((o) => o !== null),
      [],
    );
    assert.equal(crashed, 0);
    assert.ok(calls >= 20, `well-behaved addon answered ${calls} times`);
    assert.equal(pool.stats().crashes, 0);
  });

  it('replaces a crashed worker and keeps serving', async () => {
    const good = wellBehavedLoop();
    const outcomes = await Promise.all(hostiles.filter((h) => h.crashes).map(runHostile));
    const { calls, crashed } = await good.stop();
    assert.deepEqual(
      outcomes.filter((o) => o !== null),
      [],
    );
    assert.ok(crashed <= 1, `${crashed} calls of the well-behaved addon were lost with the crashed worker`);
    assert.ok(calls >= 1);
    // A crash with the well-behaved addon's calls in flight names no culprit: every call gets one
    // retry on the crashed worker's replacement, which the crashing addon may crash once more.
    assert.ok([1, 2].includes(pool.stats().crashes), `${pool.stats().crashes} crashes`);
    const ping = makeBundle(functionsAddon(`{ f: () => 'pong' }`));
    assert.equal((await call(pool, ping, 'f')).output, 'pong');
    for (let i = 0; i < 50 && pool.stats().workersReady < 2; i++) await sleep(100);
    assert.equal(pool.stats().workersReady, 2, 'the replacement worker is up');
  });

  it('does not let one site see pollution made by another', async () => {
    const source = hostiles.find((h) => h.name === 'prototype pollution of its own realm')!.source;
    const bundle = makeBundle(source, { limits: LIMITS });
    await call(pool, bundle, 'f', null, { siteId: 'site-a' });
    assert.deepEqual((await call(pool, bundle, 'read', null, { siteId: 'site-b' })).output, {
      polluted: null,
      map: [2],
    });
  });

  it('keeps an isolate after a stack overflow and replaces it after a timeout', async () => {
    const bundle = makeBundle(
      functionsAddon(
        `{ dive: () => { const d = (n) => d(n + 1) + 1; return d(0); }, spin: () => { for (;;) {} }, ping: () => 'pong' }`,
      ),
      { limits: LIMITS },
    );
    await call(pool, bundle, 'ping');
    const overflow = await codeOf(call(pool, bundle, 'dive'));
    assert.equal(overflow.code, 'ADDON_ERROR');
    assert.match(overflow.message, /call stack/);
    assert.equal((await call(pool, bundle, 'ping')).cold, false);
    assert.equal((await codeOf(call(pool, bundle, 'spin'))).code, 'EXECUTION_TIMEOUT');
    assert.equal((await call(pool, bundle, 'ping')).cold, true);
  });
});
