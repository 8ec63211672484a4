import { createHash } from 'node:crypto';
import semver from 'semver';
import type { Database } from '../infrastructure/database/database.js';
import type { PubSub } from '../infrastructure/pub-sub/pub-sub.js';
import {
  AppError,
  ConflictError,
  ErrorCode,
  ForbiddenError,
  NotFoundError,
  ValidationError,
  type FieldProblem,
} from '../errors/index.js';
import { requireAuthenticated, type Actor } from '../auth/actor.js';
import type { AddonCategory, WidgetCategory } from '../generated/prisma/client.js';
import { parseAddonManifest, type AddonManifest } from './addon-manifest.js';
import {
  AddonRepository,
  type AddonRecord,
  type AddonVersionSummary,
  type WidgetRecord,
} from './addon.repository.js';
import { RefreshingCache } from '../shared/refreshing-cache.js';
import type { ResultSources } from '../shared/result-sources.js';
import type { SandboxPool } from '../sandbox/index.js';
import { compareExports, declaredEntries, probeExports } from './addon-exports.js';

/** Source size cap: addons are bundled scripts, not asset stores. */
export const MAX_SOURCE_BYTES = 2 * 1024 * 1024;
export const MAX_WASM_BYTES = 8 * 1024 * 1024;

/**
 * What a version takes of its owner's registry quota: UTF-8 bytes of the source and the manifest
 * JSON, and the WebAssembly module.
 */
function storedBytes(manifest: AddonManifest, source: string, wasm: Uint8Array | null): number {
  return Buffer.byteLength(source) + (wasm?.byteLength ?? 0) + Buffer.byteLength(JSON.stringify(manifest));
}

/** What the registry keeps of one developer and one addon (REGISTRY_MAX_* settings). */
export interface RegistryLimits {
  /** Bytes of the versions of a developer's addons (source, WebAssembly, manifest JSON). */
  maxBytesPerDeveloper: number;
  /** Published versions of one addon. */
  maxVersionsPerAddon: number;
  /** Addons one developer owns. */
  maxAddonsPerDeveloper: number;
}

const DEFAULT_REGISTRY_LIMITS: RegistryLimits = {
  maxBytesPerDeveloper: 1024 * 1024 * 1024,
  maxVersionsPerAddon: 1000,
  maxAddonsPerDeveloper: 100,
};
const MAX_PAGE = 100;

export interface PublishInput {
  manifest: unknown;
  source: unknown;
  /** Optional WebAssembly module, base64-encoded. */
  wasmBase64?: unknown;
}

/** What a developer's addons take of the registry, with the bounds (see {@link RegistryLimits}). */
export interface RegistryUsage {
  developerId: string;
  storedBytes: number;
  maxBytes: number;
  addons: number;
  maxAddons: number;
  maxVersionsPerAddon: number;
}

export interface PublishResult {
  addon: AddonRecord;
  version: AddonVersionSummary;
}

export interface AddonPage {
  addons: AddonRecord[];
  hasNextPage: boolean;
  totalCount: () => Promise<number>;
}

/** Listing cursors are opaque to clients; inside they are the last name seen. */
export function encodeCursor(name: string): string {
  return Buffer.from(`addon:${name}`).toString('base64url');
}

function decodeCursor(cursor: string): string {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!text.startsWith('addon:')) {
    throw ValidationError.of('arguments', [
      { field: 'after', message: 'is not a cursor returned by this API' },
    ]);
  }
  return text.slice('addon:'.length);
}

/** The topic told `{ addonId }` after a version is published. */
export const ADDONS_PUBLISHED_CHANNEL = 'addons.published';

/** The registry's pub/sub topics. */
export interface AddonTopics {
  [ADDONS_PUBLISHED_CHANNEL]: { addonId: string };
}

/** The addon registry: publishing versions and reading the catalogue. */
export class AddonService {
  /**
   * `Query.widget` lookups by (addon id or name, widget name): on every widget render through the
   * GraphQL `Widget` type, so kept in memory. Only a publish changes the answer; it clears every
   * instance's cache through the pub/sub, and the TTL bounds staleness if a message is lost. A
   * lookup in use is re-read in the background when it expires, so renders never wait on it.
   */
  private readonly widgetLookups: RefreshingCache<WidgetRecord>;
  private readonly unsubscribe: () => void;

