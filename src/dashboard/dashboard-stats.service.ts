import type { Database } from '../infrastructure/database/database.js';
import type { Metrics } from '../infrastructure/metrics/metrics.js';
import type { Actor } from '../auth/actor.js';
import { ForbiddenError, ValidationError } from '../errors/index.js';
import { isUuid } from '../shared/ids.js';
import type { VisibilityResolver } from '../auth/visibility.js';
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
}

/**
 * The figures the dashboard shows: execution rate, latency percentiles and errors per addon over a
 * recent window, read from the Execution table (shared by every instance), plus the widget cache
 * hit rate, which only exists as in-process counters of the answering instance. What a key sees
 * follows {@link VisibilityResolver}: an admin everything, a site key its site, a developer its addons.
 */
export class DashboardStatsService {
  constructor(
    private readonly deps: { database: Database; metrics: Metrics; visibility: VisibilityResolver },
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
        : await new DashboardStatsRepository(this.deps.database.prisma).aggregate(
            since,
            scope,
            MAX_ADDON_ROWS,
          );
    return {
      ...totals,
      windowSeconds,
      since,
      executionsPerSecond: totals.executions / windowSeconds,
      errorRate: ratio(totals.errors, totals.executions) ?? 0,
      addons: addons.map((row) => ({ ...row, errorRate: ratio(row.errors, row.executions) ?? 0 })),
      widgetCache: visibility.kind === 'all' ? await this.widgetCache() : null,
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
