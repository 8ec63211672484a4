import { LRUCache } from 'lru-cache';
import { ErrorCode } from '../errors/index.js';
import type { StartReport } from './protocol.js';

/** A start that used more of the isolate's CPU time than this (ms) sends the version to the thread pool. */
export const SYNC_START_BUDGET_MS = 2;
/** Quick starts in a row before a (version, site) starts synchronously (again). */
export const FAST_STARTS_TO_SYNC = 3;
/** A start longer than this (ms of the isolate's CPU time) counts against the (version, site) for good. */
export const SLOW_START_MS = 20;
/** Starts over {@link SLOW_START_MS} after which a (version, site) never starts synchronously again. */
export const MAX_SLOW_STARTS = 3;
/** (version, site) pairs whose record the parent keeps; the least recently called is forgotten. */
export const MAX_START_POLICIES = 20_000;

/** Codes that say a call spun, ran out of memory or was killed for its own deadline. */
const GUILTY_CODES: ReadonlySet<string> = new Set([
  ErrorCode.ExecutionTimeout,
  ErrorCode.MemoryLimitExceeded,
]);

/**
 * Decides, for one (addon version, site), whether its calls may start synchronously on a worker's
 * thread (cheaper) or go to isolated-vm's thread pool (hand-offs between threads). A
 * synchronous start holds the worker's event loop while it runs (the worker cuts it after its
 * synchronous slice), so only a pair whose recent starts were quick earns it:
 *
 * - {@link FAST_STARTS_TO_SYNC} starts in a row under {@link SYNC_START_BUDGET_MS} make it
 *   synchronous; one start over the budget sends it back to the pool until it has made as many
 *   quick starts again (a garbage collection in the isolate does that to honest code now and then).
 * - {@link MAX_SLOW_STARTS} starts over {@link SLOW_START_MS}, or any one call that was cut at the
 *   worker's synchronous slice, timed out, ran out of memory or got its worker killed, keep it on
 *   the pool for good: earning quick starts again changes nothing, so the "three quick calls then
 *   a spin" pattern holds a worker's thread at most once, for at most one slice.
 *
 * Durations are the isolate's CPU time, not the wall clock: under load the OS preempts a quick
 * start for milliseconds, which says nothing about the addon.
 */
export class SyncStartPolicy {
  private sync = false;
  private fastStarts = 0;
  private slowStarts = 0;
  private banned = false;

  /** Whether the next call starts on the worker's thread. */
  get startSync(): boolean {
    return this.sync;
  }

  /** True once the pair is kept on the pool for good. */
  get onPoolForGood(): boolean {
    return this.banned;
  }

  /** Records the CPU time (ms) one start took. */
  note(cpuMs: number): void {
    if (this.banned) return;
    if (cpuMs > SYNC_START_BUDGET_MS) {
      this.sync = false;
      this.fastStarts = 0;
      if (cpuMs > SLOW_START_MS && ++this.slowStarts >= MAX_SLOW_STARTS) this.ban();
    } else if (++this.fastStarts >= FAST_STARTS_TO_SYNC) {
      this.sync = true;
    }
  }

  /** Keeps the pair on the pool for good. */
  ban(): void {
    this.banned = true;
    this.sync = false;
  }
}

/**
 * The parent's start policies, one {@link SyncStartPolicy} per (version, site), in a bounded LRU.
 * They live in the API process, so a worker that is killed or replaced forgets nothing: the worker
 * only follows the `startSync` flag of each exec message and reports how the start went.
 */
export class StartPolicies {
  private readonly policies: LRUCache<string, SyncStartPolicy>;

  constructor(max = MAX_START_POLICIES) {
    this.policies = new LRUCache({ max });
  }

  /** Whether a call of `versionId` for `siteId` may start on the worker's thread. */
  startSync(versionId: string, siteId: string): boolean {
    return this.policies.get(key(versionId, siteId))?.startSync === true;
  }

  /** True once the pair is kept on the pool for good. */
  onPoolForGood(versionId: string, siteId: string): boolean {
    return this.policies.peek(key(versionId, siteId))?.onPoolForGood === true;
  }

  /** Learns from a call that succeeded, with the worker's report of its start. */
  succeeded(versionId: string, siteId: string, report: StartReport | undefined): void {
    if (report === undefined) return;
    const policy = this.policy(versionId, siteId);
    if (report.overran) policy.ban();
    else policy.note(report.cpuMs);
  }

  /** Learns from a call that failed with `code` (a timeout or memory kill is the pair's own doing). */
  failed(versionId: string, siteId: string, code: string): void {
    if (GUILTY_CODES.has(code)) this.policy(versionId, siteId).ban();
    // A crash may be anyone's: the pair only loses its streak.
    else if (code === ErrorCode.SandboxCrashed) this.policy(versionId, siteId).note(Infinity);
  }

  private policy(versionId: string, siteId: string): SyncStartPolicy {
    const k = key(versionId, siteId);
    let policy = this.policies.get(k);
    if (policy === undefined) {
      policy = new SyncStartPolicy();
      this.policies.set(k, policy);
    }
    return policy;
  }
}

function key(versionId: string, siteId: string): string {
  return `${versionId}\u0000${siteId}`;
}
