import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { after, describe, it } from 'node:test';
import {
  call,
  codeOf,
  createPool,
  functionsAddon,
  makeBundle,
  MemoryCapabilities,
  sleep,
} from './helpers.js';
import type {
  AddonBundle,
  CapabilityScope,
  SandboxLogger,
  SandboxPool,
  SandboxPoolOptions,
  SandboxWorkerKill,
} from '../../src/sandbox/index.js';
import { BUSY_QUEUE, homeSlot } from '../../src/sandbox/worker-supervisor.js';

/** What the pool logged, as (level, object, message). */
class RecordingLogger implements SandboxLogger {
  readonly lines: { level: string; obj: object; msg: string }[] = [];
  debug = (obj: object, msg = '') => void this.lines.push({ level: 'debug', obj, msg });
  info = (obj: object, msg = '') => void this.lines.push({ level: 'info', obj, msg });
  warn = (obj: object, msg = '') => void this.lines.push({ level: 'warn', obj, msg });
  error = (obj: object, msg = '') => void this.lines.push({ level: 'error', obj, msg });
}

const pools: SandboxPool[] = [];
async function pool(
  opts: Partial<SandboxPoolOptions> = {},
  capabilities = new MemoryCapabilities(),
): Promise<{ pool: SandboxPool; kills: SandboxWorkerKill[]; logger: RecordingLogger }> {
  const kills: SandboxWorkerKill[] = [];
  const logger = new RecordingLogger();
  const created = createPool(capabilities, {
    logger,
    onWorkerKill: (kill) => kills.push(kill),
    ...opts,
  });
  pools.push(created);
  await created.start();
  return { pool: created, kills, logger };
}
after(() => Promise.all(pools.map((p) => p.close())));

/** A bundle of `source` whose version is homed on worker `slot` of a 2-worker pool. */
function homedOn(slot: number, source: string, overrides: Partial<AddonBundle> = {}): AddonBundle {
  for (;;) {
    const bundle = makeBundle(source, overrides);
    if (homeSlot(bundle.versionId, 2) === slot) return bundle;
  }
}

/** SIGCONT for a worker that may have been killed and reaped meanwhile. */
function resume(pid: number): void {
  try {
    process.kill(pid, 'SIGCONT');
  } catch {
    // gone already
  }
}

const pids = (p: SandboxPool) => p.stats().perWorker.map((w) => w.pid);

/**
 * The honest neighbour: `loops` callers calling `fn` on site "honest" until `stop()`, the i-th
 * starting `staggerMs` * i later (so their calls are not all between two at the same moment); every
 * result is kept, so a test can assert that each call succeeded.
 */
function callThroughout(
  p: SandboxPool,
  bundle: AddonBundle,
  fn: string,
  loops = 3,
  input: unknown = null,
  staggerMs = 0,
) {
  let running = true;
  const outcomes: { ok: boolean; code?: string; message?: string; workerId?: number }[] = [];
  const callers = Array.from({ length: loops }, async (_, i) => {
    if (staggerMs > 0) await sleep(staggerMs * i);
    while (running) {
      try {
        const result = await call(p, bundle, fn, input, { siteId: 'honest' });
        outcomes.push({ ok: true, workerId: result.workerId });
      } catch (err) {
        const e = err as { code?: string; message?: string };
        outcomes.push({ ok: false, code: e.code, message: e.message });
      }
      await sleep(5);
    }
  });
  return {
    outcomes,
    async stop() {
      running = false;
      await Promise.all(callers);
      return outcomes;
    },
  };
}

function assertAllSucceeded(outcomes: { ok: boolean; code?: string; message?: string }[]): void {
  const failed = outcomes.filter((o) => !o.ok);
  assert.ok(outcomes.length > 0, 'the honest addon was called');
  assert.deepEqual(failed, [], `${failed.length} of ${outcomes.length} honest calls failed`);
}

/** Answers quickly, or after awaiting a (delayed) storage read: a read is safe to run twice. */
const honestAddon = functionsAddon(`{
  ping: () => 'pong',
  read: async (d, ctx) => { await ctx.storage.get('k'); return 'read'; },
}`);

