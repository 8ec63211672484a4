import type { AppConfig } from '../config/app-config.js';
import type { Database } from '../infrastructure/database/database.js';
import type { ClusterBus } from '../infrastructure/bus/cluster-bus.js';
import type { Metrics } from '../infrastructure/metrics/metrics.js';
import { SandboxPool } from '../sandbox/index.js';
import { ApiKeyService } from '../auth/api-key.service.js';
import { AddonService } from '../addons/addon.service.js';
import { InstallationService } from '../installations/installation.service.js';
import { InstallationLookup } from '../installations/installation-lookup.js';
import { SiteService } from '../sites/site.service.js';
import { EventService } from '../events/event.service.js';
import { AddonBundleLoader } from '../executions/addon-bundle.loader.js';
import { AddonHostCapabilities } from '../executions/addon-host-capabilities.js';
import { ExecutionRecorder } from '../executions/execution-recorder.js';
import { ExecutionService } from '../executions/execution.service.js';
import { ExecutionQueryService } from '../executions/execution-query.service.js';
import { SandboxLifecycleHooks } from '../executions/lifecycle-hooks.js';

/** The transport-free services; GraphQL resolvers and REST routes both call these. */
export interface Services {
  config: AppConfig;
  apiKeys: ApiKeyService;
  addons: AddonService;
  installations: InstallationService;
  sites: SiteService;
  events: EventService;
  executions: ExecutionService;
  executionQueries: ExecutionQueryService;
}

/** Long-lived parts the services run on, owned (and closed) by the app. */
export interface Runtime {
  pool: SandboxPool;
  recorder: ExecutionRecorder;
  lookup: InstallationLookup;
}

/** Wires the services of one server process. */
export function createServices(deps: {
  config: AppConfig;
  database: Database;
  bus: ClusterBus;
  metrics: Metrics;
  onRecorderError?: (error: unknown) => void;
}): { services: Services; runtime: Runtime } {
  const { config, database, bus, metrics } = deps;
  const bundles = new AddonBundleLoader(database);
  const lookup = new InstallationLookup(database, bus);
  const events = new EventService();
  const capabilities = new AddonHostCapabilities({ database, bundles, lookup, events });
  const pool = new SandboxPool({
    workers: config.sandbox.workers,
    capabilities,
    allowCrashTest: config.sandbox.allowCrashTest,
  });
  const recorder = new ExecutionRecorder(database, { onError: deps.onRecorderError });
  const executions = new ExecutionService({ pool, bundles, lookup, recorder, metrics });
  capabilities.attach(executions);
  const hooks = new SandboxLifecycleHooks({ bundles, executions, capabilities });
  const installations = new InstallationService(database, hooks);
  installations.onChange(({ installation }) => void lookup.changed(installation.siteId));

  return {
    services: {
      config,
      apiKeys: new ApiKeyService(database, config.apiKeyCacheSeconds),
      addons: new AddonService(database),
      installations,
      sites: new SiteService(database),
      events,
      executions,
      executionQueries: new ExecutionQueryService(database),
    },
    runtime: { pool, recorder, lookup },
  };
}
