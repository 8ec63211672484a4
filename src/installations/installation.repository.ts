import type { DbClient } from '../infrastructure/database/database.js';
import { translating } from '../infrastructure/database/prisma-errors.js';
import { isUuid } from '../shared/ids.js';
import type { Installation, Prisma } from '../generated/prisma/client.js';

export type InstallationRecord = Installation;

/** Which addons a site has installed, at which pinned version, with which config. */
export class InstallationRepository {
  constructor(private readonly db: DbClient) {}

  find(siteId: string, addonId: string): Promise<InstallationRecord | null> {
    return this.db.installation.findUnique({ where: { siteId_addonId: { siteId, addonId } } });
  }

  /** Locks one installation row for the rest of the transaction. */
  async lock(siteId: string, addonId: string): Promise<InstallationRecord | null> {
    await this.db
      .$executeRaw`SELECT 1 FROM "Installation" WHERE "siteId" = ${siteId}::uuid AND "addonId" = ${addonId}::uuid FOR UPDATE`;
    return this.find(siteId, addonId);
  }

  countBySite(siteId: string): Promise<number> {
    return this.db.installation.count({ where: { siteId } });
  }

  listBySite(siteId: string): Promise<InstallationRecord[]> {
    if (!isUuid(siteId)) return Promise.resolve([]);
    return this.db.installation.findMany({ where: { siteId }, orderBy: { createdAt: 'asc' } });
  }

  /** Installations on a site whose pinned version depends on the addon named `addonName`. */
  dependents(
    siteId: string,
    addonName: string,
  ): Promise<(InstallationRecord & { range: string; addonName: string })[]> {
    return this.db.installation
      .findMany({
        where: { siteId, addonVersion: { dependencies: { some: { addonName } } } },
        include: {
          addon: { select: { name: true } },
          addonVersion: { select: { dependencies: { where: { addonName }, select: { range: true } } } },
        },
      })
      .then((rows) =>
        rows.map(({ addon, addonVersion, ...row }) => ({
          ...row,
          addonName: addon.name,
          range: addonVersion.dependencies[0].range,
        })),
      );
  }

  create(data: {
    siteId: string;
    addonId: string;
    addonVersionId: string;
    config: unknown;
    enabled: boolean;
    grantedPermissions: string[];
  }): Promise<InstallationRecord> {
    return translating('Installation', data.addonId, () =>
      this.db.installation.create({ data: { ...data, config: data.config as Prisma.InputJsonValue } }),
    );
  }

  update(
    id: string,
    data: { addonVersionId?: string; config?: unknown; enabled?: boolean; grantedPermissions?: string[] },
  ): Promise<InstallationRecord> {
    return translating('Installation', id, () =>
      this.db.installation.update({
        where: { id },
        data: { ...data, config: data.config as Prisma.InputJsonValue | undefined },
      }),
    );
  }

  async delete(id: string): Promise<void> {
    await translating('Installation', id, () => this.db.installation.delete({ where: { id } }));
  }

  findByIds(ids: readonly string[]): Promise<InstallationRecord[]> {
    return this.db.installation.findMany({ where: { id: { in: ids.filter(isUuid) } } });
  }
}
