import { LRUCache } from 'lru-cache';

/** How a {@link RefreshingCache} keeps its values. */
export interface RefreshingCacheOptions<V> {
  /** How long a loaded value is fresh. */
  ttlMs: number;
  /**
   * How long after that it may still be answered while one background load replaces it. Bounds how
   * stale an answer can be for a key nobody asked about for a while (longer than this: callers wait).
   * Default: `ttlMs`.
   */
  staleMs?: number;
  /** Entries kept; the least recently used go first. */
  maxEntries: number;
  /** Bytes kept (as {@link RefreshingCacheOptions.sizeOf} counts them); the least recently used go first. */
  maxBytes: number;
  /** The bytes an entry holds. Default: {@link approximateBytes} of the value and the key. */
  sizeOf?: (value: V, key: string) => number;
  /** The clock, for tests. */
  now?: () => number;
}

/**
 * Values read from somewhere slow (the database) for hot paths that must not wait on it, on
 * lru-cache (`fetchMethod`, stale-while-revalidate, entry and byte bounds):
 * - a miss is loaded once however many callers ask at the same time (one query, not one per request);
 * - a value past its TTL is still answered, for up to `staleMs`, while a single background load
 *   replaces it: a key in use never makes its callers wait when it expires;
 * - a failed load is not cached (the next caller loads again and sees the error), and neither is a
 *   load that was in flight when its key was deleted (it may have read what the deletion is about);
 *   its own callers still get what it read.
 */
export class RefreshingCache<V extends NonNullable<unknown>> {
  private readonly cache: LRUCache<string, V>;
  private readonly staleMs: number;
  /** Keys with a load in flight, counted: lru-cache's key listing leaves them out. */
  private readonly loading = new Map<string, number>();

  constructor(load: (key: string) => Promise<V>, options: RefreshingCacheOptions<V>) {
    this.staleMs = options.staleMs ?? options.ttlMs;
    const sizeOf = options.sizeOf ?? ((value: V, key: string) => approximateBytes(value) + 2 * key.length);
    this.cache = new LRUCache<string, V>({
      max: options.maxEntries,
      maxSize: options.maxBytes,
      sizeCalculation: (value, key) => Math.max(1, Math.ceil(sizeOf(value, key))),
      ttl: options.ttlMs,
      allowStale: true,
      noDeleteOnStaleGet: true,
      // A load whose key was deleted (or evicted) meanwhile still answers its callers, unstored.
      ignoreFetchAbort: true,
      fetchMethod: async (key) => {
        this.loading.set(key, (this.loading.get(key) ?? 0) + 1);
        try {
          return await load(key);
        } finally {
          const left = this.loading.get(key)! - 1;
          if (left === 0) this.loading.delete(key);
          else this.loading.set(key, left);
        }
      },
      // lru-cache reuses a clock reading this long (a timer forgets it): 10 ms is precise enough for
      // TTLs of seconds and arms a hundred timers a second on a busy cache, not a thousand.
      ...(options.now ? { perf: { now: options.now }, ttlResolution: 0 } : { ttlResolution: 10 }),
    });
  }

  /**
   * The value of `key` when one is fresh, or stale within `staleMs` (its refresh then starts in the
   * background); undefined when the caller has to wait for a load.
   */
  peek(key: string): V | undefined {
    const remaining = this.cache.getRemainingTTL(key);
    if (remaining <= -this.staleMs) return undefined;
    const value = this.cache.get(key);
    // Nobody awaits a background refresh: a failure only drops the entry.
    if (value !== undefined && remaining <= 0) void this.cache.fetch(key).catch(() => undefined);
    return value;
  }

  /** The value of `key`, loaded (once for every concurrent caller) when there is none to answer. */
  get(key: string): Promise<V> {
    const value = this.peek(key);
    return value === undefined ? this.load(key) : Promise.resolve(value);
  }

  /** Forgets `key`, and keeps a load of it in flight from being stored. */
  delete(key: string): void {
    this.cache.delete(key);
  }

  /** {@link delete} for every key `matches` accepts. */
  deleteWhere(matches: (key: string) => boolean): void {
    for (const key of [...this.cache.keys(), ...this.loading.keys()])
      if (matches(key)) this.cache.delete(key);
  }

  /** Forgets everything. */
  clear(): void {
    this.cache.clear();
  }

  private async load(key: string): Promise<V> {
    const value = await this.cache.fetch(key, { allowStale: false });
    // Only a load that returned nothing leaves nothing; loads here always return a value.
    if (value === undefined) throw new Error(`RefreshingCache: the load of "${key}" returned nothing.`);
    return value;
  }
}

/**
 * Roughly the bytes a JSON-like value holds (strings as UTF-16, 8 bytes a scalar, 32 an object or
 * array), for caches bounded in bytes. Stops counting after `budget` values.
 */
export function approximateBytes(value: unknown, budget = 100_000): number {
  let bytes = 0;
  const pending: unknown[] = [value];
  for (let seen = 0; pending.length > 0 && seen < budget; seen += 1) {
    const item = pending.pop();
    if (typeof item === 'string') bytes += 2 * item.length;
    else if (item === null || typeof item !== 'object') bytes += 8;
    else if (ArrayBuffer.isView(item)) bytes += item.byteLength;
    else {
      bytes += 32;
      const parts =
        item instanceof Map ? [...item.keys(), ...item.values()] : item instanceof Set ? [...item] : null;
      const entries =
        parts ?? (Array.isArray(item) ? item : item instanceof Date ? [] : Object.entries(item));
      for (let i = 0; i < entries.length && pending.length < budget; i += 1) pending.push(entries[i]);
    }
  }
  return bytes;
}
