/**
 * Wraps `run` so that calls made while one is in flight share its promise instead of starting
 * another: however many callers ask at once, at most one run is under way.
 */
export function shareInFlight<T>(run: () => Promise<T>): () => Promise<T> {
  let current: Promise<T> | null = null;
  return () => {
    current ??= run().finally(() => {
      current = null;
    });
    return current;
  };
}
