import type { Database, DbClient } from '../infrastructure/database/database.js';
import type { ClusterBus } from '../infrastructure/bus/cluster-bus.js';
import { ConflictError, NotFoundError } from '../errors/index.js';
import { AddonRepository, type AddonRecord } from '../addons/addon.repository.js';
import { InstallationRepository, type InstallationRecord } from './installation.repository.js';

export const INSTALLATIONS_CHANNEL = 'installations.changed';

export interface ResolvedInstallation {
  addon: AddonRecord;
  installation: InstallationRecord;
}

/**
 * Finds the enabled installation an execution runs under. Hot path of every addon call, so answers
 * are cached briefly; any installation change on any instance drops the site's entries through the
 * cluster bus, and the TTL bounds staleness should a message be lost.
 */
export class InstallationLookup {
  private readonly cache = new Map<string, { value: ResolvedInstallation; expiresAt: number }>();
  private readonly unsubscribe: () => void;

  constructor(
    private readonly database: Database,
    private readonly bus: ClusterBus,
    private readonly ttlMs = 5_000,
  ) {
    this.unsubscribe = bus.subscribe(INSTALLATIONS_CHANNEL, (message) => {
      const siteId = (message as { siteId?: unknown }).siteId;
      if (typeof siteId === 'string') this.dropSite(siteId);
    });
  }

  /** Announces a change to every instance (this one included). */
  async changed(siteId: string): Promise<void> {
    this.dropSite(siteId);
    await this.bus.publish(INSTALLATIONS_CHANNEL, { siteId }).catch(() => undefined);
  }

  /**
   * The site's enabled installation of an addon (id or name), or NOT_FOUND / CONFLICT. A caller
   * inside a transaction passes its client as `db`.
   */
  async require(siteId: string, addonIdOrName: string, db?: DbClient): Promise<ResolvedInstallation> {
    const cached = this.cached(siteId, addonIdOrName);
    if (cached) return cached;
    const client = db ?? this.database.prisma;
    const addon = await new AddonRepository(client).findByIdOrName(addonIdOrName);
    if (!addon) throw new NotFoundError('Addon', addonIdOrName);
    const installation = await new InstallationRepository(client).find(siteId, addon.id);
    if (!installation) throw new NotFoundError('Installation', `${addon.name} on site ${siteId}`);
    const resolved = { addon, installation };
    if (this.cache.size > 10_000) this.cache.clear();
    this.cache.set(keyOf(siteId, addonIdOrName), { value: resolved, expiresAt: Date.now() + this.ttlMs });
    return enabled(resolved);
  }

  /**
   * {@link require} answered from memory, without a promise (hot paths await nothing on a hit):
   * the installation, CONFLICT when it is disabled, or undefined when it is not cached.
   */
  cached(siteId: string, addonIdOrName: string): ResolvedInstallation | undefined {
    const hit = this.cache.get(keyOf(siteId, addonIdOrName));
    return hit && hit.expiresAt > Date.now() ? enabled(hit.value) : undefined;
  }

  private dropSite(siteId: string): void {
    const prefix = keyOf(siteId, '');
    for (const key of this.cache.keys()) if (key.startsWith(prefix)) this.cache.delete(key);
  }

  close(): void {
    this.unsubscribe();
  }
}

const keyOf = (siteId: string, addonIdOrName: string) => `${siteId}\u0000${addonIdOrName}`;

function enabled(resolved: ResolvedInstallation): ResolvedInstallation {
  if (!resolved.installation.enabled) {
    throw new ConflictError(`Addon "${resolved.addon.name}" is disabled on this site.`);
  }
  return resolved;
}
