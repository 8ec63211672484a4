import type { Database, DbClient } from '../infrastructure/database/database.js';
import type { PubSub } from '../infrastructure/pub-sub/pub-sub.js';
import { ConflictError, NotFoundError } from '../errors/index.js';
import { AddonRepository, type AddonRecord } from '../addons/addon.repository.js';
import { InstallationRepository, type InstallationRecord } from './installation.repository.js';
import { RefreshingCache } from '../shared/refreshing-cache.js';

export const INSTALLATIONS_CHANNEL = 'installations.changed';

/** The installations' pub/sub topic: a site's installations changed. */
export interface InstallationTopics {
  [INSTALLATIONS_CHANNEL]: { siteId: string };
}

export interface ResolvedInstallation {
  addon: AddonRecord;
  installation: InstallationRecord;
}

/**
 * Finds the enabled installation an execution runs under. Hot path of every addon call, so answers
 * are cached briefly; any installation change on any instance drops the site's entries through the
 * pub/sub, and the TTL bounds staleness should a message be lost. An entry in use is re-read in
 * the background when it expires (see RefreshingCache), so calls never wait on that read.
 */
export class InstallationLookup {
  private readonly cache: RefreshingCache<ResolvedInstallation>;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly database: Database,
    private readonly pubSub: PubSub<InstallationTopics>,
    ttlMs = 5_000,
  ) {
    this.cache = new RefreshingCache(
      (key) => {
        // Site ids never hold the separator; the addon part is whatever the caller sent.
        const at = key.indexOf(KEY_SEPARATOR);
        return this.read(key.slice(0, at), key.slice(at + 1), this.database.prisma);
      },
      { ttlMs, maxEntries: 10_000, maxBytes: 32 * 1024 * 1024 },
    );
    this.unsubscribe = pubSub.listen(INSTALLATIONS_CHANNEL, ({ siteId }) => this.dropSite(siteId)).stop;
  }

  /** Announces a change to every instance (this one included). */
  async changed(siteId: string): Promise<void> {
    this.dropSite(siteId);
    await this.pubSub.publish(INSTALLATIONS_CHANNEL, { siteId }).catch(() => undefined);
  }

  /**
   * The site's enabled installation of an addon (id or name), or NOT_FOUND / CONFLICT. A caller
   * inside a transaction passes its client as `db`: on a miss it reads through it, and what it
   * reads (maybe not committed yet) is not cached.
   */
  async require(siteId: string, addonIdOrName: string, db?: DbClient): Promise<ResolvedInstallation> {
    const key = keyOf(siteId, addonIdOrName);
    if (!db) return enabled(await this.cache.get(key));
    return enabled(this.cache.peek(key) ?? (await this.read(siteId, addonIdOrName, db)));
  }

  /**
   * {@link require} answered from memory, without a promise (hot paths await nothing on a hit):
   * the installation, CONFLICT when it is disabled, or undefined when it is not cached.
   */
  cached(siteId: string, addonIdOrName: string): ResolvedInstallation | undefined {
    const hit = this.cache.peek(keyOf(siteId, addonIdOrName));
    return hit && enabled(hit);
  }

  /** Forgets this instance's cached installations of a site (the next call reads them again). */
  forgetSite(siteId: string): void {
    this.dropSite(siteId);
  }

  close(): void {
    this.unsubscribe();
  }

  private async read(siteId: string, addonIdOrName: string, client: DbClient): Promise<ResolvedInstallation> {
    const addon = await new AddonRepository(client).findByIdOrName(addonIdOrName);
    if (!addon) throw new NotFoundError('Addon', addonIdOrName);
    const installation = await new InstallationRepository(client).find(siteId, addon.id);
    if (!installation) throw new NotFoundError('Installation', `${addon.name} on site ${siteId}`);
    return { addon, installation };
  }

  private dropSite(siteId: string): void {
    const prefix = keyOf(siteId, '');
    this.cache.deleteWhere((key) => key.startsWith(prefix));
  }
}

const KEY_SEPARATOR = '\u0000';
const keyOf = (siteId: string, addonIdOrName: string) => `${siteId}${KEY_SEPARATOR}${addonIdOrName}`;

function enabled(resolved: ResolvedInstallation): ResolvedInstallation {
  if (!resolved.installation.enabled) {
    throw new ConflictError(`Addon "${resolved.addon.name}" is disabled on this site.`);
  }
  return resolved;
}
