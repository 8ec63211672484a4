import type { AppConfig } from '../config/app-config.js';
import type { Database } from '../infrastructure/database/database.js';
import type { ClusterBus } from '../infrastructure/bus/cluster-bus.js';
import type { Metrics } from '../infrastructure/metrics/metrics.js';
import type { Redis } from 'ioredis';
import { SandboxPool } from '../sandbox/index.js';
import { ApiKeyService } from '../auth/api-key.service.js';
import { AddonService } from '../addons/addon.service.js';
import { InstallationService } from '../installations/installation.service.js';
import { InstallationLookup } from '../installations/installation-lookup.js';
import { SiteService } from '../sites/site.service.js';
import { EventService } from '../events/event.service.js';
import { DeliveryService } from '../events/delivery.service.js';
import { DeliveryWorker } from '../events/delivery-worker.js';
import { SubscriberIndex } from '../events/subscriber-index.js';
import { VisibilityResolver } from '../events/visibility.js';
import type { LivePubSub } from '../subscriptions/pub-sub.js';
import { LiveFeedService } from '../subscriptions/live-feed.service.js';
import { LiveExecutionRecorder } from '../subscriptions/live-execution-recorder.js';
import { createGuardedFetch } from '../sandbox/network-guard.js';
import { AddonBundleLoader } from '../executions/addon-bundle.loader.js';
import { AddonHostCapabilities } from '../executions/addon-host-capabilities.js';
import { ExecutionRecorder } from '../executions/execution-recorder.js';
import { LogQuota } from '../executions/log-quota.js';
import { ExecutionService } from '../executions/execution.service.js';
import { ExecutionQueryService } from '../executions/execution-query.service.js';
import { SandboxLifecycleHooks } from '../executions/lifecycle-hooks.js';
import { WidgetCache } from '../widgets/widget-cache.js';
import { WidgetRenderService } from '../widgets/widget-render.service.js';
import { DashboardStatsService } from '../dashboard/dashboard-stats.service.js';

/** The transport-free services; GraphQL resolvers and REST routes both call these. */
export interface Services {
  config: AppConfig;
  apiKeys: ApiKeyService;
  addons: AddonService;
  installations: InstallationService;
  sites: SiteService;
  events: EventService;
  deliveries: DeliveryService;
  liveFeed: LiveFeedService;
  executions: ExecutionService;
  executionQueries: ExecutionQueryService;
  widgets: WidgetRenderService;
  dashboardStats: DashboardStatsService;
}

/** Long-lived parts the services run on, owned (and closed) by the app. */
export interface Runtime {
  pool: SandboxPool;
  recorder: ExecutionRecorder;
  lookup: InstallationLookup;
  subscribers: SubscriberIndex;
  /** Null when DELIVERY_WORKER is off; started by the app. */
  deliveryWorker: DeliveryWorker | null;
}

/** Wires the services of one server process. */
export function createServices(deps: {
  config: AppConfig;
  database: Database;
  bus: ClusterBus;
  metrics: Metrics;
  /** The shared Redis connection, for the widget render cache (L2); null without REDIS_URL. */
  redis?: Redis | null;
  onRecorderError?: (error: unknown) => void;
  /** Live fan-out to GraphQL subscriptions (Redis or in-process). */
  live: LivePubSub;
  onEventsError?: (error: unknown, message: string) => void;
}): { services: Services; runtime: Runtime } {
  const { config, database, bus, metrics, live } = deps;
  const bundles = new AddonBundleLoader(database);
  const lookup = new InstallationLookup(database, bus);
  const visibility = new VisibilityResolver(database);
  const subscribers = new SubscriberIndex(database, bundles, bus);
  const events = new EventService({
    database,
    bus,
    live,
    subscribers,
    visibility,
    maxAttempts: config.deliveries.maxAttempts,
    onError: deps.onEventsError,
  });
  const capabilities = new AddonHostCapabilities({ database, bundles, lookup, events });
  const pool = new SandboxPool({
    workers: config.sandbox.workers,
    v8PoolSize: config.sandbox.v8PoolSize,
    capabilities,
    allowCrashTest: config.sandbox.allowCrashTest,
    // Addon requests stay on the public internet unless the operator says otherwise.
    fetchImpl: config.sandbox.fetchPrivateNetworks ? undefined : createGuardedFetch(),
  });
  const recorder: ExecutionRecorder = new LiveExecutionRecorder(
    database,
    {
      onError: deps.onRecorderError,
      logQuota: new LogQuota(config.executionLogs, deps.redis ?? null, config.redisKeyPrefix),
    },
    live,
  );
  const executions = new ExecutionService({ pool, bundles, lookup, recorder, metrics });
  capabilities.attach(executions);
  const hooks = new SandboxLifecycleHooks({ bundles, executions, capabilities });
  const installations = new InstallationService(database, hooks);
  installations.onChange(({ installation }) => void lookup.changed(installation.siteId));
  installations.onChange(({ installation }) => subscribers.dropSite(installation.siteId));
  const deliveryWorker = config.deliveries.worker
    ? new DeliveryWorker({
        database,
        bus,
        live,
        executions,
        lookup,
        bundles,
        options: config.deliveries,
        onError: deps.onEventsError,
      })
    : null;
  const widgetCache = new WidgetCache(
    { redis: deps.redis ?? null, bus, metrics },
    { prefix: `${config.redisKeyPrefix}widget:`, l2MaxEntryBytes: config.widgetL2MaxEntryBytes },
  );
  const widgets = new WidgetRenderService({
    lookup,
    bundles,
    subscribers,
    executions,
    cache: widgetCache,
    metrics,
  });
  installations.onChange(widgets.onInstallationChange);
  events.onStored(({ siteId, name }) => void widgets.invalidateForEvent(siteId, name).catch(() => undefined));

  return {
    services: {
      config,
      apiKeys: new ApiKeyService(database, config.apiKeyCacheSeconds),
      addons: new AddonService(database, { pool, bus }),
      installations,
      sites: new SiteService(database),
      events,
      deliveries: new DeliveryService({ database, bus, live, visibility }),
      liveFeed: new LiveFeedService({ live, visibility }),
      executions,
      executionQueries: new ExecutionQueryService(database),
      widgets,
      dashboardStats: new DashboardStatsService({ database, metrics, visibility }),
    },
    runtime: { pool, recorder, lookup, subscribers, deliveryWorker },
  };
}
