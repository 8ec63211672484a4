import type { AppConfig } from '../config/app-config.js';
import type { Database } from '../infrastructure/database/database.js';
import type { PubSub } from '../infrastructure/pub-sub/pub-sub.js';
import type { Metrics } from '../infrastructure/metrics/metrics.js';
import type { Redis } from 'ioredis';
import { SandboxPool, type SandboxLogger } from '../sandbox/index.js';
import { defaultIsolateMemoryBudgetMb } from '../sandbox/isolate-budget.js';
import { ApiKeyService } from '../auth/api-key.service.js';
import { AddonService, type AddonTopics } from '../addons/addon.service.js';
import { InstallationService } from '../installations/installation.service.js';
import { InstallationLookup, type InstallationTopics } from '../installations/installation-lookup.js';
import { SiteService } from '../sites/site.service.js';
import { EventService } from '../events/event.service.js';
import { DeliveryService } from '../events/delivery.service.js';
import { DeliveryWorker } from '../events/delivery-worker.js';
import { SubscriberIndex } from '../events/subscriber-index.js';
import { VisibilityResolver } from '../auth/visibility.js';
import { LiveFeedService } from '../events/live-feed.service.js';
import { EventTail } from '../events/event-tail.js';
import type { EventTopics } from '../events/live-payloads.js';
import { createGuardedFetch } from '../sandbox/network-guard.js';
import { AddonBundleCache } from '../executions/addon-bundle.cache.js';
import { AddonHostCapabilities } from '../executions/addon-host-capabilities.js';
import { ExecutionEffectsRegistry } from '../executions/execution-effects.js';
import { ExecutionRecorder, type ExecutionTopics } from '../executions/execution-recorder.js';
import { LogQuota } from '../executions/log-quota.js';
import { DailyQuota } from '../infrastructure/redis/daily-quota.js';
import { ExecutionService } from '../executions/execution.service.js';
import { ExecutionQueryService } from '../executions/execution-query.service.js';
import {
  AddonQuarantine,
  type QuarantineChange,
  type QuarantineTopics,
} from '../executions/addon-quarantine.js';
import { SandboxLifecycleHooks } from '../executions/lifecycle-hooks.js';
import { WidgetCache, type WidgetTopics } from '../widgets/widget-cache.js';
import { WidgetRenderService } from '../widgets/widget-render.service.js';
import { WidgetGenerationRepository } from '../widgets/widget-generation.repository.js';
import { DashboardStatsService } from '../dashboard/dashboard-stats.service.js';
import { DashboardSeriesService } from '../dashboard/dashboard-series.service.js';

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
  quarantine: AddonQuarantine;
  widgets: WidgetRenderService;
  dashboardStats: DashboardStatsService;
  dashboardSeries: DashboardSeriesService;
}

/** Long-lived parts the services run on, owned (and closed) by the app. */
export interface Runtime {
  pool: SandboxPool;
  recorder: ExecutionRecorder;
  lookup: InstallationLookup;
  /** Started (loads the open breakers, polls) and closed by the app. */
  quarantine: AddonQuarantine;
  subscribers: SubscriberIndex;
  eventTail: EventTail;
  /** Null when DELIVERY_WORKER is off; started by the app. */
  deliveryWorker: DeliveryWorker | null;
}

/** Every pub/sub topic of the app: each domain declares its own. */
export type AppTopics = AddonTopics &
  InstallationTopics &
  EventTopics &
  ExecutionTopics &
  WidgetTopics &
  QuarantineTopics;

