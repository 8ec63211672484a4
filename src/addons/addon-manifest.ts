import semver from 'semver';
import { ValidationError, type FieldProblem } from '../errors/index.js';
import { jsonSchemaProblem } from '../shared/json-schema.js';
import { jsonValueProblem } from '../shared/storable-text.js';

export const ADDON_CATEGORIES = [
  'ECOMMERCE',
  'ANALYTICS',
  'MARKETING',
  'COMMUNICATION',
  'UTILITIES',
] as const;
export const WIDGET_CATEGORIES = ['CONTENT', 'FORM', 'DISPLAY', 'INTERACTIVE', 'LAYOUT'] as const;

/** The platform's permissions; each gates one part of the SDK addon code sees. */
export const KNOWN_PERMISSIONS = [
  'storage.read',
  'storage.write',
  'events.emit',
  'addons.call',
  'http.fetch',
] as const;

export type AddonCategoryName = (typeof ADDON_CATEGORIES)[number];
export type WidgetCategoryName = (typeof WIDGET_CATEGORIES)[number];

export interface WidgetManifest {
  name: string;
  displayName: string;
  description: string;
  category: WidgetCategoryName;
  configSchema: Record<string, unknown>;
  previewImage: string | null;
  responsive: boolean;
  /** Context fields the output depends on; the render cache keys on these only. */
  varyOn: string[];
  /** Events after which cached renders of this widget are dropped. */
  invalidateOn: string[];
}

export interface FunctionManifest {
  name: string;
  description: string;
  readonly: boolean;
  inputSchema: Record<string, unknown> | null;
}

export interface EmittedEventManifest {
  name: string;
  schema: Record<string, unknown> | null;
}

export interface LimitsManifest {
  memoryMb?: number;
  timeoutMs?: number;
  cpuTimeMs?: number;
  maxInputBytes?: number;
  maxOutputBytes?: number;
  maxConcurrentCalls?: number;
  maxLogBytes?: number;
}

/** A manifest after validation: every optional part filled in, nothing unknown kept. */
export interface AddonManifest {
  name: string;
  version: string;
  displayName: string;
  description: string;
  author: string;
  category: AddonCategoryName;
  permissions: string[];
  dependencies: Record<string, string>;
  configSchema: Record<string, unknown>;
  widgets: WidgetManifest[];
  functions: FunctionManifest[];
  events: { emits: EmittedEventManifest[]; handles: Record<string, string> };
  limits: LimitsManifest;
  http: { allow: string[] };
}

