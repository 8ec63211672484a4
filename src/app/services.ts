import type { AppConfig } from '../config/app-config.js';
import type { Database } from '../infrastructure/database/database.js';
import { ApiKeyService } from '../auth/api-key.service.js';
import { AddonService } from '../addons/addon.service.js';
import { InstallationService, type LifecycleHooks } from '../installations/installation.service.js';
import { SiteService } from '../sites/site.service.js';

/** The transport-free services; GraphQL resolvers and REST routes both call these. */
export interface Services {
  config: AppConfig;
  apiKeys: ApiKeyService;
  addons: AddonService;
  installations: InstallationService;
  sites: SiteService;
}

/** Wires the services of one server process over one database. */
export function createServices(
  config: AppConfig,
  database: Database,
  hooks: LifecycleHooks | null = null,
): Services {
  return {
    config,
    apiKeys: new ApiKeyService(database, config.apiKeyCacheSeconds),
    addons: new AddonService(database),
    installations: new InstallationService(database, hooks),
    sites: new SiteService(database),
  };
}
