/** How a {@link RefreshingCache} keeps its values. */
export interface RefreshingCacheOptions {
  /** How long a loaded value is fresh. */
  ttlMs: number;
  /**
   * How long after that it may still be answered while one background load replaces it. Bounds how
   * stale an answer can be for a key nobody asked about for a while (longer than this: callers wait).
   * Default: `ttlMs`.
   */
  staleMs?: number;
  /** Entries kept; beyond it the cache starts over (a bound, not an LRU: sizes here are small). */
  maxEntries: number;
  /** The clock, for tests. */
  now?: () => number;
}

interface Entry<V> {
  value: V;
  freshUntil: number;
}

/**
 * Values read from somewhere slow (the database) for hot paths that must not wait on it:
 * - a miss is loaded once however many callers ask at the same time (one query, not one per request);
 * - a value past its TTL is still answered, for up to `staleMs`, while a single background load
 *   replaces it: a key in use never makes its callers wait when it expires (otherwise every request
 *   in flight at that moment runs its own queries and waits for them: with the installation cache,
 *   5–100 ms stalls every 5 s at 1000 executions/s);
 * - a failed load is not cached (the next caller loads again and sees the error), and neither is a
 *   load that was in flight when its key was deleted (it may have read what the deletion is about).
 */
export class RefreshingCache<V> {
  private readonly entries = new Map<string, Entry<V>>();
  private readonly loading = new Map<string, Promise<V>>();
  private readonly now: () => number;
  private readonly staleMs: number;

  constructor(
    private readonly load: (key: string) => Promise<V>,
    private readonly options: RefreshingCacheOptions,
  ) {
    this.now = options.now ?? Date.now;
    this.staleMs = options.staleMs ?? options.ttlMs;
  }

  /**
   * The value of `key` when one is fresh, or stale within `staleMs` (its refresh then starts in the
   * background); undefined when the caller has to wait for a load.
   */
  peek(key: string): V | undefined {
    const entry = this.entries.get(key);
    if (entry === undefined) return undefined;
    const now = this.now();
    if (now < entry.freshUntil) return entry.value;
    if (now < entry.freshUntil + this.staleMs) {
      // Nobody awaits a background refresh: its failure only drops the entry (see `start`).
      this.start(key).catch(() => undefined);
      return entry.value;
    }
    return undefined;
  }

  /** The value of `key`, loaded (once for every concurrent caller) when there is none to answer. */
  get(key: string): Promise<V> {
    const value = this.peek(key);
    return value === undefined ? this.start(key) : Promise.resolve(value);
  }

  /** Forgets `key`, and keeps a load of it in flight from being stored. */
  delete(key: string): void {
    this.entries.delete(key);
    this.loading.delete(key);
  }

  /** {@link delete} for every key `matches` accepts. */
  deleteWhere(matches: (key: string) => boolean): void {
    for (const key of this.entries.keys()) if (matches(key)) this.entries.delete(key);
    for (const key of this.loading.keys()) if (matches(key)) this.loading.delete(key);
  }

  /** Forgets everything. */
  clear(): void {
    this.entries.clear();
    this.loading.clear();
  }

  private start(key: string): Promise<V> {
    const inFlight = this.loading.get(key);
    if (inFlight !== undefined) return inFlight;
    const load: Promise<V> = this.load(key).then(
      (value) => {
        if (this.loading.get(key) === load) {
          this.loading.delete(key);
          if (this.entries.size >= this.options.maxEntries && !this.entries.has(key)) this.entries.clear();
          this.entries.set(key, { value, freshUntil: this.now() + this.options.ttlMs });
        }
        return value;
      },
      (error: unknown) => {
        if (this.loading.get(key) === load) {
          this.loading.delete(key);
          this.entries.delete(key);
        }
        throw error;
      },
    );
    this.loading.set(key, load);
    return load;
  }
}
