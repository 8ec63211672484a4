import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { CliError } from './cli-io.js';

/** File in an addon folder with the sample inputs of the local run. */
export const FIXTURES_FILE = 'fixtures.json';

/** A canned answer for `ctx.http.fetch` in the local run. */
export interface HttpFixture {
  status?: number;
  headers?: Record<string, string>;
  /** A string is sent as is; anything else as JSON. */
  body?: unknown;
}

/**
 * Sample inputs and host state for the local run (`fixtures.json`), every part optional:
 *
 * ```jsonc
 * {
 *   "config": { "currency": "EUR" },                 // the installation config (ctx.config)
 *   "functions": { "charge": { "amount": 10 } },     // function name -> data
 *   "widgets": { "cart": { "config": {}, "context": { "sessionId": "s1" } } },
 *   "handlers": { "onOrder": { "orderId": "o-1" } },  // handler name -> event data
 *   "storage": { "rate": 1.1 },                      // ctx.storage before the run
 *   "addons": { "inventory": { "reserve": { "ok": true } } }, // ctx.addons.call answers
 *   "http": { "GET https://api.example.com/rates": { "status": 200, "body": { "EUR": 1 } } }
 * }
 * ```
 *
 * A top-level key that is none of these sections and names a function or widget is read as its
 * sample too (`{ "charge": { "amount": 10 } }`).
 */
export interface Fixtures {
  config: unknown;
  functions: Record<string, unknown>;
  widgets: Record<string, { config?: unknown; context?: unknown }>;
  handlers: Record<string, unknown>;
  storage: Record<string, unknown>;
  addons: Record<string, Record<string, unknown>>;
  http: Record<string, HttpFixture>;
  /** Top-level keys outside the sections: samples named directly. */
  loose: Record<string, unknown>;
  /** The file read, or null when there is none. */
  file: string | null;
}

const SECTIONS = ['config', 'functions', 'widgets', 'handlers', 'storage', 'addons', 'http'] as const;

type Obj = Record<string, unknown>;
const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** No fixtures: every entry runs with `{}` and the schema defaults. */
export function emptyFixtures(): Fixtures {
  return {
    config: undefined,
    functions: {},
    widgets: {},
    handlers: {},
    storage: {},
    addons: {},
    http: {},
    loose: {},
    file: null,
  };
}

/**
 * Reads `fixtures.json` from an addon folder (or `file` when given); no file means no fixtures,
 * unless `file` was named explicitly.
 * @throws CliError naming the file and the section that is malformed (exit code 1).
 */
export async function readFixtures(directory: string, file?: string): Promise<Fixtures> {
  const target = file ? path.resolve(file) : path.join(directory, FIXTURES_FILE);
  let text: string;
  try {
    text = await readFile(target, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && !file) return emptyFixtures();
    throw new CliError(`Cannot read fixtures ${target}: ${(error as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new CliError(`${target} is not valid JSON (${(error as Error).message}).`);
  }
  if (!isObject(raw)) throw new CliError(`${target} must hold a JSON object.`);
  const fixtures = emptyFixtures();
  fixtures.file = target;
  fixtures.config = raw.config;
  for (const section of SECTIONS) {
    if (section === 'config' || raw[section] === undefined) continue;
    if (!isObject(raw[section])) {
      throw new CliError(`${target}: "${section}" must be an object keyed by name.`);
    }
  }
  fixtures.functions = (raw.functions as Obj | undefined) ?? {};
  fixtures.widgets = (raw.widgets as Fixtures['widgets'] | undefined) ?? {};
  fixtures.handlers = (raw.handlers as Obj | undefined) ?? {};
  fixtures.storage = (raw.storage as Obj | undefined) ?? {};
  fixtures.addons = (raw.addons as Fixtures['addons'] | undefined) ?? {};
  fixtures.http = (raw.http as Fixtures['http'] | undefined) ?? {};
  for (const [name, value] of Object.entries(fixtures.widgets)) {
    if (!isObject(value))
      throw new CliError(`${target}: widgets.${name} must be { "config": ..., "context": ... }.`);
  }
  for (const [name, value] of Object.entries(fixtures.addons)) {
    if (!isObject(value)) throw new CliError(`${target}: addons.${name} must map function names to outputs.`);
  }
  for (const [key, value] of Object.entries(raw)) {
    if (!(SECTIONS as readonly string[]).includes(key) && !key.startsWith('$')) fixtures.loose[key] = value;
  }
  return fixtures;
}

/** The sample for a function: its `functions` entry, else a top-level key of its name. */
export function functionSample(fixtures: Fixtures, name: string): { value: unknown; given: boolean } {
  if (Object.hasOwn(fixtures.functions, name)) return { value: fixtures.functions[name], given: true };
  if (Object.hasOwn(fixtures.loose, name)) return { value: fixtures.loose[name], given: true };
  return { value: {}, given: false };
}

/** The sample for a widget: `{ config, context }` from `widgets`, else a top-level key of its name. */
export function widgetSample(
  fixtures: Fixtures,
  name: string,
): { config: unknown; context: unknown; given: boolean } {
  const entry = Object.hasOwn(fixtures.widgets, name)
    ? fixtures.widgets[name]
    : isObject(fixtures.loose[name])
      ? (fixtures.loose[name] as { config?: unknown; context?: unknown })
      : null;
  if (!entry) return { config: {}, context: {}, given: false };
  return { config: entry.config ?? {}, context: entry.context ?? {}, given: true };
}