  private readonly pubSub?: PubSub<AddonTopics>;
  private readonly pool: SandboxPool;
  private readonly limits: RegistryLimits;

  constructor(
    private readonly database: Database,
    deps: {
      /** Publishing loads the module here to check its exports. */
      pool: SandboxPool;
      pubSub?: PubSub<AddonTopics>;
      widgetTtlMs?: number;
      limits?: RegistryLimits;
    },
  ) {
    const { pubSub, widgetTtlMs = 30_000 } = deps;
    this.pubSub = pubSub;
    this.pool = deps.pool;
    this.limits = deps.limits ?? DEFAULT_REGISTRY_LIMITS;
    this.widgetLookups = new RefreshingCache(
      (key) => {
        // Both parts come from the caller, so the key is their JSON pair, not a joined string.
        const [addonIdOrName, widgetName] = JSON.parse(key) as [string, string];
        return this.readWidget(addonIdOrName, widgetName);
      },
      // Widget records carry the author's configSchema: bounded in bytes too.
      { ttlMs: widgetTtlMs, maxEntries: 10_000, maxBytes: 32 * 1024 * 1024 },
    );
    this.unsubscribe =
      pubSub?.listen(ADDONS_PUBLISHED_CHANNEL, () => this.widgetLookups.clear()).stop ?? (() => {});
  }

  /** Stops listening to the pub/sub. */
  close(): void {
    this.unsubscribe();
    this.widgetLookups.clear();
  }

  private get addons(): AddonRepository {
    return new AddonRepository(this.database.prisma);
  }

  /**
   * Publishes a version. The first publish of a name creates the addon, owned by the developer who
   * published it; later versions may come only from that developer or an admin, and must be
   * greater than every published version.
   */
  async publish(actor: Actor, input: PublishInput): Promise<PublishResult> {
    requireAuthenticated(actor);
    if (actor.kind === 'site')
      throw new ForbiddenError('Site keys cannot publish addons; use a developer key.');
    const manifest = parseAddonManifest(input.manifest);
    const source = checkSource(input.source, input.wasmBase64);
    await this.checkExports(input.manifest as Record<string, unknown>, manifest, source);

    const result = await this.database.transaction(async (tx) => {
      const addons = new AddonRepository(tx);
      await this.checkDependencies(addons, manifest);
      let addon = await addons.lockByName(manifest.name);
      if (addon) {
        if (actor.kind === 'developer' && addon.ownerId !== actor.developerId) {
          throw new ForbiddenError(`Addon "${addon.name}" belongs to another developer.`);
        }
        const published = (await addons.versionsByAddonIds([addon.id])).map((v) => v.version);
        if (published.includes(manifest.version)) {
          throw new ConflictError(
            `Version ${manifest.version} of "${addon.name}" is already published; published versions are immutable.`,
          );
        }
        const highest = semver.rsort([...published])[0];
        if (highest && !semver.gt(manifest.version, highest)) {
          throw ValidationError.of('manifest', [
            {
              field: 'manifest.version',
              message: `must be greater than ${highest}, the highest published version`,
            },
          ]);
        }
        if (published.length >= this.limits.maxVersionsPerAddon) {
          throw new AppError(
            ErrorCode.StorageQuotaExceeded,
            `"${addon.name}" has ${published.length} published versions, the most the registry keeps of one addon (REGISTRY_MAX_VERSIONS_PER_ADDON).`,
          );
        }
      } else {
        if (actor.kind === 'developer') {
          const owned = await addons.lockAndCountOwned(actor.developerId);
          if (owned >= this.limits.maxAddonsPerDeveloper) {
            throw new AppError(
              ErrorCode.StorageQuotaExceeded,
              `This developer owns ${owned} addons, the most the registry keeps of one developer (REGISTRY_MAX_ADDONS_PER_DEVELOPER); publish new versions of those instead.`,
            );
          }
        }
        addon = await addons.createAddon({
          name: manifest.name,
          displayName: manifest.displayName,
          description: manifest.description,
          author: manifest.author || manifest.name,
          category: manifest.category as AddonCategory,
          ownerId: actor.kind === 'developer' ? actor.developerId : null,
        });
      }
      if (addon.ownerId) await this.charge(addons, addon.ownerId, actor, manifest, source);
      const version = await addons.createVersion(addon, manifest, source);
      addon = await addons.updateListing(addon.id, {
        displayName: manifest.displayName,
        description: manifest.description,
        author: manifest.author || addon.author,
        category: manifest.category as AddonCategory,
        latestVersionId: version.id,
      });
      return { addon, version };
    });
    this.widgetLookups.clear();
    await this.pubSub?.publish(ADDONS_PUBLISHED_CHANNEL, { addonId: result.addon.id }).catch(() => undefined);
    return result;
  }