describe('kill only the guilty', () => {
  it('a worker that falls silent is replaced: the call that was running fails, the calls queued behind it run again elsewhere', async () => {
    // given: a guilty addon (site A) and an honest one (its calls wait 150 ms on a storage read),
    // both homed on worker 0, packed there whatever their age
    const capabilities = new MemoryCapabilities();
    capabilities.storageDelayMs = 150;
    const { pool: p, kills, logger } = await pool({ spillAfterMs: 60_000 }, capabilities);
    const guilty = homedOn(0, honestAddon, { limits: { timeoutMs: 600 }, permissions: ['storage.read'] });
    const honest = homedOn(0, honestAddon, { limits: { timeoutMs: 8000 }, permissions: ['storage.read'] });
    await call(p, guilty, 'ping', null, { siteId: 'A' });
    await call(p, honest, 'ping', null, { siteId: 'honest' });
    const before = pids(p);
    // when: the guilty call starts and then its worker stops answering (as a spinning isolate
    // holding the event loop would), while honest calls keep arriving there
    const guiltyCall = call(p, guilty, 'read', { secret: 'input-secret-123' }, { siteId: 'A' });
    await sleep(20);
    process.kill(before[0]!, 'SIGSTOP');
    try {
      const neighbour = callThroughout(p, honest, 'read', 3);
      const failure = await codeOf(guiltyCall);
      await sleep(300);
      const outcomes = await neighbour.stop();
      // then: the guilty call timed out, every honest call succeeded (those on the stopped worker
      // were run again on the other one), and only worker 0 was replaced
      assert.equal(failure.code, 'EXECUTION_TIMEOUT');
      assertAllSucceeded(outcomes);
      assert.notEqual(pids(p)[0], before[0]);
      assert.equal(pids(p)[1], before[1]);
      assert.equal(kills.length, 1);
      assert.equal(kills[0].reason, 'stalled');
      assert.deepEqual(
        kills[0].guilty.map((g) => [g.addonName, g.version, g.versionId, g.siteId]),
        [[guilty.addonName, '1.0.0', guilty.versionId, 'A']],
      );
      assert.ok(kills[0].retriedCalls >= 1, `retried ${kills[0].retriedCalls}`);
      assert.equal(p.stats().retriedCalls, kills[0].retriedCalls);
      // and the kill was logged once, naming addon, version and site, without the call's input
      const logged = logger.lines.filter((l) => l.msg.startsWith('sandbox worker'));
      assert.equal(logged.length, 1);
      assert.equal(logged[0].level, 'error');
      const text = JSON.stringify(logged[0].obj);
      assert.match(text, new RegExp(guilty.addonName));
      assert.match(text, /"siteId":"A"/);
      assert.match(text, /"reason":"stalled"/);
      assert.doesNotMatch(text, /input-secret-123/);
    } finally {
      resume(before[0]!);
    }
  });

  it('blames the call that was running, not one sent after the worker fell silent, when this process reads the worker’s last messages late', async () => {
    // given: a guilty addon (site A) and an honest one homed on worker 0, storage reads taking 150 ms
    const capabilities = new MemoryCapabilities();
    capabilities.storageDelayMs = 150;
    const { pool: p, kills } = await pool({ spillAfterMs: 60_000 }, capabilities);
    const guilty = homedOn(0, honestAddon, { limits: { timeoutMs: 600 }, permissions: ['storage.read'] });
    const honest = homedOn(0, honestAddon, { limits: { timeoutMs: 8000 }, permissions: ['storage.read'] });
    await call(p, guilty, 'ping', null, { siteId: 'A' });
    await call(p, honest, 'ping', null, { siteId: 'honest' });
    const before = pids(p);
    // when: the guilty call is written to the worker; this process's loop is then held while the
    // worker runs it and writes its storage read (left unread), the worker is stopped, and an
    // honest call is sent, all before this process reads what the worker wrote
    const guiltyCall = call(p, guilty, 'read', null, { siteId: 'A' });
    await new Promise((resolve) => setImmediate(resolve));
    const end = Date.now() + 150;
    while (Date.now() < end) {
      // held: the worker's messages wait in the channel
    }
    process.kill(before[0]!, 'SIGSTOP');
    try {
      const honestCall = call(p, honest, 'read', null, { siteId: 'honest' }).then(
        () => 'ok',
        (err: { code: string }) => err.code,
      );
      const failure = await codeOf(guiltyCall);
      // then: the guilty call timed out and was named; the honest one, sent after the worker fell
      // silent, was run again elsewhere
      assert.equal(failure.code, 'EXECUTION_TIMEOUT');
      assert.equal(await honestCall, 'ok');
      assert.deepEqual(
        kills.map((k) => k.guilty.map((g) => g.versionId)),
        [[guilty.versionId]],
      );
    } finally {
      resume(before[0]!);
    }
  });

  it('a worker that crashes by itself fails only the calls of the one version and site running there', async () => {
    // given: an addon that crashes its worker (site A) homed on worker 0, an honest one on worker 1
    const { pool: p, kills } = await pool({ allowCrashTest: true, spillAfterMs: 60_000 });
    const crasher = homedOn(
      0,
      functionsAddon(`{ crash: () => { __sandboxCrashWorkerForTest(); return new Promise(() => {}); } }`),
      { limits: { timeoutMs: 3000 } },
    );
    const honest = homedOn(1, honestAddon);
    await call(p, honest, 'ping', null, { siteId: 'honest' });
    const before = pids(p);
    const neighbour = callThroughout(p, honest, 'ping', 2);
    // when: it crashes its worker three times
    const codes: string[] = [];
    for (let i = 0; i < 3; i += 1) {
      codes.push((await codeOf(call(p, crasher, 'crash', null, { siteId: 'A' }))).code);
      // the next crash goes to the crasher's own (replaced) worker
      while (p.stats().workersReady < 2) await sleep(10);
    }
    await sleep(100);
    const outcomes = await neighbour.stop();
    // then: its calls failed with SANDBOX_CRASHED, it was named every time, the honest addon lost
    // nothing and its worker kept its process
    assert.deepEqual(codes, ['SANDBOX_CRASHED', 'SANDBOX_CRASHED', 'SANDBOX_CRASHED']);
    assertAllSucceeded(outcomes);
    assert.equal(kills.length, 3);
    for (const kill of kills) {
      assert.equal(kill.reason, 'crashed');
      assert.deepEqual(
        kill.guilty.map((g) => [g.versionId, g.siteId]),
        [[crasher.versionId, 'A']],
      );
    }
    assert.equal(pids(p)[1], before[1]);
    assert.deepEqual(
      p.recentWorkerKills().map((k) => k.reason),
      ['crashed', 'crashed', 'crashed'],
    );
  });

  it('a crash with innocent calls in flight: they run again on the replacement, the culprit alone, and it is named', async () => {
    // given: a crashing addon (site A) and an honest one sharing worker 0, whose calls (50 ms on a
    // storage read) are always in flight there: two callers 25 ms apart, so with the crasher's
    // call three in flight, under BUSY_QUEUE, and worker 0 is never passed over for them
    const capabilities = new MemoryCapabilities();
    capabilities.storageDelayMs = 50;
    const { pool: p, kills } = await pool({ allowCrashTest: true, spillAfterMs: 60_000 }, capabilities);
    const crasher = homedOn(
      0,
      functionsAddon(`{ crash: () => { __sandboxCrashWorkerForTest(); return new Promise(() => {}); } }`),
      { limits: { timeoutMs: 5000 } },
    );
    const honest = homedOn(0, honestAddon, { limits: { timeoutMs: 5000 }, permissions: ['storage.read'] });
    await call(p, honest, 'ping', null, { siteId: 'honest' });
    const before = pids(p);
    assert.ok(3 < BUSY_QUEUE);
    const neighbour = callThroughout(p, honest, 'read', 2, null, 25);
    await sleep(50);
    // when: it crashes its worker, twice
    const codes: string[] = [];
    for (let i = 0; i < 2; i += 1) {
      codes.push((await codeOf(call(p, crasher, 'crash', null, { siteId: 'A' }))).code);
      while (p.stats().workersReady < 2) await sleep(10);
    }
    await sleep(100);
    const outcomes = await neighbour.stop();
    // then: its calls fail, the honest calls all succeed, worker 1 never crashed, and every kill
    // named the crasher or (honest calls in flight with it) nobody, followed by one naming it
    assert.deepEqual(codes, ['SANDBOX_CRASHED', 'SANDBOX_CRASHED']);
    assertAllSucceeded(outcomes);
    assert.equal(pids(p)[1], before[1]);
    assert.ok(kills.length >= 2 && kills.length <= 4, `${kills.length} kills`);
    assert.ok(
      kills.some((k) => k.guilty.length === 0 && k.retriedCalls > 0),
      'a crash with honest calls in flight retried them',
    );
    for (const kill of kills) {
      assert.equal(kill.workerId, 0);
      const named = kill.guilty.map((g) => `${g.versionId}/${g.siteId}`);
      assert.ok(named.length === 0 || named.join() === `${crasher.versionId}/A`, named.join());
    }
    assert.equal(kills.filter((k) => k.guilty.length === 1).length, 2);
  });

  it('sends a call routed to a worker whose channel just closed to a usable worker instead of failing it', async () => {
    // given: an honest addon homed on worker 0
    const { pool: p, kills } = await pool({ spillAfterMs: 60_000 });
    const honest = homedOn(0, honestAddon, { limits: { timeoutMs: 5000 } });
    await call(p, honest, 'ping', null, { siteId: 'honest' });
    const before = pids(p);
    // when: worker 0's channel closes (as when it dies) and a call is routed there before its
    // 'exit' and even its 'disconnect' event have arrived
    const supervisor = (p as unknown as { supervisor: { slots: ({ child: ChildProcess } | null)[] } })
      .supervisor;
    supervisor.slots[0]!.child.disconnect();
    const calls = [1, 2, 3].map(() => call(p, honest, 'ping', null, { siteId: 'honest' }));
    // then: each call succeeds (on worker 1, or worker 0's replacement), and the worker that was
    // never sent them is not said to have been killed by them
    for (const result of await Promise.all(calls)) assert.equal(result.output, 'pong');
    while (p.stats().workersReady < 2) await sleep(10);
    assert.notEqual(pids(p)[0], before[0]);
    assert.deepEqual(
      kills.map((k) => k.guilty.length),
      kills.map(() => 0),
    );
  });

  it('does not run again a call that had made an SDK call with effects the host cannot drop', async () => {
    // given: an honest addon whose call emitted an event and then waits, on the worker of a
    // call that will stall it
    const capabilities = new MemoryCapabilities();
    capabilities.storageDelayMs = 2000;
    const { pool: p, kills } = await pool({ spillAfterMs: 60_000 }, capabilities);
    const source = functionsAddon(`{
      ping: () => 'pong',
      emitThenRead: async (d, ctx) => { await ctx.events.emit('x.done', {}); await ctx.storage.get('k'); return 'ok'; },
    }`);
    const guilty = homedOn(0, source, { limits: { timeoutMs: 500 } });
    const honest = homedOn(0, source, {
      limits: { timeoutMs: 8000 },
      permissions: ['events.emit', 'storage.read'],
      emits: ['x.done'],
    });
    await call(p, guilty, 'ping', null, { siteId: 'A' });
    await call(p, honest, 'ping', null, { siteId: 'honest' });
    const pid = pids(p)[0]!;
    const effectful = call(p, honest, 'emitThenRead', null, { siteId: 'honest' });
    await sleep(200);
    const guiltyCall = call(p, guilty, 'ping', null, { siteId: 'A' });
    process.kill(pid, 'SIGSTOP');
    try {
      // when: the worker is replaced
      const failure = await codeOf(effectful);
      await codeOf(guiltyCall);
      // then: the call that emitted fails with SANDBOX_CRASHED, saying why it was not run again
      assert.equal(failure.code, 'SANDBOX_CRASHED');
      assert.match(
        failure.message,
        /not run again because its storage writes or events could not be dropped/,
      );
      assert.equal(kills.length, 1);
      assert.equal(kills[0].retriedCalls, 0);
      assert.equal(capabilities.events.length, 1);
    } finally {
      resume(pid);
    }
  });
});

