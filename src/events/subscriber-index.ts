import type { Database, DbClient } from '../infrastructure/database/database.js';
import type { PubSub } from '../infrastructure/pub-sub/pub-sub.js';
import { INSTALLATIONS_CHANNEL, type InstallationTopics } from '../installations/installation-lookup.js';
import type { AddonBundleCache } from '../executions/addon-bundle.cache.js';
import { EventRepository, type NewDelivery } from './event.repository.js';
import { matchesEventPattern, resolveHandler } from './event-name.js';
import { RefreshingCache } from '../shared/refreshing-cache.js';

/** What storing one event on a site sets off. */
export interface EventFanOut {
  deliveries: NewDelivery[];
  /** Ids of the addons whose widget renders on the site the event makes out of date. */
  invalidates: string[];
}

interface SiteInstallation {
  id: string;
  addonId: string;
  addonName: string;
  addonVersionId: string;
}

/**
 * Which installations of a site handle an event: enabled ones whose pinned version's manifest
 * names a handler for it. On the emit path of every event, so a site's installations are cached
 * briefly (dropped on any installation change through the pub/sub, like InstallationLookup)
 * and manifests per version for good (versions are immutable).
 */
export class SubscriberIndex {
  private readonly sites: RefreshingCache<SiteInstallation[]>;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly database: Database,
    private readonly bundles: AddonBundleCache,
    pubSub: PubSub<InstallationTopics>,
    ttlMs = 5_000,
  ) {
    // A site's entry in use is re-read in the background when it expires: emits never wait on it.
    this.sites = new RefreshingCache((siteId) => this.read(siteId, this.database.prisma), {
      ttlMs,
      maxEntries: 10_000,
      maxBytes: 16 * 1024 * 1024,
    });
    this.unsubscribe = pubSub.listen(INSTALLATIONS_CHANNEL, ({ siteId }) => this.sites.delete(siteId)).stop;
  }

  /**
   * What an event does on its site: the deliveries it creates, and the addons whose widgets declare
   * it in `invalidateOn` (their cached renders are dropped in the event's own transaction). `db` is
   * the emitter's transaction when it has one: then the cache is bypassed, since that transaction
   * may itself be changing the site's installations.
   */
  async forEvent(siteId: string | null, name: string, db?: DbClient): Promise<EventFanOut> {
    if (!siteId) return { deliveries: [], invalidates: [] };
    const installations = db ? await this.read(siteId, db) : await this.sites.get(siteId);
    const out: EventFanOut = { deliveries: [], invalidates: [] };
    for (const installation of installations) {
      const { manifest } = await this.bundles.load(installation.addonVersionId, db);
      const handler = resolveHandler(manifest.events.handles, name);
      if (handler) {
        out.deliveries.push({
          installationId: installation.id,
          addonId: installation.addonId,
          addonName: installation.addonName,
          handler,
        });
      }
      if (
        manifest.widgets.some((w) => w.invalidateOn.some((pattern) => matchesEventPattern(pattern, name)))
      ) {
        out.invalidates.push(installation.addonId);
      }
    }
    return out;
  }

  /** The site's enabled installations, from the same short-lived cache as {@link forEvent}. */
  enabledInstallations(siteId: string): Promise<ReadonlyArray<{ addonId: string; addonVersionId: string }>> {
    return this.sites.get(siteId);
  }

  /** Forgets a site's installations (called on this instance's own installation changes). */
  dropSite(siteId: string): void {
    this.sites.delete(siteId);
  }

  private async read(siteId: string, db: DbClient): Promise<SiteInstallation[]> {
    const rows = await new EventRepository(db).enabledInstallations(siteId);
    return rows.map((r) => ({
      id: r.id,
      addonId: r.addonId,
      addonName: r.addon.name,
      addonVersionId: r.addonVersionId,
    }));
  }

  close(): void {
    this.unsubscribe();
  }
}