  /**
   * Counts the version against its owner's registry quota; a developer's publish past it is
   * refused (an admin's is counted but not refused).
   */
  private async charge(
    addons: AddonRepository,
    ownerId: string,
    actor: Actor,
    manifest: AddonManifest,
    source: { text: string; wasm: Uint8Array | null },
  ): Promise<void> {
    const bytes = storedBytes(manifest, source.text, source.wasm);
    const max = actor.kind === 'developer' ? this.limits.maxBytesPerDeveloper : null;
    const { added, usedBytes } = await addons.chargeDeveloper(ownerId, bytes, max);
    if (!added) {
      throw new AppError(
        ErrorCode.StorageQuotaExceeded,
        `This version takes ${bytes} bytes, and this developer's addons take ${usedBytes} of the ${max} bytes the registry keeps per developer (REGISTRY_MAX_BYTES_PER_DEVELOPER).`,
      );
    }
  }

  /** What a developer's addons take of the registry: a developer's own, or any one's for an admin. */
  async registryUsage(actor: Actor, developerId?: string | null): Promise<RegistryUsage> {
    requireAuthenticated(actor);
    let id: string;
    if (actor.kind === 'developer') {
      if (developerId && developerId !== actor.developerId)
        throw new ForbiddenError("A developer key can only read its own developer's registry usage.");
      id = actor.developerId;
    } else if (actor.kind === 'admin') {
      if (!developerId) {
        throw ValidationError.of('arguments', [
          { field: 'developerId', message: 'is required with an admin key' },
        ]);
      }
      id = developerId;
    } else {
      throw new ForbiddenError('Site keys have no registry usage; use a developer key.');
    }
    const usage = await new AddonRepository(this.database.prisma).developerUsage(id);
    if (!usage) throw new NotFoundError('Developer', id);
    return {
      developerId: id,
      ...usage,
      maxBytes: this.limits.maxBytesPerDeveloper,
      maxAddons: this.limits.maxAddonsPerDeveloper,
      maxVersionsPerAddon: this.limits.maxVersionsPerAddon,
    };
  }

