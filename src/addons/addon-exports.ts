import { createHash } from 'node:crypto';
import type { FieldProblem } from '../errors/index.js';
import type { AddonBundle, AddonLimits, SandboxPool } from '../sandbox/index.js';

/** The module file an addon's source is published as (the CLI names it in its messages). */
const SOURCE_FILE = 'index.js';

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

/** The lifecycle hooks the platform calls (docs/sandbox.md); each is optional. */
const LIFECYCLE_HOOKS = ['install', 'upgrade', 'uninstall'] as const;

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

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
 * exported is a problem (every call of it would fail with NOT_FOUND), and so is an exported hook
 * the platform does not know (a misspelt hook would never run); an exported entry the manifest
 * does not declare is only a warning (the platform never calls it).
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
          message: `"${entry.name}" is not exported by ${SOURCE_FILE}: module.exports.${table}[${JSON.stringify(entry.name)}] must be ${shapes[table]}`,
        });
      }
    }
    const declaredNames = new Set(declared[table].map((e) => e.name));
    for (const name of exported[table]) {
      if (!declaredNames.has(name)) {
        warnings.push(
          `${SOURCE_FILE} exports ${table}.${name}, which the manifest does not declare: the platform never calls it`,
        );
      }
    }
  }
  for (const hook of exported.hooks) {
    if (!(LIFECYCLE_HOOKS as readonly string[]).includes(hook)) {
      problems.push({
        field: 'source',
        message: `${SOURCE_FILE} exports hooks.${hook}, which is not a lifecycle hook (${LIFECYCLE_HOOKS.join(', ')}): it would never run`,
      });
    }
  }
  return { problems, warnings };
}

/** The probe's entry point; swapped in for the module's exports after its top level ran. */
const PROBE_FUNCTION = '__themepress_exports__';
/** A fixed site for probe runs (a valid UUID no site has: probes hold no data). */
const PROBE_SITE_ID = '00000000-0000-4000-8000-00000000000a';
/** Names kept per table: more than any manifest may declare. */
const MAX_LISTED = 1000;

/** The module followed by a script that reports its exports (the module itself is not altered). */
function probeSource(source: string): string {
  return `${source}
;(function (m) {
  var original = m.exports;
  function list(table, accept) {
    var out = [];
    if (original === null || (typeof original !== 'object' && typeof original !== 'function')) return out;
    var entries = original[table];
    if (entries === null || (typeof entries !== 'object' && typeof entries !== 'function')) return out;
    var names = Object.getOwnPropertyNames(entries);
    for (var i = 0; i < names.length && out.length < ${MAX_LISTED}; i++) {
      try { if (accept(entries[names[i]])) out.push(names[i]); } catch (e) { /* a throwing getter is no entry */ }
    }
    return out;
  }
  function isFunction(v) { return typeof v === 'function'; }
  function isWidget(v) {
    return typeof v === 'function' || (typeof v === 'object' && v !== null && typeof v.render === 'function');
  }
  var report = {
    functions: list('functions', isFunction),
    widgets: list('widgets', isWidget),
    handlers: list('handlers', isFunction),
    hooks: list('hooks', isFunction)
  };
  m.exports = { functions: { ${JSON.stringify(PROBE_FUNCTION)}: function () { return report; } } };
})(module);
`;
}

/** The report as the probe wrote it, or null when the module tampered with it. */
function asExportedEntries(output: unknown): ExportedEntries | null {
  if (!isObject(output)) return null;
  const tables = ['functions', 'widgets', 'handlers', 'hooks'] as const;
  const out = {} as ExportedEntries;
  for (const table of tables) {
    const names = output[table];
    if (!Array.isArray(names) || names.length > MAX_LISTED || names.some((n) => typeof n !== 'string'))
      return null;
    out[table] = names as string[];
  }
  return out;
}

/** An addon's code as the probe needs it. */
export interface ProbedModule {
  name: string;
  version: string;
  source: string;
  wasm: Uint8Array | null;
  /** The manifest's limits: the module loads under the same limits as its calls will. */
  limits: Partial<AddonLimits>;
}

export type ProbeResult =
  { ok: true; exports: ExportedEntries } | { ok: false; code: string; message: string };

/**
 * Loads the module in the sandbox, through the pool's public API and under the addon's own limits,
 * with no permissions, and lists its entries the way the sandbox resolves them (own properties:
 * functions and handlers that are functions, widgets that are functions or have `render`). A module
 * that fails to load (syntax error, a throw at top level, a limit) is reported with its error.
 */
export async function probeExports(pool: SandboxPool, module: ProbedModule): Promise<ProbeResult> {
  const source = probeSource(module.source);
  const digest = createHash('sha256').update(source);
  if (module.wasm) digest.update(module.wasm);
  const bundle: AddonBundle = {
    // Isolates are kept per version id: equal code shares one, different code never does.
    versionId: `probe:${digest.digest('hex')}`,
    addonId: `probe:${module.name}`,
    addonName: module.name,
    version: module.version,
    source,
    wasm: module.wasm,
    permissions: [],
    limits: module.limits,
    dependencies: {},
    httpAllow: [],
    emits: [],
  };
  try {
    const result = await pool.execute({
      bundle,
      siteId: PROBE_SITE_ID,
      installationId: null,
      config: {},
      entry: { kind: 'function', name: PROBE_FUNCTION },
      input: null,
      requestId: 'export-probe',
    });
    const exports = asExportedEntries(result.output);
    if (!exports) return { ok: false, code: 'ADDON_ERROR', message: 'the module replaced the export report' };
    return { ok: true, exports };
  } catch (error) {
    const code = (error as { code?: unknown }).code;
    return {
      ok: false,
      code: typeof code === 'string' ? code : 'INTERNAL_SERVER_ERROR',
      message: error instanceof Error ? error.message : String(error),
    };
  }
}
