import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Seconds, from half a millisecond (a cached render) to 5 s (an addon at its time limit). */
const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/**
 * The Prometheus metrics of one server process. A registry per app (not prom-client's global one)
 * so several apps in one test process do not collide.
 */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
    sandboxWorkerKills: new Counter({
      name: 'sandbox_worker_kills_total',
      help: 'Sandbox worker processes stopped by the pool or lost, by reason (deadline, stalled, rss, crashed).',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    addonExecutions: new Counter({
      name: 'addon_executions_total',
      help: 'Addon code runs by addon, function and outcome (SUCCESS or the error code).',
      labelNames: ['addon_id', 'function_name', 'status'] as const,
      registers: [registry],
    }),
    addonResponseTime: new Histogram({
      name: 'addon_response_time_seconds',
      help: 'Wall time of addon code runs, as seen by the server.',
      labelNames: ['addon_id', 'function_name'] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    graphqlOperations: new Counter({
      name: 'graphql_operations_total',
      help: 'GraphQL operations by (bounded) operation name, type and outcome.',
      labelNames: ['operation_name', 'operation_type', 'outcome'] as const,
      registers: [registry],
    }),
    graphqlDuration: new Histogram({
      name: 'graphql_operation_duration_seconds',
      help: 'Time from receiving a GraphQL operation to sending its response.',
      labelNames: ['operation_name', 'operation_type'] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    graphqlResponseCache: new Counter({
      name: 'graphql_response_cache_total',
      help: 'GraphQL responses served again (hit), executed and kept (stored), or executed again because what they were built from changed (stale).',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
    rateLimited: new Counter({
      name: 'http_rate_limited_total',
      help: 'Requests refused with 429, by the kind of caller (role or anonymous; key-lookup: too many keys not cached here from one address).',
      labelNames: ['caller'] as const,
      registers: [registry],
    }),
    eventsRefused: new Counter({
      name: 'events_refused_total',
      help: "Emits refused past a day's budget: the site's (site_day, EVENTS_MAX_PER_SITE_DAY) or one addon's share of it (addon_day, EVENTS_MAX_PER_ADDON_DAY).",
      labelNames: ['limit'] as const,
      registers: [registry],
    }),
    liveLimited: new Counter({
      name: 'live_limited_total',
      help: 'WebSocket upgrades refused for their address (handshakes), sockets paused for sending past their budget (inbound), sockets refused (connections), operations refused on a socket (operations) or for a key (subscriptions), and subscriptions ended because their caller fell behind (backlog).',
      labelNames: ['limit'] as const,
      registers: [registry],
    }),
    widgetRenderTime: new Histogram({
      name: 'widget_render_time_seconds',
      help: 'Time to render a widget on a cache miss (sandbox run, CSS scoping), by addon and widget name.',
      labelNames: ['addon_id', 'widget_id'] as const,
      buckets: LATENCY_BUCKETS,
      registers: [registry],
    }),
    widgetCacheHits: new Counter({
      name: 'widget_cache_hits_total',
      help: 'Widget renders served from the cache, by level (l1 in-process, l2 Redis).',
      labelNames: ['level'] as const,
      registers: [registry],
    }),
    widgetCacheL2Skipped: new Counter({
      name: 'widget_cache_l2_skipped_total',
      help: 'Renders served but not stored in Redis (L2), by reason (too_large: over WIDGET_L2_MAX_ENTRY_BYTES).',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    widgetCacheMisses: new Counter({
      name: 'widget_cache_misses_total',
      help: 'Widget renders that missed both cache levels and ran in the sandbox.',
      registers: [registry],
    }),
  };
}

/**
 * Gauges read at scrape time from live objects (the sandbox pool, the delivery backlog, ...):
 * `read` returns the current value.
 */
export function addGauge(
  metrics: Metrics,
  name: string,
  help: string,
  read: () => number | Promise<number>,
): void {
  new Gauge({
    name,
    help,
    registers: [metrics.registry],
    async collect() {
      this.set(await read());
    },
  });
}

/**
 * A gauge with one label, read at scrape time as `{ labelValue: value }`. A failing or slow read
 * (the database away) leaves the previous values rather than failing the whole scrape.
 */
export function addLabelledGauge(
  metrics: Metrics,
  name: string,
  help: string,
  label: string,
  read: () => Promise<Record<string, number>>,
): void {
  new Gauge({
    name,
    help,
    labelNames: [label],
    registers: [metrics.registry],
    async collect() {
      try {
        const values = await read();
        for (const [value, count] of Object.entries(values)) this.set({ [label]: value }, count);
      } catch {
        // Keep the last values: /metrics must answer even while a dependency is down.
      }
    },
  });
}

/** A counter mirrored from a running total kept elsewhere (e.g. the sandbox pool's crash count). */
export function addCounterFromTotal(metrics: Metrics, name: string, help: string, read: () => number): void {
  let seen = 0;
  new Counter({
    name,
    help,
    registers: [metrics.registry],
    collect() {
      const total = read();
      if (total > seen) {
        this.inc(total - seen);
        seen = total;
      }
    },
  });
}

export type Metrics = ReturnType<typeof createMetrics>;
