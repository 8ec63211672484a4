import { LRUCache } from 'lru-cache';
import type { Database, DbClient } from '../infrastructure/database/database.js';
import { AddonRepository } from '../addons/addon.repository.js';
import type { AddonManifest } from '../addons/addon-manifest.js';
import { sealBundle, type AddonBundle } from '../sandbox/index.js';
import { addonBundle } from '../addons/addon-bundle.js';
import { NotFoundError } from '../errors/index.js';
import { approximateBytes } from '../shared/refreshing-cache.js';

export interface LoadedVersion {
  bundle: AddonBundle;
  manifest: AddonManifest;
}

/**
 * What the sandbox needs for a version, read from the database once per process. Published versions
 * never change, so entries never expire; the least recently used go beyond the entry or byte bound
 * (a version holds up to a few megabytes of source and WebAssembly). The entry bound is as high as
 * the number of versions the sandbox keeps warm: a miss costs two queries on every call.
 */
export class AddonBundleCache {
  private readonly cache: LRUCache<string, LoadedVersion, DbClient>;

  constructor(
    private readonly database: Database,
    bounds: { maxEntries: number; maxBytes: number } = { maxEntries: 10_000, maxBytes: 256 * 1024 * 1024 },
  ) {
    this.cache = new LRUCache<string, LoadedVersion, DbClient>({
      max: bounds.maxEntries,
      maxSize: bounds.maxBytes,
      sizeCalculation: ({ bundle, manifest }) =>
        2 * bundle.source.length + (bundle.wasm?.byteLength ?? 0) + approximateBytes(manifest),
      // Failed reads are not kept (lru-cache drops a rejected fetch); a read whose entry was evicted
      // meanwhile still answers its callers.
      ignoreFetchAbort: true,
      fetchMethod: (versionId, _stale, { context }) => this.read(versionId, context),
    });
  }

  /**
   * @param db Read through this client on a miss: a caller inside a transaction passes it, since
   *   the embedded database has a single connection that the transaction holds.
   */
  async load(versionId: string, db?: DbClient): Promise<LoadedVersion> {
    const loaded = await this.cache.fetch(versionId, { context: db ?? this.database.prisma });
    if (!loaded) throw new NotFoundError('Version', versionId);
    return loaded;
  }

  /** A version already loaded, without a promise (hot paths await nothing on a hit), or undefined. */
  loaded(versionId: string): LoadedVersion | undefined {
    return this.cache.get(versionId);
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
      bundle: sealBundle(
        addonBundle({ versionId: version.id, addonId: addon.id }, manifest, {
          source: version.source,
          wasm: version.wasm ? new Uint8Array(version.wasm) : null,
        }),
      ),
    };
  }
}