/** Holds emitted events per execution, as the app's host does, and can drop them. */
class HoldingCapabilities extends MemoryCapabilities {
  readonly held = new Map<string, string[]>();
  discarded = 0;
  override async emitEvent(scope: CapabilityScope, name: string): Promise<{ id: string }> {
    const list = this.held.get(scope.executionId ?? '') ?? [];
    list.push(name);
    this.held.set(scope.executionId ?? '', list);
    return { id: `held-${list.length}` };
  }
  discardCallEffects(scope: CapabilityScope): boolean {
    this.discarded += 1;
    return this.held.delete(scope.executionId ?? '');
  }
}

describe('kill only the guilty: held effects', () => {
  it('runs again a call that emitted, once the host dropped what it held for it', async () => {
    // given: an honest call that emitted an event and is now computing, and a call of another
    // addon on the same worker that crashes it
    const capabilities = new HoldingCapabilities();
    const { pool: p, kills } = await pool({ allowCrashTest: true, spillAfterMs: 60_000 }, capabilities);
    const source = functionsAddon(`{
      ping: () => 'pong',
      crash: () => { __sandboxCrashWorkerForTest(); return new Promise(() => {}); },
      emitThenWork: async (d, ctx) => { await ctx.events.emit('x.done', {}); const end = Date.now() + 400; while (Date.now() < end) {} return 'done'; },
    }`);
    const crasher = homedOn(0, source, { limits: { timeoutMs: 5000 } });
    const honest = homedOn(0, source, {
      limits: { timeoutMs: 5000 },
      permissions: ['events.emit'],
      emits: ['x.done'],
    });
    await call(p, crasher, 'ping', null, { siteId: 'A' });
    await call(p, honest, 'ping', null, { siteId: 'honest' });
    const before = pids(p);
    const working = p.execute({
      bundle: honest,
      siteId: 'honest',
      installationId: null,
      config: null,
      entry: { kind: 'function', name: 'emitThenWork' },
      input: null,
      executionId: 'exec-1',
    });
    await sleep(150);
    // when: the worker crashes with both in flight
    const crashed = await codeOf(call(p, crasher, 'crash', null, { siteId: 'A' }));
    // then: the honest call ran again on the replacement after its held event was dropped, and
    // holds one event; the crasher failed, named by the replacement's crash; worker 1 untouched
    assert.equal((await working).output, 'done');
    assert.equal(crashed.code, 'SANDBOX_CRASHED');
    assert.equal(capabilities.discarded, 1);
    assert.deepEqual(capabilities.held.get('exec-1'), ['x.done']);
    assert.equal(kills[0].guilty.length, 0);
    assert.equal(kills[0].retriedCalls, 2);
    assert.deepEqual(
      kills.at(-1)!.guilty.map((g) => g.versionId),
      [crasher.versionId],
    );
    assert.equal(pids(p)[1], before[1]);
  });
});

