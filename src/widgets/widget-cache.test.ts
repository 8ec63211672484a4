import { afterEach, beforeEach, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createPubSub } from '../infrastructure/pub-sub/pub-sub.js';
import { createMetrics } from '../infrastructure/metrics/metrics.js';
import { WidgetCache } from './widget-cache.js';
import type { RenderedWidget } from './widget-output.js';

const SITE = '00000000-0000-4000-8000-000000000001';
const ADDON = '00000000-0000-4000-8000-000000000002';

function output(name: string): RenderedWidget {
  return { html: `<p>${name}</p>`, css: '', javascript: '', cacheKey: name, version: '1.0.0' };
}

/** Puts a render for `material` in the cache (a miss that renders) and returns its key. */
async function given(cache: WidgetCache, material: string): Promise<string> {
  const key = cache.key(SITE, ADDON, 0, material);
  await cache.resolve(key, async () => output(material));
  return key;
}

describe('WidgetCache L1 bounds (no Redis)', () => {
  let cache: WidgetCache;
  let clock: { now: number };

  beforeEach(() => {
    clock = { now: 1_000_000 };
    cache = new WidgetCache(
      { redis: null, pubSub: createPubSub(), metrics: createMetrics() },
      { maxEntries: 2, now: () => clock.now },
    );
  });
  afterEach(() => {
    cache.close();
  });

  it('evicts the least recently inserted entry when nothing was hit', async () => {
    const a = await given(cache, 'a');
    const b = await given(cache, 'b');
    const c = await given(cache, 'c');

    assert.equal(cache.getL1(a), undefined);
    assert.equal(cache.getL1(b)?.output.html, '<p>b</p>');
    assert.equal(cache.getL1(c)?.output.html, '<p>c</p>');
  });

  it('keeps an entry that was hit, evicting the least recently used one', async () => {
    const a = await given(cache, 'a');
    const b = await given(cache, 'b');
    assert.ok(cache.getL1(a));

    const c = await given(cache, 'c');

    assert.ok(cache.getL1(a), 'a was used after b, so b goes first');
    assert.equal(cache.getL1(b), undefined);
    assert.ok(cache.getL1(c));
  });

  it('evicts the least recently used entries beyond its bytes, and keeps no render over a quarter of them', async () => {
    // given: room for four and a half renders of the size of `a`
    const one = (await given(cache, 'a'), cache.stats().bytes);
    const bounded = new WidgetCache(
      { redis: null, pubSub: createPubSub(), metrics: createMetrics() },
      { maxEntries: 100, maxBytes: Math.floor(4.5 * one) },
    );
    try {
      const [a, b, c, d] = [
        await given(bounded, 'a'),
        await given(bounded, 'b'),
        await given(bounded, 'c'),
        await given(bounded, 'd'),
      ];
      // when
      const e = await given(bounded, 'e');
      const big = await given(bounded, 'x'.repeat(one));
      // then
      assert.equal(bounded.getL1(a), undefined);
      for (const kept of [b, c, d, e]) assert.ok(bounded.getL1(kept));
      assert.equal(bounded.getL1(big), undefined, 'rendered and answered, not kept');
      assert.equal(bounded.stats().bytes, 4 * one);
    } finally {
      bounded.close();
    }
  });

  it('renders once for concurrent misses, and keeps no failed render', async () => {
    // given
    let renders = 0;
    const key = cache.key(SITE, ADDON, 0, 'shared');
    const render = async () => {
      renders += 1;
      await new Promise((resolve) => setImmediate(resolve));
      if (renders === 1) throw new Error('addon failed');
      return output('shared');
    };
    // when
    const failed = await Promise.allSettled([cache.resolve(key, render), cache.resolve(key, render)]);
    const retried = await cache.resolve(key, render);
    // then
    assert.deepEqual(
      failed.map((result) => result.status),
      ['rejected', 'rejected'],
    );
    assert.equal(retried.cached, false);
    assert.equal(renders, 2);
    assert.equal(cache.getL1(key)?.output.html, '<p>shared</p>');
  });

  it('expires entries after the L1 TTL', async () => {
    const a = await given(cache, 'a');
    clock.now += cache.options.l1TtlMs + 1;

    assert.equal(cache.getL1(a), undefined);
    assert.deepEqual(cache.stats(), { entries: 0, bytes: 0 });
  });
});
