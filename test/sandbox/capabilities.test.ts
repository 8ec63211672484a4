import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { AppError } from '../../src/errors/index.js';
import {
  CAPABILITY_HANDLERS,
  isHostAllowed,
  sanitizeLogs,
  type CapabilityEnv,
} from '../../src/sandbox/capabilities/index.js';
import { DEFAULT_ADDON_LIMITS, DEFAULT_PLATFORM_LIMITS, resolveLimits } from '../../src/sandbox/limits.js';
import { encodeJsonInput, parseUntrustedJson } from '../../src/sandbox/safe-json.js';
import type { AddonBundle } from '../../src/sandbox/index.js';
import { makeBundle, MemoryCapabilities } from './helpers.js';

function env(bundle: Partial<AddonBundle>, capabilities = new MemoryCapabilities()): CapabilityEnv {
  const full = makeBundle('', bundle);
  return {
    scope: {
      addonId: full.addonId,
      addonName: full.addonName,
      versionId: full.versionId,
      siteId: 's',
      installationId: null,
      callDepth: 0,
    },
    bundle: full,
    limits: resolveLimits(undefined, DEFAULT_ADDON_LIMITS, DEFAULT_PLATFORM_LIMITS),
    capabilities,
    fetchImpl: () => Promise.reject(new Error('no network in this test')),
    deadline: Date.now() + 1000,
  };
}

async function rejection(promise: Promise<unknown>): Promise<AppError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof AppError);
    return err;
  }
  assert.fail('expected a rejection');
}

describe('capabilities (parent-side checks)', () => {
  it('checks permissions before the host is touched, whatever a worker asks', async () => {
    const caps = new MemoryCapabilities();
    const noPermissions = env({ permissions: [] }, caps);
    const cases: [string, Record<string, unknown>, string][] = [
      ['storage.get', { key: 'k' }, 'storage.read'],
      ['storage.list', {}, 'storage.read'],
      ['storage.set', { key: 'k', value: 1 }, 'storage.write'],
      ['storage.delete', { key: 'k' }, 'storage.write'],
      ['events.emit', { name: 'x' }, 'events.emit'],
      ['addons.call', { addon: 'other', fn: 'f' }, 'addons.call'],
      ['http.fetch', { url: 'https://api.example.com/' }, 'http.fetch'],
    ];
    for (const [op, args, permission] of cases) {
      const err = await rejection(CAPABILITY_HANDLERS.get(op)!(noPermissions, args));
      assert.equal(err.code, 'PERMISSION_DENIED', op);
      assert.ok(err.message.includes(permission), `${op}: ${err.message}`);
    }
    assert.equal(caps.scopes.length, 0, 'the host was never called');
  });

  it('requires declared event names, dependencies and hosts on top of the permission', async () => {
    const e = env({
      permissions: ['events.emit', 'http.fetch'],
      emits: ['a.b'],
      httpAllow: ['api.example.com'],
    });
    assert.equal(
      (await rejection(CAPABILITY_HANDLERS.get('events.emit')!(e, { name: 'c.d' }))).code,
      'PERMISSION_DENIED',
    );
    assert.equal(
      (await rejection(CAPABILITY_HANDLERS.get('http.fetch')!(e, { url: 'https://evil.example/' }))).code,
      'PERMISSION_DENIED',
    );
    assert.equal(
      (await rejection(CAPABILITY_HANDLERS.get('addons.call')!(e, { addon: 'hasOwnProperty', fn: 'f' })))
        .code,
      'PERMISSION_DENIED',
    );
  });

  it('stops nested calls at the depth limit', async () => {
    const e = env({ dependencies: { b: '*' } });
    e.scope.callDepth = 4;
    assert.match(
      (await rejection(CAPABILITY_HANDLERS.get('addons.call')!(e, { addon: 'b', fn: 'f' }))).message,
      /depth/,
    );
  });

  it('matches httpAllow entries by host, port and wildcard', () => {
    const allow = ['api.example.com', '*.cdn.example.net', 'localhost:8080'];
    const ok = (url: string) => isHostAllowed(new URL(url), allow);
    assert.equal(ok('https://api.example.com/x'), true);
    assert.equal(ok('https://API.EXAMPLE.COM:444/x'), true);
    assert.equal(ok('https://api.example.com.evil.io/'), false);
    assert.equal(ok('https://img.cdn.example.net/'), true);
    assert.equal(ok('https://cdn.example.net/'), false);
    assert.equal(ok('http://localhost:8080/'), true);
    assert.equal(ok('http://localhost:9090/'), false);
  });
});

describe('untrusted JSON', () => {
  it('drops __proto__ and constructor.prototype keys, escaped or not', () => {
    const parsed = parseUntrustedJson(
      '{"a":{"__proto__":{"x":1}},"__pro\\u0074o__":{"y":1},"constructor":{"prototype":{"z":1}},"keep":{"constructor":"fine"}}',
    ) as Record<string, Record<string, unknown>>;
    assert.deepEqual(Object.keys(parsed), ['a', 'keep']);
    assert.deepEqual(Object.keys(parsed.a), []);
    assert.equal(parsed.keep.constructor, 'fine');
    const merged = Object.assign({}, parsed.a) as Record<string, unknown>;
    assert.equal(merged.x, undefined);
  });

  it('measures input in UTF-8 bytes', () => {
    assert.equal(encodeJsonInput(undefined, 'input', 10), 'null');
    assert.throws(() => encodeJsonInput('é'.repeat(5), 'input', 11), /larger than/);
    assert.equal(encodeJsonInput('é'.repeat(4), 'input', 10), '"éééé"');
  });
});

describe('limits', () => {
  it('caps requested limits by the platform and ignores malformed values', () => {
    const caps = { ...DEFAULT_PLATFORM_LIMITS, memoryMb: 128 };
    const limits = resolveLimits(
      { memoryMb: 4096, timeoutMs: -5, cpuTimeMs: Number.NaN, maxLogBytes: 10 },
      DEFAULT_ADDON_LIMITS,
      caps,
    );
    assert.equal(limits.memoryMb, 128);
    assert.equal(limits.timeoutMs, DEFAULT_ADDON_LIMITS.timeoutMs);
    assert.equal(limits.cpuTimeMs, DEFAULT_ADDON_LIMITS.cpuTimeMs);
    assert.equal(limits.maxLogBytes, 10);
    assert.equal(resolveLimits({ memoryMb: 1 }, DEFAULT_ADDON_LIMITS, caps).memoryMb, 8);
  });
});

describe('log sanitising', () => {
  it('keeps well-formed entries up to the byte limit', () => {
    const raw = [
      { level: 'info', message: 'a', at: 1 },
      { level: 'warn', message: 'é'.repeat(40), at: 2 },
    ];
    assert.deepEqual(sanitizeLogs(raw, 1000), { logs: raw, truncated: false });
    assert.deepEqual(sanitizeLogs(raw, 60), { logs: [raw[0]], truncated: true });
    assert.equal(sanitizeLogs([{ level: 'root', message: 'x', at: 0 }], 1000).truncated, true);
    assert.equal(sanitizeLogs('nope', 1000).truncated, true);
  });
});
