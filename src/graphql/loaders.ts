import DataLoader from 'dataloader';
import type { DbClient } from '../infrastructure/database/database.js';
import { createAddonLoaders } from '../addons/addon.loaders.js';
import { byKey } from '../addons/addon.loaders.js';
import { SiteRepository, type SiteRecord } from '../sites/site.repository.js';
import { createEventLoaders } from '../events/event.loaders.js';

/**
 * A fresh set per request: batches the relation lookups of one operation and never serves one
 * caller's cached rows to another.
 */
export function createLoaders(db: DbClient) {
  const sites = new SiteRepository(db);
  return {
    ...createAddonLoaders(db),
    ...createEventLoaders(db),
    siteById: new DataLoader<string, SiteRecord | null>(async (ids) =>
      byKey(ids, await sites.findByIds(ids), (s) => s.id),
    ),
  };
}

export type Loaders = ReturnType<typeof createLoaders>;
