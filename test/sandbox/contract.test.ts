import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  call,
  codeOf,
  createPool,
  functionsAddon,
  makeBundle,
  MemoryCapabilities,
  WASM_ADD_AND_SPIN,
} from './helpers.js';
import type { SandboxPool } from '../../src/sandbox/index.js';

describe('addon module contract', () => {
  const caps = new MemoryCapabilities();
  let pool: SandboxPool;
  before(async () => {
    pool = createPool(caps);
    await pool.start();
  });
  after(() => pool.close());

  describe('functions', () => {
    const bundle = makeBundle(
      functionsAddon(`{
        sum: (data) => data.a + data.b,
        later: async (data) => { await null; return { doubled: data.n * 2 }; },
        nothing: () => undefined,
        whoami: (data, ctx) => ({ site: ctx.site.id, addon: ctx.addon, config: ctx.config, installationId: ctx.installationId }),
        date: () => ({ at: new Date(0) }),
        big: () => 10n,
        circular: () => { const a = {}; a.self = a; return a; },
        hoard: (data) => { globalThis.kept = (globalThis.kept || []).concat(new Array(data.n).fill('x').map((x, i) => x + i)); return globalThis.kept.length; },
      }`),
      { addonName: 'calc', version: '2.1.0' },
    );

    it('runs sync and async functions with their input', async () => {
      assert.equal((await call(pool, bundle, 'sum', { a: 2, b: 40 })).output, 42);
      assert.deepEqual((await call(pool, bundle, 'later', { n: 21 })).output, { doubled: 42 });
    });

    it('reports the isolate heap after a call only when asked', async () => {
      const site = { siteId: 'heap-site' };
      const plain = await call(pool, bundle, 'hoard', { n: 1 }, site);
      const small = await call(pool, bundle, 'hoard', { n: 1 }, { ...site, measureHeap: true });
      const large = await call(pool, bundle, 'hoard', { n: 200_000 }, { ...site, measureHeap: true });
      assert.equal(plain.heapUsedBytes, undefined);
      assert.ok(small.heapUsedBytes! > 0);
      // 200,000 retained strings take megabytes more than the heap held before
      assert.ok(
        large.heapUsedBytes! - small.heapUsedBytes! > 2_000_000,
        `${small.heapUsedBytes} -> ${large.heapUsedBytes}`,
      );
    });

    it('turns undefined into null and copies output as JSON', async () => {
      assert.equal((await call(pool, bundle, 'nothing')).output, null);
      assert.deepEqual((await call(pool, bundle, 'date')).output, { at: '1970-01-01T00:00:00.000Z' });
    });

    it('gives ctx.site, ctx.addon, ctx.config and installationId', async () => {
      const result = await call(pool, bundle, 'whoami', null, {
        siteId: 'site-x',
        config: { theme: 'dark' },
        installationId: 'inst-1',
      });
      assert.deepEqual(result.output, {
        site: 'site-x',
        addon: { name: 'calc', version: '2.1.0' },
        config: { theme: 'dark' },
        installationId: 'inst-1',
      });
    });

    it('fails with ADDON_ERROR on output that is not JSON', async () => {
      assert.equal((await codeOf(call(pool, bundle, 'big'))).code, 'ADDON_ERROR');
      const circular = await codeOf(call(pool, bundle, 'circular'));
      assert.equal(circular.code, 'ADDON_ERROR');
      assert.match(circular.message, /JSON/);
    });

    it('reports a missing entry as NOT_FOUND naming it, and ignores inherited names', async () => {
      const missing = await codeOf(call(pool, bundle, 'nope'));
      assert.equal(missing.code, 'NOT_FOUND');
      assert.match(missing.message, /function "nope"/);
      for (const name of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
        assert.equal((await codeOf(call(pool, bundle, name))).code, 'NOT_FOUND', name);
      }
      assert.match(
        (await codeOf(call(pool, bundle, 'sum', null, { kind: 'handler' }))).message,
        /handler "sum"/,
      );
      assert.match(
        (await codeOf(call(pool, bundle, 'sum', null, { kind: 'widget' }))).message,
        /widget "sum"/,
      );
    });

    it('passes the addon error message, without stack or host paths', async () => {
      const thrower = makeBundle(
        functionsAddon(`{ fail: () => { throw new Error('card declined'); }, num: () => { throw 42; } }`),
      );
      const failure = await codeOf(call(pool, thrower, 'fail'));
      assert.deepEqual(failure, { code: 'ADDON_ERROR', message: 'card declined' });
      assert.deepEqual(await codeOf(call(pool, thrower, 'num')), { code: 'ADDON_ERROR', message: '42' });
    });

    it('settles thenables as await would, a throwing then getter and a rejection included', async () => {
      const thenables = makeBundle(
        functionsAddon(`{
          thenable: (data) => ({ then: (resolve) => resolve({ got: data.n }) }),
          rejecting: () => ({ then: (_resolve, reject) => reject(new Error('declined later')) }),
          getterThrows: () => ({ get then() { throw new Error('no then for you'); } }),
          syncThrow: () => { throw new Error('declined at once'); },
          rejected: async () => { throw new Error('declined async'); },
        }`),
      );
      assert.deepEqual((await call(pool, thenables, 'thenable', { n: 7 })).output, { got: 7 });
      assert.deepEqual(await codeOf(call(pool, thenables, 'rejecting')), {
        code: 'ADDON_ERROR',
        message: 'declined later',
      });
      assert.deepEqual(await codeOf(call(pool, thenables, 'getterThrows')), {
        code: 'ADDON_ERROR',
        message: 'no then for you',
      });
      assert.deepEqual(await codeOf(call(pool, thenables, 'syncThrow')), {
        code: 'ADDON_ERROR',
        message: 'declined at once',
      });
      assert.deepEqual(await codeOf(call(pool, thenables, 'rejected')), {
        code: 'ADDON_ERROR',
        message: 'declined async',
      });
    });

    it('truncates long error messages', async () => {
      const thrower = makeBundle(functionsAddon(`{ fail: () => { throw new Error('x'.repeat(100000)); } }`));
      const failure = await codeOf(call(pool, thrower, 'fail'));
      assert.equal(failure.code, 'ADDON_ERROR');
      assert.ok(failure.message.length <= 1001, `length ${failure.message.length}`);
    });

    it('reports code that does not compile or throws at load as ADDON_ERROR', async () => {
      const broken = await codeOf(call(pool, makeBundle('module.exports = {'), 'x'));
      assert.equal(broken.code, 'ADDON_ERROR');
      assert.match(broken.message, /does not compile/);
      const throwing = await codeOf(call(pool, makeBundle(`throw new Error('no config');`), 'x'));
      assert.equal(throwing.code, 'ADDON_ERROR');
      assert.match(throwing.message, /failed to load: no config/);
    });

    it('supports exports.functions = ... as well as module.exports', async () => {
      const bundle2 = makeBundle(`exports.functions = { hi: () => 'hi' };`);
      assert.equal((await call(pool, bundle2, 'hi')).output, 'hi');
    });

    it('rejects oversized input and config with INPUT_TOO_LARGE before running anything', async () => {
      const small = makeBundle(functionsAddon(`{ echo: (d) => d }`), { limits: { maxInputBytes: 100 } });
      assert.equal((await codeOf(call(pool, small, 'echo', 'x'.repeat(200)))).code, 'INPUT_TOO_LARGE');
      assert.equal(
        (await codeOf(call(pool, small, 'echo', null, { config: { long: 'y'.repeat(200) } }))).code,
        'INPUT_TOO_LARGE',
      );
      assert.equal((await call(pool, small, 'echo', 'ok')).output, 'ok');
      // Counted in UTF-8 bytes, not characters: 60 characters of 2 or 3 bytes each are too many.
      assert.equal((await codeOf(call(pool, small, 'echo', 'é'.repeat(60)))).code, 'INPUT_TOO_LARGE');
      assert.equal((await codeOf(call(pool, small, 'echo', '€'.repeat(40)))).code, 'INPUT_TOO_LARGE');
      assert.equal((await call(pool, small, 'echo', 'é'.repeat(45))).output, 'é'.repeat(45));
    });

    it('rejects malformed requests with BAD_USER_INPUT', async () => {
      const err = await codeOf(
        pool.execute({
          bundle,
          siteId: '',
          installationId: null,
          config: null,
          entry: { kind: 'macro' as 'function', name: 'sum' },
          input: null,
        }),
      );
      assert.equal(err.code, 'BAD_USER_INPUT');
      assert.match(err.message, /siteId/);
      assert.match(err.message, /entry.kind/);
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      assert.equal((await codeOf(call(pool, bundle, 'sum', cyclic))).code, 'BAD_USER_INPUT');
    });
  });

  describe('widgets', () => {
    const bundle = makeBundle(`
      module.exports = {
        widgets: {
          card: (config, context, ctx) => ctx.html\`<div class="card" title="\${context.title}" data-x=\${context.title}>
            <h2>\${context.title}</h2><a href="\${context.link}">go</a>\${ctx.raw('<hr>')}
            <ul>\${context.items.map((i) => ctx.html\`<li>\${i}</li>\`)}</ul></div>\`,
          styled: {
            render: (config, context, ctx) => ({
              html: html\`<p style="color: \${config.color}">\${context.text}</p>\`,
              css: '.p { color: red }',
              javascript: 'console.log(1)',
            }),
          },
          plain: () => '<b>trusted by the addon</b>',
          both: (config, context, ctx) => ctx.html\`<p>\${config.size}|\${context.text}|\${ctx.config.currency}</p>\`,
          handler: (config, context, ctx) => ctx.html\`<button onclick="\${context.code}">x</button>\`,
          script: (config, context, ctx) => ctx.html\`<script>var x = \${context.code};</script>\`,
          bad: () => 42,
        },
      };
    `);
    const xss = `"><img src=x onerror=alert(1)>'\``;

    it('escapes interpolations in text and quoted attributes', async () => {
      const { output } = await call(
        pool,
        bundle,
        'card',
        { title: xss, link: 'https://ok.example/?a=1&b=2', items: ['<i>', 'b'] },
        { kind: 'widget' },
      );
      const { html } = output as { html: string };
      assert.ok(!html.includes('<img'), html);
      assert.ok(!html.includes('"><'), html);
      assert.match(html, /title="&quot;&gt;&lt;img src&#61;x onerror&#61;alert\(1\)&gt;&#39;&#96;"/);
      assert.match(html, /<h2>&quot;&gt;&lt;img/);
      assert.match(html, /href="https:\/\/ok.example\/\?a&#61;1&amp;b&#61;2"/);
      assert.match(html, /<hr>/, 'raw() markup is inserted as is');
      assert.match(html, /<li>&lt;i&gt;<\/li><li>b<\/li>/, 'nested html`` results are not escaped twice');
    });

    it('quotes unquoted attribute values', async () => {
      const { output } = await call(
        pool,
        bundle,
        'card',
        { title: 'a onmouseover=alert(1)', link: '/', items: [] },
        { kind: 'widget' },
      );
      assert.match((output as { html: string }).html, /data-x="a onmouseover&#61;alert\(1\)"/);
    });

    it('blocks javascript: URLs in URL attributes', async () => {
      for (const link of [
        'javascript:alert(1)',
        ' JaVaScRiPt:alert(1)',
        'java\tscript:alert(1)',
        'data:text/html,<script>',
      ]) {
        const { output } = await call(
          pool,
          bundle,
          'card',
          { title: 't', link, items: [] },
          { kind: 'widget' },
        );
        assert.match((output as { html: string }).html, /href="about:blank#blocked"/, link);
      }
    });

    it('refuses interpolation into event handlers and script bodies', async () => {
      const onclick = await codeOf(call(pool, bundle, 'handler', { code: 'alert(1)' }, { kind: 'widget' }));
      assert.equal(onclick.code, 'ADDON_ERROR');
      assert.match(onclick.message, /event handler/);
      const script = await codeOf(call(pool, bundle, 'script', { code: '1' }, { kind: 'widget' }));
      assert.match(script.message, /<script>/);
    });

    it('accepts { render } objects, the global html tag, css and javascript', async () => {
      const { output } = await call(
        pool,
        bundle,
        'styled',
        { text: '<b>' },
        { kind: 'widget', config: { color: 'red"' } },
      );
      assert.deepEqual(output, {
        html: '<p style="color: red&quot;">&lt;b&gt;</p>',
        css: '.p { color: red }',
        javascript: 'console.log(1)',
      });
    });

    it('gives the widget config first and keeps the installation config in ctx.config', async () => {
      const { output } = await call(
        pool,
        bundle,
        'both',
        { text: 'ctx' },
        { kind: 'widget', config: { currency: 'EUR', size: 'install' }, widgetConfig: { size: 'large' } },
      );
      assert.deepEqual(output, { html: '<p>large|ctx|EUR</p>' });
    });

    it('takes a plain string as trusted html and rejects other shapes', async () => {
      assert.deepEqual((await call(pool, bundle, 'plain', null, { kind: 'widget' })).output, {
        html: '<b>trusted by the addon</b>',
      });
      assert.equal((await codeOf(call(pool, bundle, 'bad', null, { kind: 'widget' }))).code, 'ADDON_ERROR');
    });
  });

  describe('handlers and hooks', () => {
    const bundle = makeBundle(`
      module.exports = {
        handlers: { onPaymentCompleted: async (event, ctx) => ({ seen: event.amount, site: ctx.site.id }) },
        hooks: {
          install: (ctx) => ({ installed: ctx.addon.version }),
          upgrade: (fromVersion, ctx) => ({ from: fromVersion, to: ctx.addon.version }),
        },
      };
    `);

    it('passes the event to a handler', async () => {
      const { output } = await call(pool, bundle, 'onPaymentCompleted', { amount: 12 }, { kind: 'handler' });
      assert.deepEqual(output, { seen: 12, site: 'site-1' });
    });

    it('calls install(ctx) and upgrade(fromVersion, ctx)', async () => {
      assert.deepEqual((await call(pool, bundle, 'install', null, { kind: 'hook' })).output, {
        installed: '1.0.0',
      });
      assert.deepEqual(
        (await call(pool, bundle, 'upgrade', { fromVersion: '0.9.0' }, { kind: 'hook' })).output,
        {
          from: '0.9.0',
          to: '1.0.0',
        },
      );
    });

    it('treats a missing lifecycle hook as a no-op', async () => {
      assert.equal((await call(pool, bundle, 'uninstall', null, { kind: 'hook' })).output, null);
    });
  });

  describe('WebAssembly', () => {
    it('compiles bundle.wasm inside the isolate and exposes ctx.wasm.module', async () => {
      const bundle = makeBundle(
        functionsAddon(`{
          add: (d, ctx) => new WebAssembly.Instance(ctx.wasm.module, {}).exports.add(d.a, d.b),
        }`),
        { wasm: WASM_ADD_AND_SPIN },
      );
      assert.equal((await call(pool, bundle, 'add', { a: 20, b: 22 })).output, 42);
    });

    it('reports an invalid wasm binary as ADDON_ERROR', async () => {
      const bundle = makeBundle(functionsAddon(`{ f: () => 1 }`), { wasm: new Uint8Array([0, 1, 2, 3]) });
      const failure = await codeOf(call(pool, bundle, 'f'));
      assert.equal(failure.code, 'ADDON_ERROR');
      assert.match(failure.message, /WebAssembly/);
    });

    it('gives ctx.wasm = null without a binary', async () => {
      const bundle = makeBundle(functionsAddon(`{ f: (d, ctx) => ctx.wasm }`));
      assert.equal((await call(pool, bundle, 'f')).output, null);
    });
  });
});
