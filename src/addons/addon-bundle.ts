import type { AddonBundle } from '../sandbox/index.js';
import type { AddonManifest } from './addon-manifest.js';

/**
 * The sandbox's view of one addon version: the server's bundle cache and the CLI's local runs
 * build it here, so `themepress addon dev` runs what the server would.
 */
export function addonBundle(
  ids: { versionId: string; addonId: string },
  manifest: AddonManifest,
  code: { source: string; wasm: Uint8Array | null },
): AddonBundle {
  return {
    versionId: ids.versionId,
    addonId: ids.addonId,
    addonName: manifest.name,
    version: manifest.version,
    source: code.source,
    wasm: code.wasm,
    permissions: manifest.permissions,
    limits: manifest.limits,
    dependencies: manifest.dependencies,
    httpAllow: manifest.http.allow,
    emits: manifest.events.emits.map((e) => e.name),
  };
}
