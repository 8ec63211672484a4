import type { Database, DbClient } from '../infrastructure/database/database.js';
import { AddonRepository } from '../addons/addon.repository.js';
import type { AddonManifest } from '../addons/addon-manifest.js';
import { sealBundle, type AddonBundle } from '../sandbox/index.js';
import { NotFoundError } from '../errors/index.js';

export interface LoadedVersion {
  bundle: AddonBundle;
  manifest: AddonManifest;
}

const MAX_CACHED_VERSIONS = 500;

/**
 * Loads what the sandbox needs for a version. Published versions never change, so each is read
 * from the database once per process (bounded; least recently used evicted).
 */
export class AddonBundleCache {
  /** Least recently used first; `value` once the read has settled. */
  private readonly cache = new Map<string, { loading: Promise<LoadedVersion>; value?: LoadedVersion }>();

  /** The most recently used key (the last of `cache`). */
  private newest: string | null = null;

  constructor(private readonly database: Database) {}

  /**
   * @param db Read through this client on a miss: a caller inside a transaction passes it, since
   *   the embedded database has a single connection that the transaction holds.
   */
  load(versionId: string, db?: DbClient): Promise<LoadedVersion> {
    const cached = this.touch(versionId);
    if (cached) return cached.loading;
    const entry: { loading: Promise<LoadedVersion>; value?: LoadedVersion } = {
      loading: this.read(versionId, db ?? this.database.prisma),
    };
    this.cache.set(versionId, entry);
    this.newest = versionId;
    entry.loading.then(
      (value) => (entry.value = value),
      () => {
        // Failed reads are not kept; a newer entry for the version (after an eviction) stays.
        if (this.cache.get(versionId) === entry) this.cache.delete(versionId);
      },
    );
    if (this.cache.size > MAX_CACHED_VERSIONS) this.cache.delete(this.cache.keys().next().value!);
    return entry.loading;
  }

  /** A version already loaded, without a promise (hot paths await nothing on a hit), or undefined. */
  loaded(versionId: string): LoadedVersion | undefined {
    return this.touch(versionId)?.value;
  }

  /** The entry of a version, moved to the most recently used end. */
  private touch(versionId: string) {
    const entry = this.cache.get(versionId);
    // Moving an entry that is already the newest would only cost two map operations per call.
    if (entry && this.newest !== versionId) {
      this.newest = versionId;
      this.cache.delete(versionId);
      this.cache.set(versionId, entry);
    }
    return entry;
  }

  private async read(versionId: string, db: DbClient): Promise<LoadedVersion> {
    const repository = new AddonRepository(db);
    const version = await repository.findVersionWithSource(versionId);
    if (!version) throw new NotFoundError('Version', versionId);
    const addon = await repository.findById(version.addonId);
    if (!addon) throw new NotFoundError('Addon', version.addonId);
    const manifest = version.manifest as unknown as AddonManifest;
    return {
      manifest,
      // Sealed: every call of this version shares it, and the pool need not copy it per call.
      bundle: sealBundle({
        versionId: version.id,
        addonId: addon.id,
        addonName: addon.name,
        version: version.version,
        source: version.source,
        wasm: version.wasm ? new Uint8Array(version.wasm) : null,
        permissions: version.permissions,
        limits: manifest.limits,
        dependencies: manifest.dependencies,
        httpAllow: manifest.http.allow,
        emits: manifest.events.emits.map((e) => e.name),
      }),
    };
  }
}
