import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * The Prometheus metrics of one server process. A registry per app (not prom-client's global one)
 * so several apps in one test process do not collide.
 */
export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  return {
    registry,
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
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: [registry],
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
