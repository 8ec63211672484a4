import { ValidationError, type FieldProblem } from '../errors/index.js';
import { parseAddonManifest, type AddonManifest } from '../addons/addon-manifest.js';
import { ADDON_PACKAGE_FILES, type AddonPackage } from '../addons/addon-package.js';
import { MAX_SOURCE_BYTES, MAX_WASM_BYTES } from '../addons/addon.service.js';
import { declaredEntries, type DeclaredEntries } from '../addons/addon-exports.js';

export { compareExports, type DeclaredEntries, type ExportedEntries } from '../addons/addon-exports.js';

/** The checks that need no sandbox: the ones the server runs when a version is published. */
export interface StaticCheck {
  /** The normalised manifest, or null when it has problems. */
  manifest: AddonManifest | null;
  declared: DeclaredEntries;
  problems: FieldProblem[];
  sourceBytes: number;
  /** The registry's limit for index.js, in bytes. */
  sourceLimit: number;
  wasmBytes: number | null;
}

/**
 * Runs the publish-time checks of the registry on a folder read from disk: `parseAddonManifest`
 * and the source and WebAssembly size limits of `AddonService.publish`, reporting every problem at
 * once with the field the server would name. Checks that need the database (version order,
 * dependencies published, ownership) are left to the server.
 */
export function checkPackage(pkg: AddonPackage): StaticCheck {
  const problems: FieldProblem[] = [];
  let manifest: AddonManifest | null = null;
  try {
    manifest = parseAddonManifest(pkg.manifest);
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    problems.push(...error.fields);
  }
  const sourceBytes = Buffer.byteLength(pkg.source);
  if (pkg.source.trim() === '') {
    problems.push({ field: 'source', message: `${ADDON_PACKAGE_FILES.source} is empty` });
  } else if (sourceBytes > MAX_SOURCE_BYTES) {
    problems.push({
      field: 'source',
      message: `${ADDON_PACKAGE_FILES.source} is ${sourceBytes} bytes; the limit is ${MAX_SOURCE_BYTES} (bundle less, or move data out of the script)`,
    });
  }
  let wasmBytes: number | null = null;
  if (pkg.wasmBase64 !== undefined) {
    const wasm = Buffer.from(pkg.wasmBase64, 'base64');
    wasmBytes = wasm.byteLength;
    if (wasmBytes > MAX_WASM_BYTES) {
      problems.push({
        field: 'wasmBase64',
        message: `${ADDON_PACKAGE_FILES.wasm} is ${wasmBytes} bytes; the limit is ${MAX_WASM_BYTES}`,
      });
    } else if (!WebAssembly.validate(wasm)) {
      problems.push({
        field: 'wasmBase64',
        message: `${ADDON_PACKAGE_FILES.wasm} is not a valid WebAssembly module`,
      });
    }
  }
  return {
    manifest,
    declared: declaredEntries(pkg.manifest),
    problems,
    sourceBytes,
    sourceLimit: MAX_SOURCE_BYTES,
    wasmBytes,
  };
}
