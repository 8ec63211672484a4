import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { ValidationError } from '../errors/index.js';
import type { PublishInput } from './addon.service.js';

/** The files of an addon folder on disk, as the CLI, the seed and the examples lay them out. */
export const ADDON_PACKAGE_FILES = {
  manifest: 'manifest.json',
  source: 'index.js',
  wasm: 'addon.wasm',
} as const;

/** An addon folder read from disk, ready to publish. */
export interface AddonPackage extends PublishInput {
  manifest: Record<string, unknown>;
  source: string;
  wasmBase64?: string;
  /** The absolute folder it was read from. */
  directory: string;
}

async function readOptional(file: string): Promise<Buffer | null> {
  try {
    return await readFile(file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

/**
 * Reads an addon folder: `manifest.json` (the manifest the registry validates), `index.js` (the
 * bundled module, one self-contained script) and an optional `addon.wasm`. Missing or unparsable
 * files are reported as a {@link ValidationError} naming the file, so the CLI and the seed print
 * the same message the server would.
 */
export async function readAddonPackage(directory: string): Promise<AddonPackage> {
  const root = path.resolve(directory);
  const manifestPath = path.join(root, ADDON_PACKAGE_FILES.manifest);
  const sourcePath = path.join(root, ADDON_PACKAGE_FILES.source);
  const [manifestBytes, sourceBytes, wasmBytes] = await Promise.all([
    readOptional(manifestPath),
    readOptional(sourcePath),
    readOptional(path.join(root, ADDON_PACKAGE_FILES.wasm)),
  ]);
  if (!manifestBytes)
    throw ValidationError.of('addon folder', [
      { field: ADDON_PACKAGE_FILES.manifest, message: `not found in ${root}` },
    ]);
  if (!sourceBytes)
    throw ValidationError.of('addon folder', [
      { field: ADDON_PACKAGE_FILES.source, message: `not found in ${root}` },
    ]);
  let manifest: unknown;
  try {
    manifest = JSON.parse(manifestBytes.toString('utf8'));
  } catch (error) {
    throw ValidationError.of('addon folder', [
      { field: ADDON_PACKAGE_FILES.manifest, message: `is not valid JSON (${(error as Error).message})` },
    ]);
  }
  if (typeof manifest !== 'object' || manifest === null || Array.isArray(manifest))
    throw ValidationError.of('addon folder', [
      { field: ADDON_PACKAGE_FILES.manifest, message: 'must hold a JSON object' },
    ]);
  return {
    directory: root,
    manifest: manifest as Record<string, unknown>,
    source: sourceBytes.toString('utf8'),
    ...(wasmBytes ? { wasmBase64: wasmBytes.toString('base64') } : {}),
  };
}