const NAME = /^[a-z][a-z0-9]*(?:-[a-z0-9]+)*$/;
const EVENT_NAME = /^[a-z][a-z0-9_-]*(?:\.[a-z][a-z0-9_-]*)+$/;
const EVENT_PATTERN = /^(?:[a-z][a-z0-9_-]*|\*)(?:\.(?:[a-z][a-z0-9_-]*|\*))*$/;
const IDENTIFIER = /^[A-Za-z_$][A-Za-z0-9_$]*$/;
const HOST =
  /^(?:\*\.)?[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*(?::\d{1,5})?$/;
const LIMIT_RANGES: Record<keyof LimitsManifest, [number, number]> = {
  memoryMb: [8, 512],
  timeoutMs: [1, 60_000],
  cpuTimeMs: [1, 60_000],
  maxInputBytes: [1, 16 * 1024 * 1024],
  maxOutputBytes: [1, 16 * 1024 * 1024],
  maxConcurrentCalls: [1, 1000],
  maxLogBytes: [0, 1024 * 1024],
};

/**
 * How much one manifest may declare. Every entry costs the registry at publish, install and on
 * each catalogue read, so a manifest is bounded like any other input (see docs/authoring-an-addon.md).
 */
export const MANIFEST_LIMITS = {
  functions: 100,
  widgets: 50,
  /** Events in `events.emits`, and patterns in `events.handles`. */
  events: 100,
  dependencies: 32,
  /** Hosts in `http.allow`. */
  hosts: 32,
  /** Entries of one widget's `varyOn` or `invalidateOn`. */
  widgetLists: 32,
  /** UTF-8 bytes of all the manifest's JSON Schemas together (each is also capped on its own). */
  schemaBytes: 256 * 1024,
  /** Characters of a function's or widget's description. */
  descriptionChars: 2000,
} as const;

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * Checks a manifest as sent by a developer and returns its normalised form. Every problem found is
 * reported at once, each naming its field (`manifest.widgets[1].configSchema`). Checks that need
 * the database (version order, dependency resolution, ownership) happen in the service.
 *
 * `endpoints` is accepted as another name for `functions` (the registration body of the original
 * REST API used it).
 */
export function parseAddonManifest(input: unknown): AddonManifest {
  const problems: FieldProblem[] = [];
  const fail = (field: string, message: string) =>
    problems.push({ field: field ? `manifest.${field}` : 'manifest', message });
  if (!isObject(input))
    throw ValidationError.of('manifest', [{ field: 'manifest', message: 'must be an object' }]);
  // The manifest is stored as jsonb: refused whole when PostgreSQL could not store it.
  const unstorable = jsonValueProblem(input, 'manifest');
  if (unstorable) throw ValidationError.of('manifest', [unstorable]);
  // Sizes first: nothing of a manifest over its limits is parsed or compiled.
  checkSizes(input, fail);
  if (problems.length > 0) throw ValidationError.of('manifest', problems);

  const str = (field: string, { required = false, max = 200 } = {}): string => {
    const value = input[field];
    if (value === undefined || value === null) {
      if (required) fail(field, 'is required');
      return '';
    }
    if (typeof value !== 'string') {
      fail(field, 'must be a string');
      return '';
    }
    if (value.length > max) fail(field, `must be at most ${max} characters`);
    if (required && value.trim() === '') fail(field, 'must not be empty');
    return value.trim();
  };

  const name = str('name', { required: true, max: 64 });
  if (name && !NAME.test(name))
    fail('name', 'must be lowercase letters, digits and single dashes (e.g. payment-gateway)');
  const version = str('version', { required: true, max: 64 });
  if (version && semver.valid(version) !== version)
    fail('version', `"${version}" is not a valid semantic version`);
  const category = str('category', { required: true }).toUpperCase();
  if (category && !(ADDON_CATEGORIES as readonly string[]).includes(category)) {
    fail('category', `must be one of ${ADDON_CATEGORIES.join(', ')}`);
  }

  const permissions = stringList(input.permissions, 'permissions', fail);
  for (const [i, p] of permissions.entries()) {
    if (!(KNOWN_PERMISSIONS as readonly string[]).includes(p)) {
      fail(`permissions[${i}]`, `unknown permission "${p}"; known: ${KNOWN_PERMISSIONS.join(', ')}`);
    }
  }

  const dependencies: Record<string, string> = {};
  if (input.dependencies !== undefined) {
    if (!isObject(input.dependencies))
      fail('dependencies', 'must be an object of addon name to semver range');
    else
      for (const [dep, range] of Object.entries(input.dependencies)) {
        if (!NAME.test(dep)) fail(`dependencies.${dep}`, 'is not a valid addon name');
        else if (dep === name) fail(`dependencies.${dep}`, 'an addon cannot depend on itself');
        else if (typeof range !== 'string' || semver.validRange(range) === null) {
          fail(`dependencies.${dep}`, `"${String(range)}" is not a valid semver range`);
        } else dependencies[dep] = range;
      }
  }

  const configSchema = optionalSchema(input.configSchema, 'configSchema', fail) ?? { type: 'object' };
  const widgets = parseWidgets(input.widgets, fail);
  const functions = parseFunctions(
    input.functions ?? input.endpoints,
    input.functions ? 'functions' : 'endpoints',
    fail,
  );
  const events = parseEvents(input.events, fail);
  const limits = parseLimits(input.limits, fail);
  const http = { allow: [] as string[] };
  if (input.http !== undefined) {
    if (!isObject(input.http)) fail('http', 'must be an object with an allow list');
    else
      http.allow = stringList(input.http.allow, 'http.allow', fail).map((h, i) => {
        if (!HOST.test(h.toLowerCase())) fail(`http.allow[${i}]`, `"${h}" is not a host name`);
        return h.toLowerCase();
      });
  }
  if (http.allow.length > 0 && !permissions.includes('http.fetch')) {
    fail('http.allow', 'needs the http.fetch permission');
  }
  if (events.emits.length > 0 && !permissions.includes('events.emit')) {
    fail('events.emits', 'needs the events.emit permission');
  }

  if (problems.length > 0) throw ValidationError.of('manifest', problems);
  return {
    name,
    version,
    displayName: str('displayName', { max: 100 }) || name,
    description: str('description', { max: 2000 }),
    author: str('author', { max: 100 }),
    category: category as AddonCategoryName,
    permissions: [...new Set(permissions)],
    dependencies,
    configSchema,
    widgets,
    functions,
    events,
    limits,
    http,
  };
}

/**
 * Refuses lists longer than {@link MANIFEST_LIMITS} allows and schemas larger together than its
 * byte cap, before any entry is looked at.
 */
function checkSizes(input: Obj, fail: (f: string, m: string) => void): void {
  const count = (value: unknown) =>
    Array.isArray(value) ? value.length : isObject(value) ? Object.keys(value).length : 0;
  const over = (field: string, value: unknown, limit: number) => {
    const n = count(value);
    if (n > limit) fail(field, `declares ${n} entries; the limit is ${limit}`);
  };
  const functionsField = input.functions !== undefined ? 'functions' : 'endpoints';
  over(functionsField, input[functionsField], MANIFEST_LIMITS.functions);
  over('widgets', input.widgets, MANIFEST_LIMITS.widgets);
  over('dependencies', input.dependencies, MANIFEST_LIMITS.dependencies);
  if (isObject(input.events)) {
    over('events.emits', input.events.emits, MANIFEST_LIMITS.events);
    over('events.handles', input.events.handles, MANIFEST_LIMITS.events);
  }
  if (isObject(input.http)) over('http.allow', input.http.allow, MANIFEST_LIMITS.hosts);
  if (Array.isArray(input.widgets)) {
    input.widgets.slice(0, MANIFEST_LIMITS.widgets).forEach((widget, i) => {
      if (!isObject(widget)) return;
      over(`widgets[${i}].varyOn`, widget.varyOn, MANIFEST_LIMITS.widgetLists);
      over(`widgets[${i}].invalidateOn`, widget.invalidateOn, MANIFEST_LIMITS.widgetLists);
    });
  }
  const schemas: unknown[] = [input.configSchema];
  const schemasOf = (list: unknown, key: string) => {
    if (Array.isArray(list)) for (const item of list) if (isObject(item)) schemas.push(item[key]);
  };
  schemasOf(input.widgets, 'configSchema');
  schemasOf(input[functionsField], 'inputSchema');
  if (isObject(input.events)) schemasOf(input.events.emits, 'schema');
  let bytes = 0;
  for (const schema of schemas) if (schema !== undefined) bytes += Buffer.byteLength(JSON.stringify(schema));
  if (bytes > MANIFEST_LIMITS.schemaBytes) {
    fail('', `its JSON Schemas are ${bytes} bytes together; the limit is ${MANIFEST_LIMITS.schemaBytes}`);
  }
}

/** An optional text field: trimmed, at most `max` characters; '' when absent. */
function optionalText(
  value: unknown,
  field: string,
  max: number,
  fail: (f: string, m: string) => void,
): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'string') {
    fail(field, 'must be a string');
    return '';
  }
  if (value.length > max) fail(field, `must be at most ${max} characters`);
  return value.trim();
}

