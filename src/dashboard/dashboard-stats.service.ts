import type { Database } from '../infrastructure/database/database.js';
import type { Metrics } from '../infrastructure/metrics/metrics.js';
import { actorScope, type Actor } from '../auth/actor.js';
import { ForbiddenError, ValidationError } from '../errors/index.js';
import { isUuid } from '../shared/ids.js';
import type { VisibilityResolver } from '../auth/visibility.js';
import type { SandboxStats, SandboxWorkerKill, WorkerKillReason } from '../sandbox/index.js';
import {
  DashboardStatsRepository,
  type AddonExecutionAggregate,
  type ExecutionAggregate,
  type ExecutionScope,
} from './dashboard-stats.repository.js';

export const DEFAULT_WINDOW_SECONDS = 60;
export const MIN_WINDOW_SECONDS = 10;
/** A day: longer windows would scan more rows than a dashboard refresh should. */
export const MAX_WINDOW_SECONDS = 86_400;
/** Per-addon rows returned; the ones with the most errors, then the most runs. */
export const MAX_ADDON_ROWS = 50;

export interface DashboardStatsArgs {
  windowSeconds?: number | null;
  /** Only this site's executions (admins and developers may name one; site keys get their own). */
  siteId?: string | null;
}

/** Widget cache counters of the answering instance since it started. */
export interface WidgetCacheStats {
  l1Hits: number;
  l2Hits: number;
  misses: number;
  /** Hits over lookups; null before the first lookup. */
  hitRate: number | null;
}

/** The answering instance's sandbox: isolates kept and what they take. */
export interface SandboxView {
  workers: number;
  workersReady: number;
  /** Isolates kept warm across the workers (one per addon version and site in use). */
  isolates: number;
  /** Their measured memory (last sample of each), in MB. */
  isolateMemoryMb: number;
  /** isolateMemoryMb per isolate, in MB; null without isolates. */
  memoryPerIsolateMb: number | null;
  /** What the isolates may keep across the workers before the least recently used are evicted, in MB. */
  isolateMemoryBudgetMb: number;
  /** Resident memory of the worker processes, in MB. */
  workersRssMb: number;
  inFlight: number;
}

/** A sandbox worker kill as the dashboard shows it. */
export interface WorkerKillView {
  at: Date;
  workerId: number;
  reason: WorkerKillReason;
  culprits: { addonId: string; addonName: string; version: string; siteId: string }[];
  failedCalls: number;
  retriedCalls: number;
  rssMb: number;
}

export interface AddonStats extends AddonExecutionAggregate {
  errorRate: number;
}

export interface DashboardStats extends ExecutionAggregate {
  windowSeconds: number;
  since: Date;
  executionsPerSecond: number;
  /** Errors over executions; 0 without executions. */
  errorRate: number;
  addons: AddonStats[];
  /** Admins only: the counters are instance-wide, across every site. */
  widgetCache: WidgetCacheStats | null;
  /** This instance's recent sandbox worker kills the caller may see, newest first. */
  workerKills: WorkerKillView[];
  /** Admins only: the answering instance's isolates, across every site. */
  sandbox: SandboxView | null;
}

/**
 * The figures the dashboard shows: execution rate, latency percentiles and errors per addon over a
 * recent window, read from the Execution table (shared by every instance), plus the widget cache
 * hit rate, which only exists as in-process counters of the answering instance. What a key sees
 * follows {@link VisibilityResolver}: an admin everything, a site key its site, a developer its addons.
 */
export class DashboardStatsService {
  constructor(
    private readonly deps: {
      database: Database;
      metrics: Metrics;
      visibility: VisibilityResolver;
      /** The sandbox pool's recent worker kills, newest first (instance-local). */
      workerKills?: () => SandboxWorkerKill[];
      /** The sandbox pool's figures (instance-local). */
      sandbox?: () => SandboxStats;
    },
  ) {}

