import type { DbClient } from '../infrastructure/database/database.js';
import type { Prisma } from '../generated/prisma/client.js';

export interface StorageScope {
  addonId: string;
  siteId: string;
}

/** ctx.storage rows: one key-value space per addon and site. */
export class AddonStorageRepository {
  constructor(private readonly db: DbClient) {}

  async get(scope: StorageScope, key: string): Promise<unknown | null> {
    const row = await this.db.addonStorage.findUnique({
      where: { addonId_siteId_key: { ...scope, key } },
      select: { value: true },
    });
    return row ? row.value : null;
  }

  /** Bytes used by the scope, not counting `exceptKey` (the key about to be replaced). */
  async usedBytes(scope: StorageScope, exceptKey: string): Promise<{ bytes: number; keys: number }> {
    const result = await this.db.addonStorage.aggregate({
      where: { ...scope, key: { not: exceptKey } },
      _sum: { sizeBytes: true },
      _count: true,
    });
    return { bytes: result._sum.sizeBytes ?? 0, keys: result._count };
  }

  async set(scope: StorageScope, key: string, value: unknown, sizeBytes: number): Promise<void> {
    const json = value as Prisma.InputJsonValue;
    await this.db.addonStorage.upsert({
      where: { addonId_siteId_key: { ...scope, key } },
      create: { ...scope, key, value: json, sizeBytes },
      update: { value: json, sizeBytes },
    });
  }

  async delete(scope: StorageScope, key: string): Promise<boolean> {
    const result = await this.db.addonStorage.deleteMany({ where: { ...scope, key } });
    return result.count > 0;
  }

  /** Keys in order, after `cursor`, starting with `prefix`. */
  async list(scope: StorageScope, opts: { prefix?: string; limit: number; cursor?: string }) {
    const rows = await this.db.addonStorage.findMany({
      where: {
        ...scope,
        key: {
          ...(opts.prefix ? { startsWith: opts.prefix } : {}),
          ...(opts.cursor ? { gt: opts.cursor } : {}),
        },
      },
      select: { key: true },
      orderBy: { key: 'asc' },
      take: opts.limit + 1,
    });
    const keys = rows.slice(0, opts.limit).map((r) => r.key);
    return { keys, cursor: rows.length > opts.limit ? keys[keys.length - 1] : null };
  }

  /** Removes everything an addon stored on a site (uninstall). */
  async clear(scope: StorageScope): Promise<void> {
    await this.db.addonStorage.deleteMany({ where: scope });
  }
}
