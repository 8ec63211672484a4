import { hash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { ClusterBus } from '../infrastructure/bus/cluster-bus.js';
import type { Metrics } from '../infrastructure/metrics/metrics.js';
import type { RenderedWidget } from './widget-output.js';

/** Bus channel carrying `{ siteId, addonId, generation }` after a (site, addon) is invalidated. */
export const WIDGETS_INVALIDATED_CHANNEL = 'widgets.invalidated';

export interface WidgetCacheOptions {
  /** L1 bounds: entries and (approximate, UTF-16) bytes of cached output. */
  maxEntries: number;
  maxBytes: number;
  l1TtlMs: number;
  l2TtlSeconds: number;
  /** Longest wait for any Redis command; past it the cache carries on without Redis. */
  redisTimeoutMs: number;
  /** How long a known generation is trusted before it is re-read from Redis (lost messages). */
  generationRefreshMs: number;
  /** Redis key prefix. */
  prefix: string;
  /** Largest render (UTF-8 bytes of its JSON) written to L2; larger ones stay in L1 only. */
  l2MaxEntryBytes: number;
}

export const DEFAULT_WIDGET_CACHE_OPTIONS: WidgetCacheOptions = {
  maxEntries: 10_000,
  maxBytes: 64 * 1024 * 1024,
  l1TtlMs: 5 * 60_000,
  l2TtlSeconds: 60 * 60,
  redisTimeoutMs: 50,
  generationRefreshMs: 5_000,
  prefix: 'themepress:widget:',
  l2MaxEntryBytes: 512 * 1024,
};

/** A render as clients receive it: the output and whether it came from the cache. */
export type WidgetView = RenderedWidget & { cached: boolean };

/** A cached render: the output, and what a hit sends, built once at insert. */
export interface CachedRender {
  output: RenderedWidget;
  /** `{ ...output, cached: true }`, frozen: every hit of the entry returns this same object. */
  view: Readonly<WidgetView>;
  /** `view` as JSON, for the REST route. */
  json: string;
}

interface L1Entry {
  value: CachedRender;
  scope: string;
  bytes: number;
  expiresAt: number;
  /** When the entry last moved to the recently used end. */
  touchedAt: number;
}

interface Generation {
  value: number;
  checkedAt: number;
  refreshing: boolean;
}

/** L1 keeps least-recently-used order to this resolution (see `getL1`). */
const LRU_RESOLUTION_MS = 1000;

/** The generation of a (site, addon) Redis could not tell; renders under it bypass L2. */
export const UNKNOWN_GENERATION = -1;

/** A scope is one (site, addon): the unit of invalidation. */
const scopeOf = (siteId: string, addonId: string) => `${siteId}:${addonId}`;

/**
 * The parts of a render key `site:addon:generation:material` (ids and numbers hold no colon; the
 * material may): its scope, its generation and where its material starts.
 */
function keyParts(key: string): { scope: string; generation: number; materialStart: number } {
  const scopeEnd = key.indexOf(':', key.indexOf(':') + 1);
  const generationEnd = key.indexOf(':', scopeEnd + 1);
  return {
    scope: key.slice(0, scopeEnd),
    generation: Number(key.slice(scopeEnd + 1, generationEnd)),
    materialStart: generationEnd + 1,
  };
}

/**
 * The two-level render cache shared by every instance.
 *
 * - L1: in-process, LRU bounded by entries and bytes, TTL 5 minutes.
 * - L2: Redis (when configured), TTL 1 hour, shared by every instance.
 * - Invalidation is O(1) per (site, addon): a generation number in Redis is part of every key, so
 *   bumping it (INCR) orphans every older entry at once, in L1 and L2, on every instance. Bumps are
 *   broadcast on the cluster bus so each instance learns the new number immediately; a number known
 *   locally is re-read from Redis every few seconds in the background, bounding staleness should a
 *   message be lost.
 * - Concurrent misses for one key share one render (single flight, per instance).
 * - Redis is optional at every step: each call is raced against a short timeout, and any failure
 *   reads as a miss (or, for a bump, as a local-only bump). Rendering never fails because of Redis.
 */
export class WidgetCache {
  private readonly l1 = new Map<string, L1Entry>();
  private readonly byScope = new Map<string, Set<string>>();
  private bytes = 0;
  private readonly generations = new Map<string, Generation>();
  private readonly inFlight = new Map<string, Promise<{ render: CachedRender; cached: boolean }>>();
  private readonly unsubscribe: () => void;
  readonly options: WidgetCacheOptions;

  constructor(
    private readonly deps: { redis: Redis | null; bus: ClusterBus; metrics: Metrics },
    options: Partial<WidgetCacheOptions> = {},
  ) {
    this.options = { ...DEFAULT_WIDGET_CACHE_OPTIONS, ...options };
    this.unsubscribe = deps.bus.subscribe(WIDGETS_INVALIDATED_CHANNEL, (message) => {
      const { siteId, addonId, generation } = (message ?? {}) as Record<string, unknown>;
      if (typeof siteId === 'string' && typeof addonId === 'string' && typeof generation === 'number') {
        this.learnGeneration(scopeOf(siteId, addonId), generation);
      }
    });
  }

  /**
   * The current generation of a (site, addon). Known: answered from memory (refreshed in the
   * background when old). Unknown: read from Redis, bounded by the timeout; when Redis cannot
   * answer, {@link UNKNOWN_GENERATION}: such keys skip L2, where an entry of an older generation
   * could otherwise be served after an invalidation this instance has not seen.
   */
  generation(siteId: string, addonId: string): number | Promise<number> {
    const scope = scopeOf(siteId, addonId);
    const known = this.generations.get(scope);
    if (known) {
      if (!known.refreshing && Date.now() - known.checkedAt > this.options.generationRefreshMs) {
        known.refreshing = true;
        void this.readGeneration(scope).then((value) => {
          known.refreshing = false;
          known.checkedAt = Date.now();
          if (value !== null) this.learnGeneration(scope, value);
        });
      }
      return known.value;
    }
    return this.readGeneration(scope).then((value) => {
      if (value === null) return this.generations.get(scope)?.value ?? UNKNOWN_GENERATION;
      // A bus message may have set a larger one meanwhile; the larger wins.
      this.learnGeneration(scope, value);
      return this.generations.get(scope)!.value;
    });
  }

  /**
   * The full key of a render: its scope and generation, then `material` (everything else that
   * selects the output) as it is. L1 keys on that text, so a hit hashes nothing; L2 keys on its
   * SHA-256 (see {@link l2Key}).
   */
  key(siteId: string, addonId: string, generation: number, material: string): string {
    return `${scopeOf(siteId, addonId)}:${generation}:${material}`;
  }

  /** An L1 hit (counted), or undefined. */
  getL1(key: string): CachedRender | undefined {
    const entry = this.l1.get(key);
    if (!entry) return undefined;
    const now = Date.now();
    if (entry.expiresAt <= now) {
      this.remove(key);
      return undefined;
    }
    // Least recently used order, to the second: a hit moves the entry to the end unless it moved
    // there within the last second (re-inserting a long key on every hit of a hot entry was a
    // third of a cached render's time in the service).
    if (now - entry.touchedAt > LRU_RESOLUTION_MS) {
      entry.touchedAt = now;
      this.l1.delete(key);
      this.l1.set(key, entry);
    }
    this.deps.metrics.widgetCacheHits.inc({ level: 'l1' });
    return entry.value;
  }

  /**
   * The L2 entry or a render, once per key at a time: concurrent callers for the same key wait for
   * the same promise. `cached` tells whether the answer came from L2.
   */
  resolve(
    key: string,
    render: () => Promise<RenderedWidget>,
  ): Promise<{ render: CachedRender; cached: boolean }> {
    const pending = this.inFlight.get(key);
    if (pending) return pending;
    // Keys of an unknown generation skip L2 (see `generation`).
    const l2Key = keyParts(key).generation === UNKNOWN_GENERATION ? null : this.l2Key(key);
    const work = (async () => {
      const fromL2 = l2Key === null ? null : await this.getL2(l2Key);
      if (fromL2) {
        this.deps.metrics.widgetCacheHits.inc({ level: 'l2' });
        const value = toCached(fromL2);
        this.setL1(key, value);
        return { render: value, cached: true };
      }
      this.deps.metrics.widgetCacheMisses.inc();
      const output = await render();
      const value = toCached(output);
      this.setL1(key, value);
      // Stored after the response leaves: written here, the entry's JSON and its Redis write (a
      // loopback send that wakes Redis) would delay the caller's response.
      if (l2Key !== null) setImmediate(() => void this.setL2(l2Key, output));
      return { render: value, cached: false };
    })();
    this.inFlight.set(key, work);
    // Settled either way: the next miss starts afresh (errors are never cached).
    void work.then(
      () => this.inFlight.delete(key),
      () => this.inFlight.delete(key),
    );
    return work;
  }

  /**
   * Drops every render of an addon on a site, on every instance: bumps the generation in Redis
   * (or locally without Redis) and broadcasts the new number.
   */
  async invalidate(siteId: string, addonId: string): Promise<void> {
    const scope = scopeOf(siteId, addonId);
    const fromRedis = await this.redisCall((redis) => redis.incr(this.generationKey(scope)));
    const local = Math.max(this.generations.get(scope)?.value ?? 0, 0) + 1;
    const generation = fromRedis === null ? local : Math.max(fromRedis.value, local);
    this.learnGeneration(scope, generation);
    await this.deps.bus
      .publish(WIDGETS_INVALIDATED_CHANNEL, { siteId, addonId, generation })
      .catch(() => undefined);
  }

  /** Stops listening to the bus. */
  close(): void {
    this.unsubscribe();
  }

  /** Entries and bytes held in L1 (tests, diagnostics). */
  stats(): { entries: number; bytes: number } {
    return { entries: this.l1.size, bytes: this.bytes };
  }

  private learnGeneration(scope: string, value: number): void {
    const known = this.generations.get(scope);
    if (known && known.value >= value) {
      known.checkedAt = Date.now();
      return;
    }
    if (this.generations.size >= 100_000) this.generations.clear();
    this.generations.set(scope, { value, checkedAt: Date.now(), refreshing: false });
    if (known) this.dropScope(scope);
  }

  /** Frees the L1 entries of older generations of a scope (they can no longer be hit). */
  private dropScope(scope: string): void {
    const keys = this.byScope.get(scope);
    if (!keys) return;
    const current = `${scope}:${this.generations.get(scope)?.value ?? 0}:`;
    for (const key of keys) if (!key.startsWith(current)) this.remove(key);
  }

  private setL1(key: string, value: CachedRender): void {
    const bytes =
      2 *
      (key.length +
        value.json.length +
        value.output.html.length +
        value.output.css.length +
        value.output.javascript.length);
    if (bytes > this.options.maxBytes / 4) return;
    this.remove(key);
    const { scope } = keyParts(key);
    const now = Date.now();
    this.l1.set(key, { value, scope, bytes, expiresAt: now + this.options.l1TtlMs, touchedAt: now });
    this.bytes += bytes;
    let keys = this.byScope.get(scope);
    if (!keys) this.byScope.set(scope, (keys = new Set()));
    keys.add(key);
    while (this.l1.size > this.options.maxEntries || this.bytes > this.options.maxBytes) {
      this.remove(this.l1.keys().next().value!);
    }
  }

  private remove(key: string): void {
    const entry = this.l1.get(key);
    if (!entry) return;
    this.l1.delete(key);
    this.bytes -= entry.bytes;
    const keys = this.byScope.get(entry.scope);
    keys?.delete(key);
    if (keys?.size === 0) this.byScope.delete(entry.scope);
  }

  private async getL2(l2Key: string): Promise<RenderedWidget | null> {
    const text = (await this.redisCall((redis) => redis.get(l2Key)))?.value;
    if (!text) return null;
    try {
      return JSON.parse(text) as RenderedWidget;
    } catch {
      return null;
    }
  }

  private async setL2(l2Key: string, output: RenderedWidget): Promise<void> {
    const json = JSON.stringify(output);
    // Renders are public given a site id: one addon's big outputs must not fill Redis for all.
    if (
      json.length > this.options.l2MaxEntryBytes ||
      Buffer.byteLength(json) > this.options.l2MaxEntryBytes
    ) {
      this.deps.metrics.widgetCacheL2Skipped.inc({ reason: 'too_large' });
      return;
    }
    await this.redisCall((redis) => redis.set(l2Key, json, 'EX', this.options.l2TtlSeconds));
  }

  private async readGeneration(scope: string): Promise<number | null> {
    if (!this.deps.redis) return 0;
    const answer = await this.redisCall((redis) => redis.get(this.generationKey(scope)));
    if (answer === null) return null;
    if (answer.value === null) return 0;
    const value = Number(answer.value);
    return Number.isSafeInteger(value) ? value : null;
  }

  /** Scope and generation stay readable in Redis; the material, unbounded in length, is hashed. */
  private l2Key(key: string): string {
    const end = keyParts(key).materialStart;
    return `${this.options.prefix}${key.slice(0, end)}${hash('sha256', key.slice(end), 'base64url')}`;
  }

  private generationKey(scope: string): string {
    return `${this.options.prefix}gen:${scope}`;
  }

  /**
   * Runs a Redis command: its answer, or null when Redis is not configured, not connected, fails,
   * or takes longer than the timeout (ioredis may hold commands while it reconnects).
   */
  private redisCall<T>(command: (redis: Redis) => Promise<T>): Promise<{ value: T } | null> {
    const redis = this.deps.redis;
    if (!redis || redis.status !== 'ready') return Promise.resolve(null);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(null), this.options.redisTimeoutMs);
      command(redis).then(
        (value) => {
          clearTimeout(timer);
          resolve({ value });
        },
        () => {
          clearTimeout(timer);
          resolve(null);
        },
      );
    });
  }
}

function toCached(output: RenderedWidget): CachedRender {
  const view = Object.freeze({ ...output, cached: true });
  return { output, view, json: JSON.stringify(view) };
}
