import type { DbClient } from '../infrastructure/database/database.js';
import { translating } from '../infrastructure/database/prisma-errors.js';
import { isUuid } from '../shared/ids.js';
import { Prisma } from '../generated/prisma/client.js';
import type {
  Addon,
  AddonVersion,
  Widget,
  ApiFunction,
  AddonDependency,
  AddonCategory,
  WidgetCategory,
} from '../generated/prisma/client.js';
import type { AddonManifest } from './addon-manifest.js';

export type AddonRecord = Addon;
/** A version without its source and WebAssembly bytes, which lists never need. */
export type AddonVersionSummary = Omit<AddonVersion, 'source' | 'wasm'>;
export type WidgetRecord = Widget;
export type ApiFunctionRecord = ApiFunction;
export type AddonDependencyRecord = AddonDependency;

const versionSummary = {
  id: true,
  addonId: true,
  version: true,
  manifest: true,
  sourceSha256: true,
  permissions: true,
  createdAt: true,
} as const;

/** A page of search matches and how many match in all (every page, not just this one). */
export interface AddonSearchPage {
  rows: AddonRecord[];
  totalCount: number;
}

/** Joins the columns in "searchText": no match of a search without it spans two columns. */
const SEARCH_SEPARATOR = '\u001f';

/** `text` as a LIKE pattern matching itself anywhere: the user's `%`, `_` and `\` match literally. */
export function containsPattern(text: string): string {
  return `%${text.replace(/[\\%_]/g, (c) => `\\${c}`)}%`;
}

export type AddonSearchFilter = AddonListFilter & { search: string };

/**
 * The search statement: a page of matches, each row carrying the number of matches in all
 * (`totalCount`). Exported so a test can check that PostgreSQL plans it on the trigram index.
 */
export function addonSearchSql(filter: AddonSearchFilter): Prisma.Sql {
  const pattern = containsPattern(filter.search);
  // A search holding the separator itself could match across two columns: test each one too.
  const exact = filter.search.includes(SEARCH_SEPARATOR)
    ? Prisma.sql`AND ("name" ILIKE ${pattern} OR "displayName" ILIKE ${pattern} OR "description" ILIKE ${pattern})`
    : Prisma.empty;
  const category = filter.category
    ? Prisma.sql`AND category = ${filter.category}::"AddonCategory"`
    : Prisma.empty;
  const after = filter.afterName ?? null;
  // "searchText" (migration add_addon_search_index) is the three columns lowercased and joined by
  // U+001F, under a trigram index. The window counts every match before the cursor narrows them.
  return Prisma.sql`
    SELECT * FROM (
      SELECT a.*, count(*) OVER ()::int AS "totalCount"
        FROM "Addon" a
       WHERE a."searchText" LIKE lower(${pattern}) ${exact} ${category}
    ) matches
    WHERE ${after}::text IS NULL OR name > ${after}::text
    ORDER BY name
    LIMIT ${filter.take}`;
}

export interface AddonListFilter {
  category?: AddonCategory | null;
  search?: string | null;
  /** Names sort the list; the page starts after this one. */
  afterName?: string | null;
  take: number;
}

/** Addons, their immutable versions and what each version declares. */
export class AddonRepository {
  constructor(private readonly db: DbClient) {}

  /** Addons a developer owns, its row locked so that concurrent first publishes count in turn. */
  async lockAndCountOwned(developerId: string): Promise<number> {
    await this.db.$executeRaw`SELECT 1 FROM "Developer" WHERE id = ${developerId}::uuid FOR UPDATE`;
    return this.db.addon.count({ where: { ownerId: developerId } });
  }

  /**
   * Adds `bytes` to what a developer's versions take, unless that would pass `max` (null: no
   * bound), in one statement, so concurrent publishes of one developer cannot both fit in what is
   * left. Resolves to what was taken before and whether the bytes were added (a developer that
   * no longer exists has nothing to charge).
   */
  async chargeDeveloper(
    developerId: string,
    bytes: number,
    max: number | null,
  ): Promise<{ added: boolean; usedBytes: number }> {
    const charged = await this.db.$queryRaw<{ used: bigint }[]>`
      UPDATE "Developer" SET "storedBytes" = "storedBytes" + ${bytes}
       WHERE id = ${developerId}::uuid AND (${max}::bigint IS NULL OR "storedBytes" + ${bytes} <= ${max}::bigint)
      RETURNING "storedBytes" - ${bytes} AS used`;
    if (charged.length > 0) return { added: true, usedBytes: Number(charged[0].used) };
    const developer = await this.db.developer.findUnique({
      where: { id: developerId },
      select: { storedBytes: true },
    });
    return { added: developer === null, usedBytes: Number(developer?.storedBytes ?? 0) };
  }

