/**
 * What a result was built from, for whoever keeps a copy of it (the GraphQL response cache).
 * Services report each thing they read with a check that it is still what they read, or that the
 * result must not be reused; they know nothing of who keeps what.
 */
export interface ResultSources {
  /** The result read something that reads the same while `isCurrent()` returns true. */
  add(isCurrent: () => boolean): void;
  /** The result read something that may read differently next time (a miss, a fresh render). */
  uncacheable(): void;
}