  /**
   * Deletes a published version no site has installed and gives its bytes back to the owner's
   * registry quota (the owner or an admin). The latest version stays, so version numbers only grow
   * and a deleted one is never published again with other code; so does a version that is the only
   * one satisfying another addon's dependency range, so one developer cannot break another's installs.
   */
  async deleteVersion(actor: Actor, input: { addon: string; version: string }): Promise<boolean> {
    requireAuthenticated(actor);
    if (actor.kind === 'site')
      throw new ForbiddenError('Site keys cannot delete versions; use a developer key.');
    const number = input.version.length <= 256 ? semver.valid(input.version) : null;
    if (!number) {
      throw ValidationError.of('arguments', [{ field: 'version', message: 'must be a semantic version' }]);
    }
    await this.database.transaction(async (tx) => {
      const addons = new AddonRepository(tx);
      const found = await addons.findByIdOrName(input.addon);
      const addon = found && (await addons.lockByName(found.name));
      if (!addon) throw new NotFoundError('Addon', input.addon);
      if (actor.kind === 'developer' && addon.ownerId !== actor.developerId) {
        throw new ForbiddenError(`Addon "${addon.name}" belongs to another developer.`);
      }
      const key = `${addon.name}@${number}`;
      const version = await addons.findVersion(addon.id, number);
      if (!version) throw new NotFoundError('Version', key);
      if (version.id === addon.latestVersionId) {
        throw new ConflictError(
          `${key} is the latest version and stays; publish a newer one first, then delete this one.`,
        );
      }
      const installed = await addons.countInstallationsOf(version.id);
      if (installed > 0) {
        throw new ConflictError(
          `${key} is installed on ${installed} site${installed === 1 ? '' : 's'}; they must move off it first.`,
        );
      }
      const others = (await addons.versionsByAddonIds([addon.id]))
        .map((v) => v.version)
        .filter((v) => v !== number);
      for (const { range, dependent } of await addons.dependencyRangesOn(addon.name)) {
        if (semver.satisfies(number, range) && !semver.maxSatisfying(others, range)) {
          throw new ConflictError(
            `${key} is the only version satisfying ${range}, which "${dependent}" depends on.`,
          );
        }
      }
      const full = await addons.findVersionWithSource(version.id);
      await addons.deleteVersion(version.id, key);
      if (addon.ownerId && full) {
        const manifest = full.manifest as unknown as AddonManifest;
        await addons.refundDeveloper(addon.ownerId, storedBytes(manifest, full.source, full.wasm));
      }
    });
    return true;
  }

  /**
   * Loads the module in the sandbox under the addon's own limits and refuses the version unless it
   * exports every function, widget and handler its manifest declares (and only known hooks): a
   * published version is immutable, so code that cannot serve its manifest is never stored.
   */
  private async checkExports(
    raw: Record<string, unknown>,
    manifest: AddonManifest,
    source: { text: string; wasm: Uint8Array | null },
  ): Promise<void> {
    const probed = await probeExports(this.pool, {
      name: manifest.name,
      version: manifest.version,
      source: source.text,
      wasm: source.wasm,
      limits: manifest.limits,
    });
    if (!probed.ok) {
      throw ValidationError.of('addon', [
        { field: 'source', message: `does not load in the sandbox: ${probed.message} [${probed.code}]` },
      ]);
    }
    const { problems } = compareExports(declaredEntries(raw), probed.exports);
    if (problems.length > 0) throw ValidationError.of('addon', problems);
  }

  /** Every dependency must name a published addon with a version in range. */
  private async checkDependencies(addons: AddonRepository, manifest: AddonManifest): Promise<void> {
    const names = Object.keys(manifest.dependencies);
    if (names.length === 0) return;
    const found = await addons.lockSharedByNames(names);
    const versions = await addons.versionsByAddonIds(found.map((a) => a.id));
    const problems: FieldProblem[] = [];
    for (const name of names) {
      const range = manifest.dependencies[name];
      const addon = found.find((a) => a.name === name);
      if (!addon) {
        problems.push({
          field: `manifest.dependencies.${name}`,
          message: `no addon named "${name}" is published`,
        });
        continue;
      }
      const available = versions.filter((v) => v.addonId === addon.id).map((v) => v.version);
      if (!semver.maxSatisfying(available, range)) {
        problems.push({
          field: `manifest.dependencies.${name}`,
          message: `no published version satisfies ${range} (published: ${available.join(', ')})`,
        });
      }
    }
    if (problems.length > 0) throw ValidationError.of('manifest', problems);
  }

  /** `addon(id, name)`: null when nothing matches. */
  async find(args: { id?: string | null; name?: string | null }): Promise<AddonRecord | null> {
    if (!args.id && !args.name) {
      throw ValidationError.of('arguments', [{ field: 'id', message: 'give id or name' }]);
    }
    // `id` accepts the unique name too, as every other argument naming an addon does.
    const addon = args.id
      ? await this.addons.findByIdOrName(args.id)
      : await this.addons.findByName(args.name!);
    if (addon && args.name && addon.name !== args.name) return null;
    return addon;
  }