/** `(module (memory (export "m") 300))`: an instance whose own memory is 300 pages (18.75 MB). */
// prettier-ignore
const WASM_OWN_MEMORY_300 = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x05, 0x04, 0x01, 0x00, 0xac, 0x02,
  0x07, 0x05, 0x01, 0x01, 0x6d, 0x02, 0x00,
]);

const wasmAddon = functionsAddon(`{
  keep: (d) => {
    globalThis.kept = globalThis.kept || [];
    for (let i = 0; i < d.count; i++) {
      const m = new WebAssembly.Memory({ initial: d.pages });
      new Uint8Array(m.buffer).fill(1);
      globalThis.kept.push(m);
    }
    return globalThis.kept.length;
  },
  churn: (d) => {
    for (let i = 0; i < d.count; i++) new Uint8Array(new WebAssembly.Memory({ initial: d.pages }).buffer).fill(1);
    return 'ok';
  },
  grow: (d) => { const m = new WebAssembly.Memory({ initial: 1 }); m.grow(d.pages); return m.buffer.byteLength; },
  unbounded: () => { const m = new WebAssembly.Memory({ initial: 1 }); let pages = 1; try { for (;;) { m.grow(64); pages += 64; } } catch (e) { return { pages, error: e instanceof RangeError }; } },
  originals: () => ({
    sameCtor: WebAssembly.Memory.prototype.constructor === WebAssembly.Memory,
    instanceOf: new WebAssembly.Memory({ initial: 1 }) instanceof WebAssembly.Memory,
    gc: typeof gc,
    sub: (() => { class M extends WebAssembly.Memory {} try { new M({ initial: 60000 }); return 'allowed'; } catch (e) { return e.name; } })(),
  }),
  own: (d, ctx) => { const i = new WebAssembly.Instance(ctx.wasm.module, {}); return i.exports.m.buffer.byteLength; },
  ownAsync: async (d, ctx) => { const i = await WebAssembly.instantiate(ctx.wasm.module, {}); return i.exports.m.buffer.byteLength; },
}`);

