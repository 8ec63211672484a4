import type { DbClient } from '../infrastructure/database/database.js';
import { Prisma } from '../generated/prisma/client.js';

export interface StorageScope {
  addonId: string;
  siteId: string;
}

/**
 * The order keys are listed in: by Unicode code point (PostgreSQL's "C" collation on UTF-8), the
 * same whatever the database's collation, so a call's unwritten keys merge into a stored page.
 */
export function compareKeys(a: string, b: string): number {
  if (a === b) return 0;
  const left = a[Symbol.iterator]();
  const right = b[Symbol.iterator]();
  for (;;) {
    const l = left.next();
    const r = right.next();
    if (l.done || r.done) return l.done ? (r.done ? 0 : -1) : 1;
    const difference = l.value.codePointAt(0)! - r.value.codePointAt(0)!;
    if (difference !== 0) return difference;
  }
}

/**
 * ctx.storage rows: one key-value space per addon and site. Writes of addon calls are committed
 * with their other effects (see EffectsRepository); this class reads, and clears on uninstall.
 */
export class AddonStorageRepository {
  constructor(private readonly db: DbClient) {}

  async get(scope: StorageScope, key: string): Promise<unknown | null> {
    const row = await this.db.addonStorage.findUnique({
      where: { addonId_siteId_key: { ...scope, key } },
      select: { value: true },
    });
    return row ? row.value : null;
  }

  async has(scope: StorageScope, key: string): Promise<boolean> {
    const row = await this.db.addonStorage.findUnique({
      where: { addonId_siteId_key: { ...scope, key } },
      select: { key: true },
    });
    return row !== null;
  }

  /** Bytes and keys used by the scope, not counting `exceptKeys` (keys about to be replaced). */
  async usedBytes(scope: StorageScope, exceptKeys: string[]): Promise<{ bytes: number; keys: number }> {
    const result = await this.db.addonStorage.aggregate({
      where: { ...scope, key: { notIn: exceptKeys } },
      _sum: { sizeBytes: true },
      _count: true,
    });
    return { bytes: result._sum.sizeBytes ?? 0, keys: result._count };
  }

  /** Keys in code point order (see {@link compareKeys}), after `cursor`, starting with `prefix`. */
  async list(scope: StorageScope, opts: { prefix?: string; limit: number; cursor?: string }) {
    const where = [
      Prisma.sql`"addonId" = ${scope.addonId}::uuid`,
      Prisma.sql`"siteId" = ${scope.siteId}::uuid`,
    ];
    if (opts.prefix) where.push(Prisma.sql`starts_with(key, ${opts.prefix})`);
    if (opts.cursor !== undefined) where.push(Prisma.sql`key COLLATE "C" > ${opts.cursor}`);
    const rows = await this.db.$queryRaw<{ key: string }[]>`
      SELECT key FROM "AddonStorage" WHERE ${Prisma.join(where, ' AND ')}
      ORDER BY key COLLATE "C" LIMIT ${opts.limit + 1}`;
    const keys = rows.slice(0, opts.limit).map((r) => r.key);
    return { keys, cursor: rows.length > opts.limit ? keys[keys.length - 1] : null };
  }

  /** Removes everything an addon stored on a site (uninstall). */
  async clear(scope: StorageScope): Promise<void> {
    await this.db.addonStorage.deleteMany({ where: scope });
  }
}