/** Wires the services of one server process. */
export function createServices(deps: {
  config: AppConfig;
  database: Database;
  /** Messages to every instance (Redis or in-process): invalidations, wake-ups, live feeds. */
  pubSub: PubSub<AppTopics>;
  metrics: Metrics;
  /** The shared Redis connection, for the widget render cache (L2); null without REDIS_URL. */
  redis?: Redis | null;
  onRecorderError?: (error: unknown) => void;
  onEventsError?: (error: unknown, message: string) => void;
  /** Where the sandbox logs worker kills and crashes (a pino logger). */
  sandboxLogger?: SandboxLogger;
  /** A circuit breaker changed state (told by the instance that changed it: log it once). */
  onQuarantineChange?: (change: QuarantineChange) => void;
}): { services: Services; runtime: Runtime } {
  const { config, database, pubSub, metrics } = deps;
  const bundles = new AddonBundleCache(database);
  const lookup = new InstallationLookup(database, pubSub);
  const visibility = new VisibilityResolver(database);
  const subscribers = new SubscriberIndex(database, bundles, pubSub);
  const events = new EventService({
    database,
    pubSub,
    subscribers,
    visibility,
    maxAttempts: config.deliveries.maxAttempts,
    quota: new DailyQuota({
      counter: 'events',
      perDay: config.events.maxPerSiteDay,
      perAddonDay: config.events.maxPerAddonDay,
      redis: deps.redis,
      prefix: config.redisKeyPrefix,
    }),
    onRefused: (limit) => metrics.eventsRefused.inc({ limit }),
    onError: deps.onEventsError,
  });
  const effects = new ExecutionEffectsRegistry({ events, root: database.prisma });
  const eventTail = new EventTail({ database, pubSub, onError: deps.onEventsError });
  const capabilities = new AddonHostCapabilities({ database, bundles, lookup, events, effects });
  const pool = new SandboxPool({
    workers: config.sandbox.workers,
    v8PoolSize: config.sandbox.v8PoolSize,
    maxIsolates: config.sandbox.maxIsolates,
    ...(config.sandbox.isolateMemoryBudgetMb === null
      ? {}
      : { isolateMemoryBudgetMb: config.sandbox.isolateMemoryBudgetMb }),
    capabilities,
    allowCrashTest: config.sandbox.allowCrashTest,
    logger: deps.sandboxLogger,
    maxWorkerRssMb:
      config.sandbox.workerMaxRssMb ??
      2 * (config.sandbox.isolateMemoryBudgetMb ?? defaultIsolateMemoryBudgetMb(config.sandbox.workers)) +
        256,
    onWorkerKill: (kill) => metrics.sandboxWorkerKills.inc({ reason: kill.reason }),
    // Addon requests stay on the public internet unless the operator says otherwise.
    fetchImpl: config.sandbox.fetchPrivateNetworks ? undefined : createGuardedFetch(),
  });
  const recorder = new ExecutionRecorder(
    database,
    {
      onError: deps.onRecorderError,
      logQuota: new LogQuota(config.executionLogs, deps.redis ?? null, config.redisKeyPrefix),
    },
    pubSub,
  );
  const { enabled, threshold, windowMs, baseBackoffMs, maxBackoffMs, pollMs } = config.sandbox.quarantine;
  const quarantine = new AddonQuarantine(
    { database, pubSub, metrics, onChange: deps.onQuarantineChange, onError: deps.onEventsError },
    { enabled, threshold, windowMs, baseBackoffMs, maxBackoffMs, pollMs },
  );
  const executions = new ExecutionService({
    pool,
    bundles,
    lookup,
    recorder,
    metrics,
    effects,
    quarantine: enabled ? quarantine : null,
  });
  capabilities.attach(executions);
  const hooks = new SandboxLifecycleHooks({ bundles, executions });
  const installations = new InstallationService(database, hooks, config.installationsMaxPerSite);
  installations.onChange(({ installation }) => void lookup.changed(installation.siteId));
  installations.onChange(({ installation }) => subscribers.dropSite(installation.siteId));
  const deliveryWorker = config.deliveries.worker
    ? new DeliveryWorker({
        database,
        pubSub,
        executions,
        lookup,
        bundles,
        options: config.deliveries,
        onError: deps.onEventsError,
      })
    : null;
  const widgetCache = new WidgetCache(
    {
      redis: deps.redis ?? null,
      pubSub,
      metrics,
      generations: new WidgetGenerationRepository(database.prisma),
    },
    { prefix: `${config.redisKeyPrefix}widget:`, l2MaxEntryBytes: config.widgetL2MaxEntryBytes },
  );
  const widgets = new WidgetRenderService({
    lookup,
    bundles,
    executions,
    cache: widgetCache,
    metrics,
  });
  installations.onChange(widgets.onInstallationChange);
  events.onInvalidated(widgets.onInvalidated);

  return {
    services: {
      config,
      apiKeys: new ApiKeyService(database, config.apiKeyCacheSeconds),
      addons: new AddonService(database, { pool, pubSub, limits: config.registry }),
      installations,
      sites: new SiteService(database),
      events,
      deliveries: new DeliveryService({ database, pubSub, visibility }),
      liveFeed: new LiveFeedService({ pubSub, visibility, tail: eventTail }),
      executions,
      executionQueries: new ExecutionQueryService(database),
      quarantine,
      widgets,
      dashboardStats: new DashboardStatsService({
        database,
        metrics,
        visibility,
        workerKills: () => pool.recentWorkerKills(),
        sandbox: () => pool.stats(),
      }),
      dashboardSeries: new DashboardSeriesService({ database, visibility }),
    },
    runtime: { pool, recorder, lookup, quarantine, subscribers, eventTail, deliveryWorker },
  };
}
