/** A start that used more of the isolate's CPU time than this (ms) sends the version to the thread pool. */
export const SYNC_START_BUDGET_MS = 2;
/** Quick starts in a row before a version starts synchronously (again). */
export const FAST_STARTS_TO_SYNC = 3;
/** A start longer than this (ms of the isolate's CPU time) counts against the version for good. */
export const SLOW_START_MS = 20;
/** Starts over {@link SLOW_START_MS} after which a version never starts synchronously again. */
export const MAX_SLOW_STARTS = 3;

/**
 * Decides, per addon version, whether its calls start synchronously on the worker's thread (~10 µs)
 * or on isolated-vm's thread pool (~70 µs of hand-off between threads). A synchronous start holds
 * the worker's event loop (every other addon's calls and SDK answers on that worker) while it runs,
 * so only a version whose recent starts were quick earns it:
 *
 * - {@link FAST_STARTS_TO_SYNC} starts in a row under {@link SYNC_START_BUDGET_MS} make it
 *   synchronous; one start over the budget sends it back to the pool until it has made as many
 *   quick starts again. Overruns of a few milliseconds happen to honest versions now and then on a
 *   loaded machine (measured: 15 in 10,000 starts of an echo, up to 7.7 ms; a garbage collection in
 *   the isolate is one cause), so they cost a few calls on the pool, not the version's place for good.
 * - A start over {@link SLOW_START_MS} is the version's own doing; after {@link MAX_SLOW_STARTS} of
 *   them it stays on the pool. A hostile version can therefore hold the worker's thread past
 *   {@link SLOW_START_MS} at most {@link MAX_SLOW_STARTS} times (each bounded by its CPU limit),
 *   and otherwise for at most {@link SLOW_START_MS} once per {@link FAST_STARTS_TO_SYNC} + 1 calls.
 *
 * Durations are the isolate's CPU time, not the wall clock: under load the OS preempts a 20 µs
 * start for milliseconds, which says nothing about the addon. A start on the pool is measured
 * from its dispatch to its end, so calls of the same version that ran meanwhile count too: a
 * version busy enough for that to pass {@link SLOW_START_MS} stays on the pool, where its calls
 * no longer hold the worker's thread.
 */
export class SyncStartPolicy {
  private sync = false;
  private fastStarts = 0;
  private slowStarts = 0;

  /** Whether the version's next call starts on the worker's thread. */
  get startSync(): boolean {
    return this.sync;
  }

  /** Records the CPU time (ms) one start of the version took. */
  note(cpuMs: number): void {
    if (cpuMs > SYNC_START_BUDGET_MS) {
      this.sync = false;
      this.fastStarts = 0;
      if (cpuMs > SLOW_START_MS) this.slowStarts += 1;
    } else if (this.slowStarts < MAX_SLOW_STARTS && ++this.fastStarts >= FAST_STARTS_TO_SYNC) {
      this.sync = true;
    }
  }
}
