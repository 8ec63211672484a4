import { hash } from 'node:crypto';
import type { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import type { PubSub } from '../infrastructure/pub-sub/pub-sub.js';
import type { Metrics } from '../infrastructure/metrics/metrics.js';
import type { RenderedWidget } from './widget-output.js';
import type { GenerationBump } from '../events/effects.repository.js';
import type { WidgetGenerationRepository } from './widget-generation.repository.js';

/** The topic carrying `{ siteId, addonId, generation }` after a (site, addon) is invalidated. */
export const WIDGETS_INVALIDATED_CHANNEL = 'widgets.invalidated';

/** The render cache's pub/sub topic. */
export interface WidgetTopics {
  [WIDGETS_INVALIDATED_CHANNEL]: { siteId: string; addonId: string; generation: number };
}

export interface WidgetCacheOptions {
  /** L1 bounds: entries and (approximate, UTF-16) bytes of cached output. */
  maxEntries: number;
  maxBytes: number;
  l1TtlMs: number;
  l2TtlSeconds: number;
  /** Longest wait for any Redis command; past it the cache carries on without Redis. */
  redisTimeoutMs: number;
  /**
   * How often the generations bumped on other instances are read from PostgreSQL: the longest a
   * render can stay served after a change whose pub/sub message was lost (Redis away).
   */
  generationPollMs: number;
  /** Redis key prefix. */
  prefix: string;
  /** The clock, for tests. */
  now?: () => number;
  /** Largest render (UTF-8 bytes of its JSON) written to L2; larger ones stay in L1 only. */
  l2MaxEntryBytes: number;
}

export const DEFAULT_WIDGET_CACHE_OPTIONS: WidgetCacheOptions = {
  maxEntries: 10_000,
  maxBytes: 64 * 1024 * 1024,
  l1TtlMs: 5 * 60_000,
  l2TtlSeconds: 60 * 60,
  redisTimeoutMs: 50,
  generationPollMs: 1_000,
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
  /** Whether it was read from L2 (else this instance rendered it). */
  fromL2: boolean;
}

/** What renders on an L1 miss (the argument of {@link WidgetCache.resolve}). */
type Render = () => Promise<RenderedWidget>;

/** The generation of a (site, addon) PostgreSQL could not tell; renders under it bypass L2. */
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
 * - L1: in-process (lru-cache), bounded by entries and bytes, TTL 5 minutes.
 * - L2: Redis (when configured), TTL 1 hour, shared by every instance.
 * - Invalidation is O(1) per (site, addon): a generation number is part of every key, so bumping it
 *   orphans every older entry at once, in L1 and L2, on every instance. Generations live in
 *   PostgreSQL (bumped in the transaction of an invalidating event), not in Redis: an outage can
 *   delay what an instance learns, never make it believe an older generation is current. A bump is
 *   broadcast through the pub/sub, so each instance learns it at once, and every instance reads
 *   the bumps it has not seen from PostgreSQL every `generationPollMs`, which bounds staleness when
 *   a message is lost.
 * - Concurrent misses for one key share one render (single flight, per instance).
 * - Redis is optional at every step: each call is raced against a short timeout, and any failure
 *   reads as a miss. Rendering never fails because of Redis.
 */
export class WidgetCache {
  /** L1; a miss fills it through `fetchMethod` (L2, else the render), once per key at a time. */
  private readonly l1: LRUCache<string, CachedRender, Render>;
  /** The L1 keys of each scope, kept by lru-cache's insert and dispose hooks. */
  private readonly byScope = new Map<string, Set<string>>();
  private readonly generations: LRUCache<string, number>;
  /** Reads of generations not known yet, one per scope at a time. */
  private readonly reading = new Map<string, Promise<number>>();
  private readonly changeListeners: Array<(siteId: string, addonId: string) => void> = [];
  private readonly unsubscribe: () => void;
  private readonly now: () => number;
  private pollTimer: NodeJS.Timeout | null = null;
  private horizon: bigint | null = null;
  private started: Promise<void> | null = null;
  private closed = false;
  readonly options: WidgetCacheOptions;

  constructor(
    private readonly deps: {
      redis: Redis | null;
      pubSub: PubSub<WidgetTopics>;
      metrics: Metrics;
      /** Where generations live; without it (no database: unit tests) they live in this process. */
      generations?: WidgetGenerationRepository;
    },
    options: Partial<WidgetCacheOptions> = {},
  ) {
    this.options = { ...DEFAULT_WIDGET_CACHE_OPTIONS, ...options };
    this.now = this.options.now ?? Date.now;
    // Clock readings reused for 10 ms (see RefreshingCache): TTLs here are minutes.
    const clock = this.options.now
      ? { perf: { now: this.options.now }, ttlResolution: 0 }
      : { ttlResolution: 10 };
    this.l1 = new LRUCache<string, CachedRender, Render>({
      max: this.options.maxEntries,
      maxSize: this.options.maxBytes,
      // One render may not take more than a quarter of L1.
      maxEntrySize: this.options.maxBytes / 4,
      sizeCalculation: (value, key) =>
        2 *
        (key.length +
          value.json.length +
          value.output.html.length +
          value.output.css.length +
          value.output.javascript.length),
      ttl: this.options.l1TtlMs,
      onInsert: (_value, key) => {
        const { scope } = keyParts(key);
        let keys = this.byScope.get(scope);
        if (!keys) this.byScope.set(scope, (keys = new Set()));
        keys.add(key);
      },
      dispose: (_value, key) => {
        const { scope } = keyParts(key);
        const keys = this.byScope.get(scope);
        keys?.delete(key);
        if (keys?.size === 0) this.byScope.delete(scope);
      },
      // A render whose entry was evicted or dropped meanwhile still answers its callers.
      ignoreFetchAbort: true,
      fetchMethod: (key, _stale, { context: render }) => this.fill(key, render),
      ...clock,
    });
    this.generations = new LRUCache<string, number>({
      max: 100_000,
      maxSize: 16 * 1024 * 1024,
      sizeCalculation: (_value, scope) => 2 * scope.length + 48,
    });
    this.unsubscribe = deps.pubSub.listen(WIDGETS_INVALIDATED_CHANNEL, ({ siteId, addonId, generation }) =>
      this.learnGeneration(siteId, addonId, generation),
    ).stop;
  }

  /**
   * Calls `listener` when this instance learns that a (site, addon)'s renders are out of date (a
   * bump by any instance, however it was learned).
   */
  onChange(listener: (siteId: string, addonId: string) => void): void {
    this.changeListeners.push(listener);
  }

  /**
   * The current generation of a (site, addon). Known: answered from memory (kept current by the
   * pub/sub and the poll). Unknown: read from PostgreSQL; when that fails,
   * {@link UNKNOWN_GENERATION}: such keys skip L2, where an entry of an older generation could
   * otherwise be served.
   */
  generation(siteId: string, addonId: string): number | Promise<number> {
    const scope = scopeOf(siteId, addonId);
    const known = this.generations.get(scope);
    if (known !== undefined) return known;
    const store = this.deps.generations;
    if (!store) {
      this.generations.set(scope, 0);
      return 0;
    }
    let reading = this.reading.get(scope);
    if (!reading) {
      // Read once the poll has its first horizon: a bump this read misses is then one the poll sees.
      reading = this.polling()
        .then(() => store.read(siteId, addonId))
        .then(
          (value) => {
            // A bump learned meanwhile is newer; the larger wins.
            this.learnGeneration(siteId, addonId, value, false);
            return this.generations.get(scope) ?? value;
          },
          () => this.generations.get(scope) ?? UNKNOWN_GENERATION,
        )
        .finally(() => this.reading.delete(scope));
      this.reading.set(scope, reading);
    }
    return reading;
  }

  /**
   * Starts reading the bumps of other instances from PostgreSQL every `generationPollMs` (called
   * by the app once the migrations are applied). A generation this instance has not seen yet is read
   * only once the poll has its first horizon.
   */
  start(): void {
    if (!this.deps.generations || this.closed) return;
    void this.polling().catch(() => {
      // PostgreSQL away at start: try again later.
      const retry = setTimeout(() => this.start(), this.options.generationPollMs);
      retry.unref();
    });
  }

  /** Resolves once the poll has the horizon it reads bumps from (a bump a read then misses, it sees). */
  private polling(): Promise<void> {
    this.started ??= this.deps.generations!.changedSince(null).then(
      ({ horizon }) => {
        this.horizon = horizon;
        if (!this.closed) this.schedulePoll(this.options.generationPollMs);
      },
      (error: unknown) => {
        this.started = null;
        throw error;
      },
    );
    return this.started;
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
    if (entry) this.deps.metrics.widgetCacheHits.inc({ level: 'l1' });
    return entry;
  }

  /**
   * The L2 entry or a render, once per key at a time: concurrent callers for the same key wait for
   * the same promise. `cached` tells whether the answer came from L2 (or L1, meanwhile filled).
   */
  async resolve(key: string, render: Render): Promise<{ render: CachedRender; cached: boolean }> {
    const status: LRUCache.Status<string, CachedRender, Render> = {};
    const value = await this.l1.fetch(key, { context: render, status });
    // Only a fill that returned nothing leaves nothing; fill always returns a render or throws.
    if (!value) throw new Error('WidgetCache: a render returned nothing.');
    return { render: value, cached: status.fetch === 'hit' || value.fromL2 };
  }

  /** What fills L1 on a miss: the L2 entry, or a render (errors are never cached). */
  private async fill(key: string, render: Render): Promise<CachedRender> {
    // Keys of an unknown generation skip L2 (see `generation`).
    const l2Key = keyParts(key).generation === UNKNOWN_GENERATION ? null : this.l2Key(key);
    const fromL2 = l2Key === null ? null : await this.getL2(l2Key);
    if (fromL2) {
      this.deps.metrics.widgetCacheHits.inc({ level: 'l2' });
      return toCached(fromL2, true);
    }
    this.deps.metrics.widgetCacheMisses.inc();
    const output = await render();
    // Stored after the response leaves: written here, the entry's JSON and its Redis write (a
    // loopback send that wakes Redis) would delay the caller's response.
    if (l2Key !== null) setImmediate(() => void this.setL2(l2Key, output));
    return toCached(output, false);
  }

  /**
   * Drops every render of an addon on a site, on every instance: bumps its generation in
   * PostgreSQL (or locally without a database) and broadcasts the new number.
   */
  async invalidate(siteId: string, addonId: string): Promise<void> {
    const scope = scopeOf(siteId, addonId);
    const generation = this.deps.generations
      ? await this.deps.generations.bump(siteId, addonId)
      : Math.max(this.generations.get(scope) ?? 0, 0) + 1;
    await this.learned([{ siteId, addonId, generation }]);
  }

  /** Generations bumped by this instance (in an event's transaction): learned here, told to the others. */
  async learned(bumps: readonly GenerationBump[]): Promise<void> {
    for (const { siteId, addonId, generation } of bumps) this.learnGeneration(siteId, addonId, generation);
    await Promise.all(
      bumps.map((bump) => this.deps.pubSub.publish(WIDGETS_INVALIDATED_CHANNEL, bump).catch(() => undefined)),
    );
  }

  /** Stops listening to the pub/sub and polling. */
  close(): void {
    this.closed = true;
    this.unsubscribe();
    if (this.pollTimer) clearTimeout(this.pollTimer);
    this.pollTimer = null;
  }

  /** Entries and bytes held in L1 (tests, diagnostics). */
  stats(): { entries: number; bytes: number } {
    return { entries: this.l1.size, bytes: this.l1.calculatedSize };
  }

  /** Takes `value` if it is newer; `announce`: it is a bump (listeners hear of it), not a first read. */
  private learnGeneration(siteId: string, addonId: string, value: number, announce = true): void {
    const scope = scopeOf(siteId, addonId);
    const known = this.generations.get(scope);
    if (known !== undefined && known >= value) return;
    this.generations.set(scope, value);
    if (known !== undefined) this.dropScope(scope, value);
    if (announce) for (const listener of this.changeListeners) listener(siteId, addonId);
  }

  private schedulePoll(delayMs: number): void {
    this.pollTimer = setTimeout(() => void this.poll(), delayMs);
    this.pollTimer.unref();
  }

  /** Learns the bumps of other instances from PostgreSQL (those whose message never came). */
  private async poll(): Promise<void> {
    try {
      const { bumps, horizon } = await this.deps.generations!.changedSince(this.horizon);
      this.horizon = horizon;
      for (const { siteId, addonId, generation } of bumps) this.learnGeneration(siteId, addonId, generation);
    } catch {
      // PostgreSQL away: nothing can be bumped there either; read again at the next poll.
    }
    if (!this.closed) this.schedulePoll(this.options.generationPollMs);
  }

  /** Frees the L1 entries of older generations of a scope (they can no longer be hit). */
  private dropScope(scope: string, generation: number): void {
    const current = `${scope}:${generation}:`;
    for (const key of [...(this.byScope.get(scope) ?? [])]) if (!key.startsWith(current)) this.l1.delete(key);
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

  /** Scope and generation stay readable in Redis; the material, unbounded in length, is hashed. */
  private l2Key(key: string): string {
    const end = keyParts(key).materialStart;
    return `${this.options.prefix}${key.slice(0, end)}${hash('sha256', key.slice(end), 'base64url')}`;
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

function toCached(output: RenderedWidget, fromL2: boolean): CachedRender {
  const view = Object.freeze({ ...output, cached: true });
  return { output, view, json: JSON.stringify(view), fromL2 };
}