describe('WebAssembly memory counts against memoryMb', () => {
  it('refuses memories beyond the limit (issue 28 item 4: 4096-page memories kept by an addon) without touching the worker', async () => {
    const { pool: p, kills } = await pool();
    const hostile = makeBundle(wasmAddon);
    const honest = makeBundle(honestAddon);
    const before = pids(p);
    const neighbour = callThroughout(p, honest, 'ping', 2);
    // when: the addon keeps 256 MB memories with the default 64 MB limit, four times
    const codes: string[] = [];
    for (let i = 0; i < 4; i += 1) {
      codes.push((await codeOf(call(p, hostile, 'keep', { count: 1, pages: 4096 }, { siteId: 'A' }))).code);
    }
    const outcomes = await neighbour.stop();
    // then: each call fails with MEMORY_LIMIT_EXCEEDED, the workers stay small and keep their
    // processes, and the neighbour lost nothing
    assert.deepEqual(codes, Array(4).fill('MEMORY_LIMIT_EXCEEDED'));
    assertAllSucceeded(outcomes);
    await sleep(1100);
    for (const w of p.stats().perWorker) assert.ok(w.rssBytes < 400 * 1024 * 1024, `rss ${w.rssBytes}`);
    assert.deepEqual(pids(p), before);
    assert.equal(kills.length, 0);
  });

  it('counts every memory of a context, their growth, and the memories of instances; frees dropped ones', async () => {
    const { pool: p } = await pool({ workers: 1 });
    const small = makeBundle(wasmAddon, { limits: { memoryMb: 16 }, wasm: WASM_OWN_MEMORY_300 });
    const other = makeBundle(wasmAddon, { limits: { memoryMb: 16 } });
    // 16 MB = 256 pages: three 80-page memories fit, a fourth does not
    assert.equal((await call(p, small, 'keep', { count: 3, pages: 80 }, { siteId: 'A' })).output, 3);
    assert.equal(
      (await codeOf(call(p, small, 'keep', { count: 1, pages: 80 }, { siteId: 'A' }))).code,
      'MEMORY_LIMIT_EXCEEDED',
    );
    // growth is counted
    assert.equal(
      (await codeOf(call(p, other, 'grow', { pages: 300 }, { siteId: 'B' }))).code,
      'MEMORY_LIMIT_EXCEEDED',
    );
    assert.deepEqual((await call(p, other, 'unbounded', null, { siteId: 'C' })).output, {
      pages: 193,
      error: true,
    });
    // an instance's own 300-page memory is over a 16 MB limit, through either constructor
    assert.equal((await codeOf(call(p, small, 'own', null, { siteId: 'D' }))).code, 'MEMORY_LIMIT_EXCEEDED');
    assert.equal(
      (await codeOf(call(p, small, 'ownAsync', null, { siteId: 'E' }))).code,
      'MEMORY_LIMIT_EXCEEDED',
    );
    // memories dropped by the addon are collected rather than counted for good: 10 calls of 8 MB each
    for (let i = 0; i < 10; i += 1) {
      assert.equal((await call(p, other, 'churn', { count: 1, pages: 128 }, { siteId: 'F' })).output, 'ok');
    }
    // the originals are out of reach, and instanceof and subclasses still work (and are counted)
    assert.deepEqual((await call(p, other, 'originals', null, { siteId: 'G' })).output, {
      sameCtor: true,
      instanceOf: true,
      gc: 'undefined',
      sub: 'RangeError',
    });
  });

  it('recycles a worker whose RSS passes the cap, failing only the version whose memory grew', async () => {
    // given: a 250 MB RSS cap, an addon that holds 4 x 60 MB of wasm memory and then works on,
    // and an honest addon on the same worker whose calls are in flight throughout: two callers
    // started 50 ms apart, so one is always waiting on a read, and with the hog's call three in
    // flight, under BUSY_QUEUE, so worker 0 is never passed over for them
    const capabilities = new MemoryCapabilities();
    capabilities.storageDelayMs = 100;
    const { pool: p, kills } = await pool({ maxWorkerRssMb: 250, spillAfterMs: 60_000 }, capabilities);
    const hog = homedOn(
      0,
      functionsAddon(`{
        hold: async (d) => {
          globalThis.kept = [];
          for (let i = 0; i < 4; i++) {
            const m = new WebAssembly.Memory({ initial: 960 });
            new Uint8Array(m.buffer).fill(1);
            globalThis.kept.push(m);
          }
          const end = Date.now() + 4000;
          while (Date.now() < end) {}
          return 'held';
        },
      }`),
      { limits: { memoryMb: 256, timeoutMs: 8000, cpuTimeMs: 8000 } },
    );
    const honest = homedOn(0, honestAddon, { limits: { timeoutMs: 8000 }, permissions: ['storage.read'] });
    await call(p, honest, 'ping', null, { siteId: 'honest' });
    const before = pids(p);
    assert.ok(3 < BUSY_QUEUE, 'two honest calls and the hog leave worker 0 open to the honest ones');
    const neighbour = callThroughout(p, honest, 'read', 2, null, 50);
    await sleep(150);
    // when: the addon's memory takes worker 0 past the cap
    const failure = await codeOf(call(p, hog, 'hold', null, { siteId: 'A' }));
    await sleep(300);
    const outcomes = await neighbour.stop();
    // then: its call fails with MEMORY_LIMIT_EXCEEDED, worker 0 is replaced, the honest calls on
    // it were run again and all succeeded
    assert.equal(failure.code, 'MEMORY_LIMIT_EXCEEDED');
    assertAllSucceeded(outcomes);
    assert.equal(kills.length, 1);
    assert.equal(kills[0].reason, 'rss');
    assert.ok(kills[0].rssBytes > 250 * 1024 * 1024);
    assert.deepEqual(
      kills[0].guilty.map((g) => [g.versionId, g.siteId]),
      [[hog.versionId, 'A']],
    );
    assert.ok(kills[0].retriedCalls >= 1, `retried ${kills[0].retriedCalls}`);
    assert.notEqual(pids(p)[0], before[0]);
    assert.equal(pids(p)[1], before[1]);
  });
});