  /** Resolves an id or a unique name, or fails with NOT_FOUND. */
  async require(idOrName: string): Promise<AddonRecord> {
    const addon = await this.addons.findByIdOrName(idOrName);
    if (!addon) throw new NotFoundError('Addon', idOrName);
    return addon;
  }

  /** A page of the catalogue, sorted by name (Relay cursor pagination). */
  async list(args: {
    category?: AddonCategory | null;
    search?: string | null;
    first?: number | null;
    after?: string | null;
  }): Promise<AddonPage> {
    const first = args.first ?? 20;
    if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE) {
      throw ValidationError.of('arguments', [{ field: 'first', message: `must be from 1 to ${MAX_PAGE}` }]);
    }
    const search = args.search?.trim() || null;
    if (search && search.length > 100) {
      throw ValidationError.of('arguments', [{ field: 'search', message: 'must be at most 100 characters' }]);
    }
    const afterName = args.after ? decodeCursor(args.after) : null;
    if (search) {
      const page = await this.addons.search({ category: args.category, search, afterName, take: first + 1 });
      return {
        addons: page.rows.slice(0, first),
        hasNextPage: page.rows.length > first,
        totalCount: () => Promise.resolve(page.totalCount),
      };
    }
    const rows = await this.addons.list({ category: args.category, afterName, take: first + 1 });
    return {
      addons: rows.slice(0, first),
      hasNextPage: rows.length > first,
      totalCount: () => this.addons.count({ category: args.category }),
    };
  }

  widgets(category: WidgetCategory | null | undefined): Promise<WidgetRecord[]> {
    return this.addons.latestWidgets(category);
  }

  /** One widget of an addon's latest version, by addon id or name and widget name. */
  /**
   * A widget of an addon's latest version. `sources` is told the record stays current while the
   * lookup answers the same record (a publish replaces it).
   */
  async widget(addonIdOrName: string, widgetName: string, sources?: ResultSources): Promise<WidgetRecord> {
    const key = JSON.stringify([addonIdOrName, widgetName]);
    // Failures (not found included) are not kept: the next publish may make them succeed.
    const record = await this.widgetLookups.get(key);
    sources?.add(() => this.widgetLookups.peek(key) === record);
    return record;
  }

  private async readWidget(addonIdOrName: string, widgetName: string): Promise<WidgetRecord> {
    const addon = await this.require(addonIdOrName);
    const widget = addon.latestVersionId
      ? await this.addons.latestWidget(addon.latestVersionId, widgetName)
      : null;
    if (!widget) throw new NotFoundError('Widget', `${addon.name}/${widgetName}`);
    return widget;
  }
}

function checkSource(
  source: unknown,
  wasmBase64: unknown,
): { text: string; sha256: string; wasm: Uint8Array | null } {
  const problems: FieldProblem[] = [];
  if (typeof source !== 'string' || source.trim() === '') {
    problems.push({ field: 'source', message: 'must be the addon JavaScript source, a non-empty string' });
  } else if (Buffer.byteLength(source) > MAX_SOURCE_BYTES) {
    problems.push({ field: 'source', message: `must be at most ${MAX_SOURCE_BYTES} bytes` });
  }
  let wasm: Uint8Array | null = null;
  if (wasmBase64 !== undefined && wasmBase64 !== null) {
    if (typeof wasmBase64 !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(wasmBase64)) {
      problems.push({ field: 'wasmBase64', message: 'must be base64' });
    } else {
      wasm = Buffer.from(wasmBase64, 'base64');
      if (wasm.byteLength > MAX_WASM_BYTES) {
        problems.push({ field: 'wasmBase64', message: `must decode to at most ${MAX_WASM_BYTES} bytes` });
      } else if (!WebAssembly.validate(wasm)) {
        problems.push({ field: 'wasmBase64', message: 'is not a valid WebAssembly module' });
      }
    }
  }
  if (problems.length > 0) throw ValidationError.of('addon', problems);
  const text = source as string;
  return { text, sha256: createHash('sha256').update(text).digest('hex'), wasm };
}