function stringList(value: unknown, field: string, fail: (f: string, m: string) => void): string[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string')) {
    fail(field, 'must be a list of strings');
    return [];
  }
  return value as string[];
}

function optionalSchema(value: unknown, field: string, fail: (f: string, m: string) => void): Obj | null {
  if (value === undefined || value === null) return null;
  const problem = jsonSchemaProblem(value);
  if (problem) {
    fail(field, problem);
    return null;
  }
  return value as Obj;
}

function uniqueNamedList(
  value: unknown,
  field: string,
  fail: (f: string, m: string) => void,
): { item: Obj; path: string; name: string }[] {
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) {
    fail(field, 'must be a list');
    return [];
  }
  const seen = new Set<string>();
  const items: { item: Obj; path: string; name: string }[] = [];
  value.forEach((item, i) => {
    const path = `${field}[${i}]`;
    if (!isObject(item)) return fail(path, 'must be an object');
    const itemName = item.name;
    if (typeof itemName !== 'string' || !NAME.test(itemName) || itemName.length > 64) {
      return fail(
        `${path}.name`,
        'must be lowercase letters, digits and single dashes, at most 64 characters',
      );
    }
    if (seen.has(itemName)) return fail(`${path}.name`, `"${itemName}" is declared twice`);
    seen.add(itemName);
    items.push({ item, path, name: itemName });
  });
  return items;
}

