import type { DbClient } from '../infrastructure/database/database.js';
import { translating } from '../infrastructure/database/prisma-errors.js';
import type { ApiKeyRole } from '../generated/prisma/client.js';

export interface ApiKeyRecord {
  id: string;
  name: string;
  prefix: string;
  role: ApiKeyRole;
  siteId: string | null;
  developerId: string | null;
  createdAt: Date;
  revokedAt: Date | null;
}

const select = {
  id: true,
  name: true,
  prefix: true,
  role: true,
  siteId: true,
  developerId: true,
  createdAt: true,
  revokedAt: true,
} as const;

/** API keys and developers, stored by hash only. */
export class ApiKeyRepository {
  constructor(private readonly db: DbClient) {}

  findActiveByHash(hash: string): Promise<ApiKeyRecord | null> {
    return this.db.apiKey.findFirst({ where: { hash, revokedAt: null }, select });
  }

  create(data: {
    name: string;
    prefix: string;
    hash: string;
    role: ApiKeyRole;
    siteId?: string | null;
    developerId?: string | null;
  }): Promise<ApiKeyRecord> {
    return translating('API key', data.name, () => this.db.apiKey.create({ data, select }));
  }

  /** Creates the key unless one with this hash exists (bootstrap admin key on every start). */
  async upsertByHash(data: { name: string; prefix: string; hash: string; role: ApiKeyRole }): Promise<void> {
    await this.db.apiKey.upsert({ where: { hash: data.hash }, create: data, update: { revokedAt: null } });
  }

  list(filter: { siteId?: string; developerId?: string }): Promise<ApiKeyRecord[]> {
    return this.db.apiKey.findMany({ where: filter, select, orderBy: { createdAt: 'asc' } });
  }

  async revoke(id: string): Promise<ApiKeyRecord> {
    return translating('API key', id, () =>
      this.db.apiKey.update({ where: { id }, data: { revokedAt: new Date() }, select }),
    );
  }

  async findOrCreateDeveloper(name: string): Promise<{ id: string; name: string }> {
    return this.db.developer.upsert({
      where: { name },
      create: { name },
      update: {},
      select: { id: true, name: true },
    });
  }
}
