/** Grid on which the timeouts of runs into an isolate end, in ms. */
export const RUN_TIMEOUT_GRID_MS = 16;

/**
 * The `timeout` to give isolated-vm for a run starting at `now` (ms on a monotonic clock): the
 * rest of the wall budget (`deadline - now`), at most `cpuLimitMs`, rounded up so that the run's
 * timer expires on a {@link RUN_TIMEOUT_GRID_MS} grid.
 *
 * Why the grid: isolated-vm arms a timer for every run given a timeout, and the timer stays queued
 * after the run returns; its thread still wakes when it would have expired. A worker answering
 * 2,000 calls a second woke that thread 2,000 times a second, each wake-up a context switch on a
 * machine whose cores the API process needs. Timers ending on one grid point are handled in one
 * wake-up. A run may so overrun its budget by less than the grid: finer than the worker's CPU
 * watchdog (20 ms), which bounds continuations.
 */
export function runTimeout(now: number, deadline: number, cpuLimitMs: number): number {
  const budget = Math.max(1, Math.min(deadline - now, cpuLimitMs));
  return Math.ceil(Math.ceil((now + budget) / RUN_TIMEOUT_GRID_MS) * RUN_TIMEOUT_GRID_MS - now);
}