  async stats(actor: Actor, args: DashboardStatsArgs): Promise<DashboardStats> {
    const visibility = await this.deps.visibility.of(actor);
    const windowSeconds = args.windowSeconds ?? DEFAULT_WINDOW_SECONDS;
    if (
      !Number.isInteger(windowSeconds) ||
      windowSeconds < MIN_WINDOW_SECONDS ||
      windowSeconds > MAX_WINDOW_SECONDS
    ) {
      throw ValidationError.of('arguments', [
        {
          field: 'windowSeconds',
          message: `must be an integer from ${MIN_WINDOW_SECONDS} to ${MAX_WINDOW_SECONDS}`,
        },
      ]);
    }
    const requestedSite = args.siteId || null;
    if (requestedSite && !isUuid(requestedSite)) {
      throw ValidationError.of('arguments', [{ field: 'siteId', message: 'is not a site id' }]);
    }
    const scope: ExecutionScope = { siteId: requestedSite, addonIds: null };
    if (visibility.kind === 'site') {
      if (requestedSite && requestedSite !== visibility.siteId) {
        throw new ForbiddenError('A site key sees its own statistics only.');
      }
      scope.siteId = visibility.siteId;
    } else if (visibility.kind === 'addons') {
      scope.addonIds = [...visibility.addonIds];
    }

    const since = new Date(Date.now() - windowSeconds * 1000);
    const { totals, addons } =
      scope.addonIds?.length === 0
        ? {
            totals: { executions: 0, errors: 0, callerErrors: 0, p50Ms: null, p95Ms: null, maxMs: null },
            addons: [],
          }
        : await this.deps.database.scan(actorScope(actor), (db) =>
            new DashboardStatsRepository(db).aggregate(since, scope, MAX_ADDON_ROWS),
          );
    return {
      ...totals,
      windowSeconds,
      since,
      executionsPerSecond: totals.executions / windowSeconds,
      errorRate: ratio(totals.errors, totals.executions) ?? 0,
      addons: addons.map((row) => ({ ...row, errorRate: ratio(row.errors, row.executions) ?? 0 })),
      widgetCache: visibility.kind === 'all' ? await this.widgetCache() : null,
      sandbox: visibility.kind === 'all' ? this.sandbox() : null,
      workerKills: (this.deps.workerKills?.() ?? [])
        .filter((kill) =>
          visibility.kind === 'all'
            ? true
            : visibility.kind === 'site'
              ? kill.guilty.some((g) => g.siteId === visibility.siteId)
              : kill.guilty.some((g) => visibility.addonIds.has(g.addonId)),
        )
        .map((kill) => ({
          at: kill.at,
          workerId: kill.workerId,
          reason: kill.reason,
          culprits: kill.guilty.map(({ addonId, addonName, version, siteId }) => ({
            addonId,
            addonName,
            version,
            siteId,
          })),
          failedCalls: kill.failedCalls,
          retriedCalls: kill.retriedCalls,
          rssMb: Math.round(kill.rssBytes / 1048576),
        })),
    };
  }

  private sandbox(): SandboxView | null {
    const stats = this.deps.sandbox?.();
    if (!stats) return null;
    const mb = (bytes: number) => Math.round((bytes / 1048576) * 100) / 100;
    return {
      workers: stats.workers,
      workersReady: stats.workersReady,
      isolates: stats.isolates,
      isolateMemoryMb: mb(stats.isolateMemoryBytes),
      memoryPerIsolateMb: stats.isolates === 0 ? null : mb(stats.memoryPerIsolateBytes),
      isolateMemoryBudgetMb: mb(stats.isolateMemoryBudgetBytes),
      workersRssMb: mb(stats.rssBytes),
      inFlight: stats.inFlight,
    };
  }

  private async widgetCache(): Promise<WidgetCacheStats> {
    const hits = await this.deps.metrics.widgetCacheHits.get();
    const misses = await this.deps.metrics.widgetCacheMisses.get();
    const hitsAt = (level: string) =>
      hits.values.filter((v) => v.labels.level === level).reduce((sum, v) => sum + v.value, 0);
    const l1Hits = hitsAt('l1');
    const l2Hits = hitsAt('l2');
    const missCount = misses.values.reduce((sum, v) => sum + v.value, 0);
    return {
      l1Hits,
      l2Hits,
      misses: missCount,
      hitRate: ratio(l1Hits + l2Hits, l1Hits + l2Hits + missCount),
    };
  }
}

function ratio(part: number, whole: number): number | null {
  return whole === 0 ? null : part / whole;
}
