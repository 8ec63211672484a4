import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  call,
  codeOf,
  createPool,
  functionsAddon,
  makeBundle,
  MemoryCapabilities,
  sleep,
} from './helpers.js';
import type { SandboxPool } from '../../src/sandbox/index.js';
import { MAX_PENDING_CAPABILITY_CALLS } from '../../src/sandbox/worker/sandbox-worker.js';

const storageAddon = functionsAddon(`{
  put: async (d, ctx) => { await ctx.storage.set(d.key, d.value); return 'ok'; },
  get: (d, ctx) => ctx.storage.get(d.key),
  del: (d, ctx) => ctx.storage.delete(d.key),
  list: (d, ctx) => ctx.storage.list(d),
  caught: async (d, ctx) => { try { await ctx.storage.set('k', 1); return 'allowed'; } catch (e) { return { code: e.code, name: e.name, message: e.message }; } },
}`);

describe('addon SDK', () => {
  const caps = new MemoryCapabilities();
  let pool: SandboxPool;
  let server: Server;
  let origin: string;
  before(async () => {
    pool = createPool(caps);
    server = createServer((req, res) => {
      if (req.url === '/json') {
        res.setHeader('content-type', 'application/json');
        res.setHeader('x-seen-method', req.method ?? '');
        let body = '';
        req.on('data', (chunk: Buffer) => (body += chunk.toString()));
        req.on('end', () =>
          res.end(JSON.stringify({ hello: 'world', echo: body, auth: req.headers.authorization ?? null })),
        );
      } else if (req.url === '/big') {
        res.end('x'.repeat(2 * 1024 * 1024));
      } else if (req.url === '/redirect') {
        res.statusCode = 302;
        res.setHeader('location', 'http://evil.example/');
        res.end();
      } else if (req.url === '/slow') {
        setTimeout(() => res.end('late'), 3000).unref();
      } else {
        res.statusCode = 404;
        res.end('nope');
      }
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await pool.start();
  });
  after(async () => {
    await pool.close();
    server.closeAllConnections();
    server.close();
  });

  describe('ctx.storage', () => {
    const granted = makeBundle(storageAddon, { permissions: ['storage.read', 'storage.write'] });
    const readOnly = makeBundle(storageAddon, { permissions: ['storage.read'] });
    const none = makeBundle(storageAddon, { permissions: [] });

    it('sets, gets, lists and deletes with both permissions', async () => {
      assert.equal(
        (await call(pool, granted, 'put', { key: 'a:1', value: { n: 1, list: [1, 2] } })).output,
        'ok',
      );
      await call(pool, granted, 'put', { key: 'a:2', value: 'two' });
      await call(pool, granted, 'put', { key: 'b:1', value: true });
      assert.deepEqual((await call(pool, granted, 'get', { key: 'a:1' })).output, { n: 1, list: [1, 2] });
      assert.equal((await call(pool, granted, 'get', { key: 'missing' })).output, null);
      assert.deepEqual((await call(pool, granted, 'list', { prefix: 'a:' })).output, {
        keys: ['a:1', 'a:2'],
        cursor: null,
      });
      assert.deepEqual((await call(pool, granted, 'list', { limit: 2 })).output, {
        keys: ['a:1', 'a:2'],
        cursor: 'a:2',
      });
      assert.equal((await call(pool, granted, 'del', { key: 'a:1' })).output, true);
      assert.equal((await call(pool, granted, 'del', { key: 'a:1' })).output, false);
    });

    it('scopes storage to the calling site and addon', async () => {
      await call(pool, granted, 'put', { key: 'scoped', value: 'site-1' });
      assert.equal((await call(pool, granted, 'get', { key: 'scoped' }, { siteId: 'site-2' })).output, null);
      const other = makeBundle(storageAddon, { permissions: ['storage.read'] });
      assert.equal((await call(pool, other, 'get', { key: 'scoped' })).output, null);
      const scope = caps.scopes[caps.scopes.length - 1];
      assert.equal(scope.addonId, other.addonId);
      assert.equal(scope.versionId, other.versionId);
      assert.equal(scope.siteId, 'site-1');
      assert.equal(scope.callDepth, 0);
    });

    it('denies writes without storage.write, naming the permission', async () => {
      const denied = await codeOf(call(pool, readOnly, 'put', { key: 'k', value: 1 }));
      assert.equal(denied.code, 'PERMISSION_DENIED');
      assert.match(denied.message, /storage\.write/);
      assert.equal((await codeOf(call(pool, readOnly, 'del', { key: 'k' }))).code, 'PERMISSION_DENIED');
      assert.equal((await call(pool, readOnly, 'get', { key: 'k' })).output, null);
    });

    it('denies reads without storage.read', async () => {
      const denied = await codeOf(call(pool, none, 'get', { key: 'k' }));
      assert.equal(denied.code, 'PERMISSION_DENIED');
      assert.match(denied.message, /storage\.read/);
      assert.match((await codeOf(call(pool, none, 'list', {}))).message, /storage\.read/);
    });

    it('lets the addon catch a denial as an AddonSdkError with a code', async () => {
      assert.deepEqual((await call(pool, readOnly, 'caught')).output, {
        code: 'PERMISSION_DENIED',
        name: 'AddonSdkError',
        message: `ctx.storage.set requires the "storage.write" permission, which addon "${readOnly.addonName}" was not granted.`,
      });
      assert.equal((await call(pool, granted, 'caught')).output, 'allowed');
    });

    it('validates keys and values', async () => {
      for (const key of ['', 'k'.repeat(201), 42, null, { toJSON: 'x' }]) {
        const bad = await codeOf(call(pool, granted, 'get', { key }));
        assert.equal(bad.code, 'BAD_USER_INPUT', JSON.stringify(key));
      }
      const big = await codeOf(call(pool, granted, 'put', { key: 'big', value: 'x'.repeat(300 * 1024) }));
      assert.equal(big.code, 'STORAGE_QUOTA_EXCEEDED');
      const undef = makeBundle(functionsAddon(`{ f: (d, ctx) => ctx.storage.set('k', undefined) }`), {
        permissions: ['storage.write'],
      });
      assert.equal((await codeOf(call(pool, undef, 'f'))).code, 'BAD_USER_INPUT');
      assert.equal((await codeOf(call(pool, granted, 'list', { limit: 5000 }))).code, 'BAD_USER_INPUT');
    });

    it('passes AppError codes of the host through and masks other host errors', async () => {
      assert.equal(
        (await codeOf(call(pool, granted, 'put', { key: 'quota', value: 1 }))).code,
        'STORAGE_QUOTA_EXCEEDED',
      );
      caps.failNext = new Error('connection refused at 10.0.0.5:5432');
      const masked = await codeOf(call(pool, granted, 'get', { key: 'k' }));
      assert.equal(masked.code, 'ADDON_ERROR');
      assert.equal(masked.message, 'storage.get failed because of a host error.');
    });
  });

  describe('ctx.events', () => {
    const source = functionsAddon(`{ emit: (d, ctx) => ctx.events.emit(d.name, d.data) }`);

    it('emits declared events with events.emit', async () => {
      const bundle = makeBundle(source, { permissions: ['events.emit'], emits: ['order.paid'] });
      const { output } = await call(pool, bundle, 'emit', { name: 'order.paid', data: { total: 5 } });
      assert.match((output as { id: string }).id, /^evt-/);
      const last = caps.events[caps.events.length - 1];
      assert.equal(last.name, 'order.paid');
      assert.deepEqual(last.data, { total: 5 });
      assert.equal(last.scope.addonId, bundle.addonId);
    });

    it('denies undeclared names and missing permission', async () => {
      const declared = makeBundle(source, { permissions: ['events.emit'], emits: ['order.paid'] });
      const undeclared = await codeOf(call(pool, declared, 'emit', { name: 'user.deleted' }));
      assert.equal(undeclared.code, 'PERMISSION_DENIED');
      assert.match(undeclared.message, /user\.deleted/);
      const noPermission = makeBundle(source, { permissions: [], emits: ['order.paid'] });
      const denied = await codeOf(call(pool, noPermission, 'emit', { name: 'order.paid' }));
      assert.equal(denied.code, 'PERMISSION_DENIED');
      assert.match(denied.message, /events\.emit/);
    });
  });

  describe('ctx.addons', () => {
    it('calls a declared dependency and passes its output back', async () => {
      const tax = makeBundle(
        functionsAddon(`{ rate: (d, ctx) => ({ rate: 0.2, country: d.country, site: ctx.site.id }) }`),
        {
          addonName: 'tax-rates',
        },
      );
      caps.addons.set('tax-rates', tax);
      const shop = makeBundle(
        functionsAddon(
          `{ price: async (d, ctx) => (await ctx.addons.call('tax-rates', 'rate', { country: 'FR' })) }`,
        ),
        {
          dependencies: { 'tax-rates': '^1.0.0' },
        },
      );
      assert.deepEqual((await call(pool, shop, 'price', null, { siteId: 'shop-site' })).output, {
        rate: 0.2,
        country: 'FR',
        site: 'shop-site',
      });
    });

    it('denies an addon that is not a dependency', async () => {
      const shop = makeBundle(functionsAddon(`{ f: (d, ctx) => ctx.addons.call('tax-rates', 'rate', {}) }`));
      const denied = await codeOf(call(pool, shop, 'f'));
      assert.equal(denied.code, 'PERMISSION_DENIED');
      assert.match(denied.message, /addons\.call/);
      assert.match(denied.message, /tax-rates/);
    });

    it('stops call cycles at the depth limit', async () => {
      const loop = makeBundle(
        functionsAddon(
          `{ again: async (d, ctx) => { try { return await ctx.addons.call('ouroboros', 'again', null); } catch (e) { return 'stopped: ' + e.message; } } }`,
        ),
        { addonName: 'ouroboros', dependencies: { ouroboros: '*' }, limits: { timeoutMs: 5000 } },
      );
      caps.addons.set('ouroboros', loop);
      const { output } = await call(pool, loop, 'again');
      assert.match(String(output), /stopped: ctx\.addons\.call: the call depth limit of 4 was reached/);
    });
  });

  describe('ctx.http', () => {
    const source = functionsAddon(`{
      get: async (d, ctx) => {
        const res = await ctx.http.fetch(d.url, d.init);
        return { status: res.status, ok: res.ok, type: res.headers['content-type'], method: res.headers['x-seen-method'], body: res.status === 200 ? await res.json() : await res.text() };
      },
      code: async (d, ctx) => { try { await ctx.http.fetch(d.url); return 'fetched'; } catch (e) { return e.code; } },
    }`);

    it('fetches from an allowed host and returns a plain response', async () => {
      const bundle = makeBundle(source, { permissions: ['http.fetch'], httpAllow: ['127.0.0.1'] });
      const { output } = await call(pool, bundle, 'get', {
        url: `${origin}/json`,
        init: { method: 'POST', headers: { authorization: 'Bearer t' }, body: 'ping' },
      });
      assert.deepEqual(output, {
        status: 200,
        ok: true,
        type: 'application/json',
        method: 'POST',
        body: { hello: 'world', echo: 'ping', auth: 'Bearer t' },
      });
    });

    it('does not follow redirects', async () => {
      const bundle = makeBundle(source, { permissions: ['http.fetch'], httpAllow: ['127.0.0.1'] });
      const { output } = await call(pool, bundle, 'get', { url: `${origin}/redirect` });
      assert.equal((output as { status: number }).status, 302);
    });

    it('denies hosts outside httpAllow and addons without http.fetch', async () => {
      const allowOther = makeBundle(source, { permissions: ['http.fetch'], httpAllow: ['api.example.com'] });
      const host = await codeOf(call(pool, allowOther, 'get', { url: `${origin}/json` }));
      assert.equal(host.code, 'PERMISSION_DENIED');
      assert.match(host.message, /127\.0\.0\.1/);
      const noPermission = makeBundle(source, { httpAllow: ['127.0.0.1'] });
      const denied = await codeOf(call(pool, noPermission, 'get', { url: `${origin}/json` }));
      assert.equal(denied.code, 'PERMISSION_DENIED');
      assert.match(denied.message, /http\.fetch/);
    });

    it('rejects other schemes, forbidden headers and oversized responses', async () => {
      const bundle = makeBundle(source, { permissions: ['http.fetch'], httpAllow: ['127.0.0.1'] });
      assert.equal(
        (await call(pool, bundle, 'code', { url: 'file:///etc/passwd' })).output,
        'BAD_USER_INPUT',
      );
      const hostHeader = await codeOf(
        call(pool, bundle, 'get', { url: `${origin}/json`, init: { headers: { host: 'x' } } }),
      );
      assert.equal(hostHeader.code, 'BAD_USER_INPUT');
      assert.equal((await call(pool, bundle, 'code', { url: `${origin}/big` })).output, 'PAYLOAD_TOO_LARGE');
    });

    it('bounds a slow response by the call wall time', async () => {
      const bundle = makeBundle(source, {
        permissions: ['http.fetch'],
        httpAllow: ['127.0.0.1'],
        limits: { timeoutMs: 400 },
      });
      const started = Date.now();
      assert.equal(
        (await codeOf(call(pool, bundle, 'get', { url: `${origin}/slow` }))).code,
        'EXECUTION_TIMEOUT',
      );
      assert.ok(Date.now() - started < 1500);
    });
  });

  describe('logs', () => {
    it('captures ctx.log levels and console.*', async () => {
      const bundle = makeBundle(
        functionsAddon(
          `{ f: (d, ctx) => { ctx.log('a', 1, { b: 2 }); ctx.warn('w'); ctx.error(new TypeError('bad')); ctx.debug('d'); console.log('via console'); return 1; } }`,
        ),
      );
      const { logs, logsTruncated } = await call(pool, bundle, 'f');
      assert.equal(logsTruncated, false);
      assert.deepEqual(
        logs.map((l) => [l.level, l.message]),
        [
          ['info', 'a 1 {"b":2}'],
          ['warn', 'w'],
          ['error', 'TypeError: bad'],
          ['debug', 'd'],
          ['info', 'via console'],
        ],
      );
      assert.ok(logs.every((l) => typeof l.at === 'number'));
    });

    it('keeps logs within maxLogBytes and flags the rest', async () => {
      const bundle = makeBundle(
        functionsAddon(
          `{ f: (d, ctx) => { for (let i = 0; i < 1000; i++) ctx.log('line ' + i + ' ' + 'é'.repeat(20)); return 'done'; } }`,
        ),
        {
          limits: { maxLogBytes: 1024 },
        },
      );
      const { output, logs, logsTruncated } = await call(pool, bundle, 'f');
      assert.equal(output, 'done');
      assert.equal(logsTruncated, true);
      const bytes = logs.reduce((n, l) => n + Buffer.byteLength(l.message) + 24, 0);
      assert.ok(bytes <= 1024, `${bytes} bytes kept`);
      assert.ok(logs.length > 5);
    });
  });

  describe('ctx itself', () => {
    it('is frozen', async () => {
      const bundle = makeBundle(
        functionsAddon(
          `{ f: (d, ctx) => { 'use strict'; try { ctx.storage = 1; return 'mutated'; } catch (e) { return Object.isFrozen(ctx) && Object.isFrozen(ctx.storage); } } }`,
        ),
      );
      assert.equal((await call(pool, bundle, 'f')).output, true);
    });

    it('limits SDK calls pending at once', async () => {
      const bundle = makeBundle(
        functionsAddon(
          `{ f: async (d, ctx) => { const all = []; for (let i = 0; i < 40; i++) all.push(ctx.storage.get('k' + i).then(() => 'ok', (e) => e.code)); return (await Promise.all(all)).filter((c) => c === 'RATE_LIMITED').length; } }`,
        ),
        { permissions: ['storage.read'] },
      );
      // Answers take long enough that all 40 calls are made while the first ones are pending.
      caps.storageDelayMs = 200;
      try {
        const { output } = await call(pool, bundle, 'f');
        assert.equal(output, 40 - MAX_PENDING_CAPABILITY_CALLS);
      } finally {
        caps.storageDelayMs = 0;
      }
    });

    it('never resumes addon code after its call ended', async () => {
      const bundle = makeBundle(
        functionsAddon(`{
          f: (d, ctx) => { ctx.storage.get('k').then(() => { for (;;) {} }); return 'returned'; },
          g: () => 'still fine',
        }`),
        { permissions: ['storage.read'] },
      );
      assert.equal((await call(pool, bundle, 'f')).output, 'returned');
      await sleep(200);
      const next = await call(pool, bundle, 'g');
      assert.equal(next.output, 'still fine');
      assert.equal(next.cold, false, 'the isolate was not disposed for running code outside a call');
    });
  });
  it('forgets SDK requests a call did not await once it ends: such calls never pile up in the isolate', async () => {
    // given: an addon that fires SDK calls without awaiting them, in an isolate of 8 MB
    const bundle = makeBundle(
      functionsAddon(
        `{ f: (d, ctx) => { for (let i = 0; i < 16; i++) ctx.storage.get('k' + i); return d; } }`,
      ),
      { permissions: ['storage.read'], limits: { memoryMb: 8 } },
    );
    // when: it runs thousands of times (each left request would keep its resolver and continuation)
    let last = await call(pool, bundle, 'f', 0);
    for (let i = 1; i < 4000; i += 1) last = await call(pool, bundle, 'f', i);
    // then: every call succeeded in the same isolate
    assert.equal(last.output, 3999);
    assert.equal(last.cold, false);
  });
});