describe('fair shares per site', () => {
  it('serves site C while site A floods a shared addon with 3-second calls', async () => {
    // given: an addon with 16 concurrent slots whose `slow` call waits 3 s on the host
    const capabilities = new MemoryCapabilities();
    capabilities.storageDelayMs = 3000;
    const { pool: p } = await pool({}, capabilities);
    const shared = makeBundle(honestAddon, {
      limits: { timeoutMs: 8000, maxConcurrentCalls: 16 },
      permissions: ['storage.read'],
    });
    const honest = makeBundle(honestAddon);
    const before = pids(p);
    const neighbour = callThroughout(p, honest, 'ping', 2);
    // when: site A sends 20 calls at once, and then keeps sending
    const first = Array.from({ length: 20 }, () =>
      call(p, shared, 'read', null, { siteId: 'A' }).then(
        () => 'ok',
        (err: { code: string }) => err.code,
      ),
    );
    await sleep(100);
    let flooding = true;
    const floodCodes: string[] = [];
    const flood = (async () => {
      while (flooding) {
        floodCodes.push(
          await call(p, shared, 'read', null, { siteId: 'A' }).then(
            () => 'ok',
            (err: { code: string; message: string }) => `${err.code}: ${err.message}`,
          ),
        );
        await sleep(20);
      }
    })();
    // and site C calls the same addon 5 times
    const started = Date.now();
    const cResults = [];
    for (let i = 0; i < 5; i += 1) cResults.push(await call(p, shared, 'ping', null, { siteId: 'C' }));
    const cTook = Date.now() - started;
    flooding = false;
    await flood;
    const firstCodes = await Promise.all(first);
    const outcomes = await neighbour.stop();
    // then: the addon's limit held for site A alone (16 of its first 20 ran), C was served every
    // time from the slots kept beyond the limit for sites crowded out, without waiting for A's
    // 3-second calls; A's flood was refused, and nothing was killed
    assert.equal(firstCodes.filter((c) => c === 'ok').length, 16);
    assert.equal(firstCodes.filter((c) => c === 'TOO_MANY_CONCURRENT_CALLS').length, 4);
    assert.deepEqual(
      cResults.map((r) => r.output),
      Array(5).fill('pong'),
    );
    assert.ok(cTook < 2500, `site C waited ${cTook} ms (A's calls take 3000 ms)`);
    assert.ok(
      floodCodes.some((c) => c.startsWith('TOO_MANY_CONCURRENT_CALLS')),
      `site A's flood was refused: ${floodCodes.slice(0, 3).join(' | ')}`,
    );
    assertAllSucceeded(outcomes);
    assert.deepEqual(pids(p), before);
  });

  it('a waiting call gives up with TOO_MANY_CONCURRENT_CALLS after its time limit, and the queue is bounded', async () => {
    const capabilities = new MemoryCapabilities();
    capabilities.storageDelayMs = 1500;
    const { pool: p } = await pool({}, capabilities);
    // three versions of one addon (the slots are the addon's): their time limits differ
    const version = (timeoutMs: number) =>
      makeBundle(honestAddon, {
        addonName: 'fair-share-queue',
        limits: { timeoutMs, maxConcurrentCalls: 2 },
        permissions: ['storage.read'],
      });
    const [holding, patient, hasty] = [version(400), version(5000), version(100)];
    // site A holds both slots (its calls time out at 400 ms)
    const held = [0, 1].map(() => codeOf(call(p, holding, 'read', null, { siteId: 'A' })));
    await sleep(50);
    // two sites wait (the queue holds as many calls as the addon has slots), a third is refused
    const waiting = call(p, patient, 'ping', null, { siteId: 'B' });
    const gaveUp = codeOf(call(p, hasty, 'ping', null, { siteId: 'C' }));
    const refused = await codeOf(call(p, patient, 'ping', null, { siteId: 'D' }));
    assert.equal(refused.code, 'TOO_MANY_CONCURRENT_CALLS');
    // the hasty one gives up after its 100 ms
    const hastyFailure = await gaveUp;
    assert.equal(hastyFailure.code, 'TOO_MANY_CONCURRENT_CALLS');
    assert.match(hastyFailure.message, /no free concurrent slot/);
    // A's calls end (timed out) and the patient site is served
    assert.deepEqual(
      (await Promise.all(held)).map((f) => f.code),
      ['EXECUTION_TIMEOUT', 'EXECUTION_TIMEOUT'],
    );
    assert.equal((await waiting).output, 'pong');
  });
});
