import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import assert from 'node:assert/strict';
import { createLocalBus } from '../infrastructure/bus/cluster-bus.js';
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

  beforeEach(() => {
    mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
    cache = new WidgetCache(
      { redis: null, bus: createLocalBus(), metrics: createMetrics() },
      { maxEntries: 2 },
    );
  });
  afterEach(() => {
    cache.close();
    mock.timers.reset();
  });

  it('evicts the least recently inserted entry when nothing was hit', async () => {
    const a = await given(cache, 'a');
    const b = await given(cache, 'b');
    const c = await given(cache, 'c');

    assert.equal(cache.getL1(a), undefined);
    assert.equal(cache.getL1(b)?.output.html, '<p>b</p>');
    assert.equal(cache.getL1(c)?.output.html, '<p>c</p>');
  });

  it('keeps an entry hit more than a second after it last moved, evicting the next oldest', async () => {
    const a = await given(cache, 'a');
    const b = await given(cache, 'b');
    mock.timers.tick(1001);
    assert.ok(cache.getL1(a));

    const c = await given(cache, 'c');

    assert.ok(cache.getL1(a), 'a was used after b, so b goes first');
    assert.equal(cache.getL1(b), undefined);
    assert.ok(cache.getL1(c));
  });

  it('does not reorder on hits within a second of the last move (LRU to the second)', async () => {
    const a = await given(cache, 'a');
    await given(cache, 'b');
    assert.ok(cache.getL1(a));

    await given(cache, 'c');

    assert.equal(cache.getL1(a), undefined);
  });

  it('expires entries after the L1 TTL', async () => {
    const a = await given(cache, 'a');
    mock.timers.tick(cache.options.l1TtlMs + 1);

    assert.equal(cache.getL1(a), undefined);
    assert.deepEqual(cache.stats(), { entries: 0, bytes: 0 });
  });
});
