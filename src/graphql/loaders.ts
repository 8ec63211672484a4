import DataLoader from 'dataloader';
import type { DbClient } from '../infrastructure/database/database.js';
import { createAddonLoaders } from '../addons/addon.loaders.js';
import { byKey } from '../addons/addon.loaders.js';
import { SiteRepository, type SiteRecord } from '../sites/site.repository.js';
import { createEventLoaders } from '../events/event.loaders.js';

function createAllLoaders(db: DbClient) {
  const sites = new SiteRepository(db);
  return {
    ...createAddonLoaders(db),
    ...createEventLoaders(db),
    siteById: new DataLoader<string, SiteRecord | null>(async (ids) =>
      byKey(ids, await sites.findByIds(ids), (s) => s.id),
    ),
  };
}

export type Loaders = ReturnType<typeof createAllLoaders>;

/**
 * A fresh set per request: batches the relation lookups of one operation and never serves one
 * caller's cached rows to another. Built on first use, since most operations (executions, renders,
 * emits) resolve no relation at all.
 */
export function createLoaders(db: DbClient): Loaders {
  let loaders: Loaders | null = null;
  return new Proxy({} as Loaders, {
    get: (_target, name) => (loaders ??= createAllLoaders(db))[name as keyof Loaders],
  });
}