  /** What a developer's versions take and how many addons it owns; null: no such developer. */
  async developerUsage(developerId: string): Promise<{ storedBytes: number; addons: number } | null> {
    if (!isUuid(developerId)) return null;
    const developer = await this.db.developer.findUnique({
      where: { id: developerId },
      select: { storedBytes: true, _count: { select: { addons: true } } },
    });
    return developer && { storedBytes: Number(developer.storedBytes), addons: developer._count.addons };
  }

  /** Gives `bytes` back to what a developer's versions take (never below nothing). */
  async refundDeveloper(developerId: string, bytes: number): Promise<void> {
    await this.db.$executeRaw`
      UPDATE "Developer" SET "storedBytes" = GREATEST(0, "storedBytes" - ${bytes})
       WHERE id = ${developerId}::uuid`;
  }

  /** Sites that have this version installed. */
  countInstallationsOf(versionId: string): Promise<number> {
    return this.db.installation.count({ where: { addonVersionId: versionId } });
  }

  /** Each distinct range other addons' versions ask of the addon `name`, with one addon asking it. */
  dependencyRangesOn(name: string): Promise<{ range: string; dependent: string }[]> {
    return this.db.$queryRaw<{ range: string; dependent: string }[]>`
      SELECT DISTINCT ON (d.range) d.range, a.name AS dependent
        FROM "AddonDependency" d
        JOIN "AddonVersion" v ON v.id = d."addonVersionId"
        JOIN "Addon" a ON a.id = v."addonId"
       WHERE d."addonName" = ${name}
       ORDER BY d.range, a.name`;
  }

  /** Deletes a version with its widgets, functions and dependencies; refused while installed. */
  async deleteVersion(id: string, key: string): Promise<void> {
    await translating('Version', key, () => this.db.addonVersion.delete({ where: { id } }));
  }

  findById(id: string): Promise<AddonRecord | null> {
    if (!isUuid(id)) return Promise.resolve(null);
    return this.db.addon.findUnique({ where: { id } });
  }

  findByName(name: string): Promise<AddonRecord | null> {
    return this.db.addon.findUnique({ where: { name } });
  }

  /** Accepts an id or the unique name, as the API does. */
  findByIdOrName(idOrName: string): Promise<AddonRecord | null> {
    return isUuid(idOrName) ? this.findById(idOrName) : this.findByName(idOrName);
  }

  findByIds(ids: readonly string[]): Promise<AddonRecord[]> {
    return this.db.addon.findMany({ where: { id: { in: ids.filter(isUuid) } } });
  }

  findByNames(names: readonly string[]): Promise<AddonRecord[]> {
    return this.db.addon.findMany({ where: { name: { in: [...names] } } });
  }

  /**
   * The addons named, their rows share-locked until the transaction ends: a version deletion (which
   * locks the row for update) waits, so it cannot remove a version a dependent being published counts on.
   */
  async lockSharedByNames(names: readonly string[]): Promise<AddonRecord[]> {
    await this.db.$executeRaw`SELECT 1 FROM "Addon" WHERE name = ANY(${[...names]}::text[]) FOR SHARE`;
    return this.findByNames(names);
  }

  /** Locks the addon row until the transaction ends, so two publishes of one addon serialise. */
  async lockByName(name: string): Promise<AddonRecord | null> {
    const rows = await this.db.$queryRaw<
      { id: string }[]
    >`SELECT id FROM "Addon" WHERE name = ${name} FOR UPDATE`;
    return rows.length > 0 ? this.findById(rows[0].id) : null;
  }

  /**
   * Addons whose name, display name or description contains `filter.search` (case-insensitive),
   * sorted by name, with the number of matches: one statement, one index scan for both.
   */
  async search(filter: AddonSearchFilter): Promise<AddonSearchPage> {
    const rows = await this.db.$queryRaw<(AddonRecord & { totalCount: number; searchText: string })[]>(
      addonSearchSql(filter),
    );
    if (rows.length === 0) {
      // Past the last page no row carries the count: ask again without the cursor.
      const first = filter.afterName ? await this.search({ ...filter, afterName: null, take: 1 }) : null;
      return { rows, totalCount: first?.totalCount ?? 0 };
    }
    return {
      rows: rows.map(({ totalCount: _, searchText: __, ...addon }) => addon),
      totalCount: rows[0].totalCount,
    };
  }

  /** A page of the catalogue sorted by name (text search is {@link search}). */
  list(filter: Omit<AddonListFilter, 'search'>): Promise<AddonRecord[]> {
    const where: Prisma.AddonWhereInput = {};
    if (filter.category) where.category = filter.category;
    if (filter.afterName) where.name = { gt: filter.afterName };
    return this.db.addon.findMany({ where, orderBy: { name: 'asc' }, take: filter.take });
  }

  count(filter: Pick<AddonListFilter, 'category'>): Promise<number> {
    return this.db.addon.count({ where: filter.category ? { category: filter.category } : {} });
  }