function parseWidgets(value: unknown, fail: (f: string, m: string) => void): WidgetManifest[] {
  return uniqueNamedList(value, 'widgets', fail).map(({ item, path, name }) => {
    const category = typeof item.category === 'string' ? item.category.toUpperCase() : '';
    if (!(WIDGET_CATEGORIES as readonly string[]).includes(category)) {
      fail(`${path}.category`, `must be one of ${WIDGET_CATEGORIES.join(', ')}`);
    }
    if (
      item.previewImage !== undefined &&
      item.previewImage !== null &&
      (typeof item.previewImage !== 'string' || item.previewImage.length > 2048)
    ) {
      fail(`${path}.previewImage`, 'must be a URL string of at most 2048 characters');
    }
    if (item.responsive !== undefined && typeof item.responsive !== 'boolean') {
      fail(`${path}.responsive`, 'must be true or false');
    }
    const invalidateOn = stringList(item.invalidateOn, `${path}.invalidateOn`, fail);
    invalidateOn.forEach((e, i) => {
      if (!EVENT_PATTERN.test(e))
        fail(`${path}.invalidateOn[${i}]`, `"${e}" is not an event name or pattern`);
    });
    return {
      name,
      displayName: optionalText(item.displayName, `${path}.displayName`, 100, fail) || name,
      description: optionalText(
        item.description,
        `${path}.description`,
        MANIFEST_LIMITS.descriptionChars,
        fail,
      ),
      category: category as WidgetCategoryName,
      configSchema: optionalSchema(item.configSchema, `${path}.configSchema`, fail) ?? { type: 'object' },
      previewImage: typeof item.previewImage === 'string' ? item.previewImage : null,
      responsive: item.responsive !== false,
      varyOn: stringList(item.varyOn, `${path}.varyOn`, fail),
      invalidateOn,
    };
  });
}

function parseFunctions(
  value: unknown,
  field: string,
  fail: (f: string, m: string) => void,
): FunctionManifest[] {
  return uniqueNamedList(value, field, fail).map(({ item, path, name }) => {
    if (item.readonly !== undefined && typeof item.readonly !== 'boolean') {
      fail(`${path}.readonly`, 'must be true or false');
    }
    return {
      name,
      description: optionalText(
        item.description,
        `${path}.description`,
        MANIFEST_LIMITS.descriptionChars,
        fail,
      ),
      readonly: item.readonly === true,
      inputSchema: optionalSchema(item.inputSchema, `${path}.inputSchema`, fail),
    };
  });
}

function parseEvents(
  value: unknown,
  fail: (f: string, m: string) => void,
): { emits: EmittedEventManifest[]; handles: Record<string, string> } {
  const events = { emits: [] as EmittedEventManifest[], handles: {} as Record<string, string> };
  if (value === undefined || value === null) return events;
  if (!isObject(value)) {
    fail('events', 'must be an object with emits and handles');
    return events;
  }
  if (value.emits !== undefined) {
    if (!Array.isArray(value.emits)) fail('events.emits', 'must be a list');
    else
      value.emits.forEach((entry, i) => {
        const path = `events.emits[${i}]`;
        const eventName = typeof entry === 'string' ? entry : isObject(entry) ? entry.name : undefined;
        if (typeof eventName !== 'string' || !EVENT_NAME.test(eventName)) {
          return fail(path, 'must be a dotted event name such as payment.completed');
        }
        const schema = isObject(entry) ? optionalSchema(entry.schema, `${path}.schema`, fail) : null;
        events.emits.push({ name: eventName, schema });
      });
  }
  if (value.handles !== undefined) {
    if (!isObject(value.handles))
      fail('events.handles', 'must be an object of event name (or pattern) to handler name');
    else
      for (const [pattern, handler] of Object.entries(value.handles)) {
        if (!EVENT_PATTERN.test(pattern))
          fail(`events.handles.${pattern}`, 'is not an event name or pattern');
        else if (typeof handler !== 'string' || !IDENTIFIER.test(handler)) {
          fail(`events.handles.${pattern}`, 'must name a handler exported by the module');
        } else events.handles[pattern] = handler;
      }
  }
  return events;
}

function parseLimits(value: unknown, fail: (f: string, m: string) => void): LimitsManifest {
  const limits: LimitsManifest = {};
  if (value === undefined || value === null) return limits;
  if (!isObject(value)) {
    fail('limits', 'must be an object');
    return limits;
  }
  for (const [key, raw] of Object.entries(value)) {
    const range = LIMIT_RANGES[key as keyof LimitsManifest];
    if (!range) {
      fail(`limits.${key}`, `unknown limit; known: ${Object.keys(LIMIT_RANGES).join(', ')}`);
      continue;
    }
    if (typeof raw !== 'number' || !Number.isInteger(raw) || raw < range[0] || raw > range[1]) {
      fail(`limits.${key}`, `must be an integer from ${range[0]} to ${range[1]}`);
      continue;
    }
    limits[key as keyof LimitsManifest] = raw;
  }
  return limits;
}
