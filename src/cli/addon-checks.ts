import { ValidationError, type FieldProblem } from '../errors/index.js';
import { parseAddonManifest, type AddonManifest } from '../addons/addon-manifest.js';
import { ADDON_PACKAGE_FILES, type AddonPackage } from '../addons/addon-package.js';
import { MAX_SOURCE_BYTES, MAX_WASM_BYTES } from '../addons/addon.service.js';

/** A function, widget or handler the manifest names, with the manifest field that names it. */
export interface DeclaredEntry {
  name: string;
  field: string;
}

export interface DeclaredEntries {
  functions: DeclaredEntry[];
  widgets: DeclaredEntry[];
  handlers: DeclaredEntry[];
}

/** What the module exports, as the sandbox resolves entries (own properties of the right shape). */
export interface ExportedEntries {
  functions: string[];
  widgets: string[];
  handlers: string[];
  hooks: string[];
}

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

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

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

/**
 * The entries a manifest names, read leniently so exports can be checked even when other parts
 * of the manifest are invalid (the author sees every problem in one run).
 */
export function declaredEntries(raw: Obj): DeclaredEntries {
  const named = (list: unknown, field: string): DeclaredEntry[] =>
    Array.isArray(list)
      ? list.flatMap((item, i) =>
          isObject(item) && typeof item.name === 'string' && item.name !== ''
            ? [{ name: item.name, field: `manifest.${field}[${i}].name` }]
            : [],
        )
      : [];
  const functionsField = raw.functions !== undefined ? 'functions' : 'endpoints';
  const handles = isObject(raw.events) && isObject(raw.events.handles) ? raw.events.handles : {};
  return {
    functions: named(raw[functionsField], functionsField),
    widgets: named(raw.widgets, 'widgets'),
    handlers: Object.entries(handles).flatMap(([pattern, handler]) =>
      typeof handler === 'string' && handler !== ''
        ? [{ name: handler, field: `manifest.events.handles.${pattern}` }]
        : [],
    ),
  };
}

/**
 * Compares what the manifest names with what the module exports. A declared entry that is not
 * exported is a problem (every call of it would fail with NOT_FOUND); an exported entry the
 * manifest does not declare is only a warning (the platform never calls it).
 */
export function compareExports(
  declared: DeclaredEntries,
  exported: ExportedEntries,
): { problems: FieldProblem[]; warnings: string[] } {
  const problems: FieldProblem[] = [];
  const warnings: string[] = [];
  const shapes = {
    functions: 'a function',
    widgets: 'a render function or an object with render()',
    handlers: 'a function',
  } as const;
  for (const table of ['functions', 'widgets', 'handlers'] as const) {
    const names = new Set(exported[table]);
    for (const entry of declared[table]) {
      if (!names.has(entry.name)) {
        problems.push({
          field: entry.field,
          message: `"${entry.name}" is not exported by ${ADDON_PACKAGE_FILES.source}: module.exports.${table}[${JSON.stringify(entry.name)}] must be ${shapes[table]}`,
        });
      }
    }
    const declaredNames = new Set(declared[table].map((e) => e.name));
    for (const name of exported[table]) {
      if (!declaredNames.has(name)) {
        warnings.push(
          `${ADDON_PACKAGE_FILES.source} exports ${table}.${name}, which the manifest does not declare: the platform never calls it`,
        );
      }
    }
  }
  return { problems, warnings };
}