  createAddon(data: {
    name: string;
    displayName: string;
    description: string;
    author: string;
    category: AddonCategory;
    ownerId: string | null;
  }): Promise<AddonRecord> {
    return translating('Addon', data.name, () => this.db.addon.create({ data }));
  }

  /** Inserts a version with its widgets, functions and dependencies (4 statements). */
  async createVersion(
    addon: AddonRecord,
    manifest: AddonManifest,
    source: { text: string; sha256: string; wasm: Uint8Array | null },
  ): Promise<AddonVersionSummary> {
    const version = await translating('Version', `${addon.name}@${manifest.version}`, () =>
      this.db.addonVersion.create({
        data: {
          addonId: addon.id,
          version: manifest.version,
          manifest: manifest as unknown as Prisma.InputJsonValue,
          source: source.text,
          sourceSha256: source.sha256,
          wasm: source.wasm ? Buffer.from(source.wasm) : null,
          permissions: manifest.permissions,
        },
        select: versionSummary,
      }),
    );
    if (manifest.widgets.length > 0) {
      await this.db.widget.createMany({
        data: manifest.widgets.map((w) => ({
          addonId: addon.id,
          addonVersionId: version.id,
          name: w.name,
          displayName: w.displayName,
          description: w.description,
          category: w.category as WidgetCategory,
          configSchema: w.configSchema as Prisma.InputJsonValue,
          previewImage: w.previewImage,
          responsive: w.responsive,
          varyOn: w.varyOn,
        })),
      });
    }
    if (manifest.functions.length > 0) {
      await this.db.apiFunction.createMany({
        data: manifest.functions.map((f) => ({
          addonId: addon.id,
          addonVersionId: version.id,
          name: f.name,
          description: f.description,
          readonly: f.readonly,
          inputSchema: (f.inputSchema ?? undefined) as Prisma.InputJsonValue | undefined,
        })),
      });
    }
    const deps = Object.entries(manifest.dependencies);
    if (deps.length > 0) {
      await this.db.addonDependency.createMany({
        data: deps.map(([addonName, range]) => ({ addonVersionId: version.id, addonName, range })),
      });
    }
    return version;
  }

  updateListing(
    id: string,
    data: {
      displayName: string;
      description: string;
      author: string;
      category: AddonCategory;
      latestVersionId: string;
    },
  ): Promise<AddonRecord> {
    return this.db.addon.update({ where: { id }, data });
  }

  versionsByIds(ids: readonly string[]): Promise<AddonVersionSummary[]> {
    return this.db.addonVersion.findMany({ where: { id: { in: [...ids] } }, select: versionSummary });
  }

  versionsByAddonIds(addonIds: readonly string[]): Promise<AddonVersionSummary[]> {
    return this.db.addonVersion.findMany({
      where: { addonId: { in: [...addonIds] } },
      select: versionSummary,
      orderBy: { createdAt: 'desc' },
    });
  }

  findVersion(addonId: string, version: string): Promise<AddonVersionSummary | null> {
    return this.db.addonVersion.findUnique({
      where: { addonId_version: { addonId, version } },
      select: versionSummary,
    });
  }

  /** The full version, source included, for the sandbox. */
  findVersionWithSource(id: string): Promise<AddonVersion | null> {
    return this.db.addonVersion.findUnique({ where: { id } });
  }

  widgetsByVersionIds(ids: readonly string[]): Promise<WidgetRecord[]> {
    return this.db.widget.findMany({ where: { addonVersionId: { in: [...ids] } }, orderBy: { name: 'asc' } });
  }

  functionsByVersionIds(ids: readonly string[]): Promise<ApiFunctionRecord[]> {
    return this.db.apiFunction.findMany({
      where: { addonVersionId: { in: [...ids] } },
      orderBy: { name: 'asc' },
    });
  }

  dependenciesByVersionIds(ids: readonly string[]): Promise<AddonDependencyRecord[]> {
    return this.db.addonDependency.findMany({
      where: { addonVersionId: { in: [...ids] } },
      orderBy: { addonName: 'asc' },
    });
  }

  /** Widgets of every addon's latest version, optionally of one category. */
  latestWidgets(category: WidgetCategory | null | undefined): Promise<WidgetRecord[]> {
    return this.db.widget.findMany({
      where: { ...(category ? { category } : {}), addonVersion: { latestOf: { isNot: null } } },
      orderBy: [{ addonId: 'asc' }, { name: 'asc' }],
    });
  }

  /** One widget of an addon's latest version. */
  latestWidget(latestVersionId: string, name: string): Promise<WidgetRecord | null> {
    return this.db.widget.findUnique({
      where: { addonVersionId_name: { addonVersionId: latestVersionId, name } },
    });
  }
}
