import type { Database } from '../infrastructure/database/database.js';
import { requireAuthenticated, type Actor } from './actor.js';
import { VisibilityRepository } from './visibility.repository.js';
import { RefreshingCache } from '../shared/refreshing-cache.js';

/**
 * What a key may see of events, deliveries and executions: an admin everything, a site key its own
 * site's, a developer key what concerns its own addons (events they emitted, deliveries to them,
 * their runs).
 */
export type Visibility =
  { kind: 'all' } | { kind: 'site'; siteId: string } | { kind: 'addons'; addonIds: ReadonlySet<string> };

/** Resolves a caller's {@link Visibility}; a developer's addons are cached briefly. */
export class VisibilityResolver {
  private readonly owned: RefreshingCache<ReadonlySet<string>>;

  constructor(
    private readonly database: Database,
    ttlMs = 10_000,
  ) {
    this.owned = new RefreshingCache<ReadonlySet<string>>(
      async (developerId) =>
        new Set(await new VisibilityRepository(this.database.prisma).addonIdsOwnedBy(developerId)),
      { ttlMs, maxEntries: 1000, maxBytes: 8 * 1024 * 1024 },
    );
  }

  async of(actor: Actor): Promise<Visibility> {
    requireAuthenticated(actor);
    if (actor.kind === 'admin') return { kind: 'all' };
    if (actor.kind === 'site') return { kind: 'site', siteId: actor.siteId };
    return { kind: 'addons', addonIds: await this.owned.get(actor.developerId) };
  }
}

/** Whether a caller sees a row that belongs to `siteId` and concerns `addonId`. */
export function isVisible(
  visibility: Visibility,
  row: { siteId: string | null; addonId: string | null },
): boolean {
  switch (visibility.kind) {
    case 'all':
      return true;
    case 'site':
      return row.siteId === visibility.siteId;
    case 'addons':
      return row.addonId !== null && visibility.addonIds.has(row.addonId);
  }
}
