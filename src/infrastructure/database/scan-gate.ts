import { RateLimitedError } from '../../errors/index.js';

/** What one caller's scans may wait for beside the ones running; past it they are refused. */
export const SCAN_QUEUE_PER_CALLER = 32;

export interface ScanGateOptions {
  /** Scans of one caller running at once on this instance. */
  perCaller: number;
  /** Scans of all callers running at once on this instance (a share of the connection pool). */
  total: number;
}

export interface ScanGateStats {
  running: number;
  waiting: number;
  /** Scans refused since start because their caller had SCAN_QUEUE_PER_CALLER waiting already. */
  refused: number;
}

/**
 * Admission for reads whose cost grows with a tenant's own data (history with filters, dashboard
 * aggregates): one caller may hold only a few of the pool's connections with them, and all callers
 * together only some, so one tenant's history costs another tenant's plain reads nothing. Waiting
 * callers take turns as places free up; a caller's own scans keep their order.
 */
export interface ScanGate {
  /** Runs `work` once `caller` may; throws RateLimitedError when too many of its scans wait. */
  run<T>(caller: string, work: () => Promise<T>): Promise<T>;
  stats(): ScanGateStats;
}

/** A {@link ScanGate} for one instance; `perCaller` is capped at `total`. */
export function createScanGate(options: ScanGateOptions): ScanGate {
  const total = Math.max(1, options.total);
  const perCaller = Math.min(Math.max(1, options.perCaller), total);
  const running = new Map<string, number>();
  // Callers in turn order: one that is let in goes to the back if it still has scans waiting.
  const waiting = new Map<string, (() => void)[]>();
  let active = 0;
  let queued = 0;
  let refused = 0;

  const hasRoom = (caller: string) => active < total && (running.get(caller) ?? 0) < perCaller;
  const enter = (caller: string) => {
    active += 1;
    running.set(caller, (running.get(caller) ?? 0) + 1);
  };
  const leave = (caller: string) => {
    active -= 1;
    const left = running.get(caller)! - 1;
    if (left === 0) running.delete(caller);
    else running.set(caller, left);
    // One place is free: it goes to the first caller in turn that may have it.
    for (const [next, queue] of waiting) {
      if (!hasRoom(next)) continue;
      const wake = queue.shift()!;
      queued -= 1;
      waiting.delete(next);
      if (queue.length > 0) waiting.set(next, queue);
      enter(next);
      wake();
      return;
    }
  };

  return {
    async run(caller, work) {
      if (hasRoom(caller) && !waiting.has(caller)) enter(caller);
      else {
        let queue = waiting.get(caller);
        if ((queue?.length ?? 0) >= SCAN_QUEUE_PER_CALLER) {
          refused += 1;
          throw new RateLimitedError(
            `${SCAN_QUEUE_PER_CALLER} reads of history are already waiting for this site or account; try again once they are answered.`,
            1,
          );
        }
        if (queue === undefined) waiting.set(caller, (queue = []));
        queued += 1;
        // Let in by leave(), which counts it as running first.
        await new Promise<void>((resolve) => queue.push(resolve));
      }
      try {
        return await work();
      } finally {
        leave(caller);
      }
    },
    stats: () => ({ running: active, waiting: queued, refused }),
  };
}
