import type { DbClient } from '../infrastructure/database/database.js';
import { translating } from '../infrastructure/database/prisma-errors.js';
import { isUuid } from '../shared/ids.js';
import type { Site } from '../generated/prisma/client.js';

export type SiteRecord = Site;

export class SiteRepository {
  constructor(private readonly db: DbClient) {}

  findById(id: string): Promise<SiteRecord | null> {
    if (!isUuid(id)) return Promise.resolve(null);
    return this.db.site.findUnique({ where: { id } });
  }

  /**
   * Locks one site row for the rest of the transaction (null: no such site). `NO KEY UPDATE`: rows
   * that reference the site (keys, installations) can still be written meanwhile.
   */
  async lockById(id: string): Promise<SiteRecord | null> {
    if (!isUuid(id)) return null;
    await this.db.$executeRaw`SELECT 1 FROM "Site" WHERE id = ${id}::uuid FOR NO KEY UPDATE`;
    return this.findById(id);
  }

  findByIds(ids: readonly string[]): Promise<SiteRecord[]> {
    return this.db.site.findMany({ where: { id: { in: ids.filter(isUuid) } } });
  }

  list(): Promise<SiteRecord[]> {
    return this.db.site.findMany({ orderBy: { createdAt: 'asc' } });
  }

  create(data: { name: string; domain: string | null }): Promise<SiteRecord> {
    return translating('Site', data.domain ?? data.name, () => this.db.site.create({ data }));
  }
}
