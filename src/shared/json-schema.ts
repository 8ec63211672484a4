import { Ajv, type ErrorObject, type FormatDefinition, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { LRUCache } from 'lru-cache';
import { fullFormats } from 'ajv-formats/dist/formats.js';
import { RE2JS } from 're2js';
import { AppError, ErrorCode, type FieldProblem } from '../errors/index.js';
import { canonicalJson } from './canonical-json.js';

/**
 * JSON Schemas come from addon manifests, so they are hostile input evaluated on the API's event
 * loop. Three things keep that bounded:
 *
 * - caps checked at publish ({@link SCHEMA_LIMITS}): size, depth, keys per object, enum length,
 *   pattern count, length and compiled size;
 * - every regular expression (`pattern`, `patternProperties`, `propertyNames` patterns and the
 *   regex-based `format`s) runs on re2js, a pure-JS port of RE2: matching is linear in the string
 *   (no backtracking), and one validation may spend at most {@link PATTERN_BUDGET} units of
 *   (string length x compiled pattern size) before the input is refused;
 * - `uniqueItems` compares canonical JSON texts in a set (linear) instead of ajv's pairwise
 *   deep-equal (quadratic for non-scalar items).
 */

/** Caps a manifest's JSON Schema must respect; checked before it is compiled. */
export const SCHEMA_LIMITS = {
  /** UTF-8 bytes of the schema's JSON text. */
  maxBytes: 32 * 1024,
  /** Nesting of objects and arrays. */
  maxDepth: 32,
  /** Keys of any one object (e.g. `properties`). */
  maxKeys: 256,
  /** Items of any `enum`. */
  maxEnum: 256,
  /** `pattern` and `patternProperties` entries in the whole schema. */
  maxPatterns: 64,
  /** Characters of one pattern. */
  maxPatternChars: 256,
  /** Instructions of one compiled pattern (RE2 program size; `a{200}` counts 200). */
  maxPatternProgram: 256,
} as const;

/**
 * Units of pattern work one validation may spend: the sum over every pattern test of the tested
 * string's length times the pattern's program size. re2js's time is linear in those units, so this
 * bounds the time one validation takes (measured in docs/decisions/0004-bounded-input.md).
 */
export const PATTERN_BUDGET = 2_000_000;

/** Thrown inside a validation whose patterns would cost more than {@link PATTERN_BUDGET}. */
class PatternBudgetExceeded extends Error {}

let patternBudget = PATTERN_BUDGET;

/** A compiled RE2 pattern that charges each test against the running validation's budget. */
class LinearRegExp {
  private readonly re: RE2JS;
  private readonly cost: number;

  constructor(
    readonly source: string,
    flags = 0,
  ) {
    this.re = RE2JS.compile(RE2JS.translateRegExp(source), flags);
    this.cost = Math.max(1, this.re.programSize());
  }

  get programSize(): number {
    return this.cost;
  }

  test(text: string): boolean {
    patternBudget -= (text.length + 1) * this.cost;
    if (patternBudget < 0) throw new PatternBudgetExceeded();
    return this.re.test(text);
  }

  /** ajv caches compiled patterns by this text. */
  toString(): string {
    return this.source;
  }
}

/** ajv's `code.regExp`: JSON Schema patterns (always Unicode here) compiled by re2js. */
const linearRegExp = Object.assign((pattern: string) => new LinearRegExp(pattern), {
  code: 'new LinearRegExp',
});

// ajv-formats is CommonJS; its default export arrives wrapped under ESM.
const addFormats = addFormatsModule as unknown as {
  default?: typeof addFormatsModule;
} & typeof addFormatsModule;
const applyFormats = (addFormats.default ?? addFormats) as unknown as (
  ajv: Ajv,
  options: { mode: 'full'; formats: string[] },
) => Ajv;

/** ajv-formats' formats that are plain functions over short, anchored, unambiguous regexes. */
const FUNCTION_FORMATS = [
  'date',
  'time',
  'date-time',
  'iso-time',
  'iso-date-time',
  'int32',
  'int64',
  'float',
  'double',
  'password',
  'binary',
];

/**
 * ajv-formats' regular-expression formats, compiled by re2js, with the longest string each
 * accepts (so one test stays short however the pattern behaves).
 */
const RE2_FORMATS: Record<string, number> = {
  'uri-reference': 8192,
  'uri-template': 8192,
  email: 320,
  ipv4: 15,
  ipv6: 45,
  uuid: 45,
  'json-pointer': 8192,
  'json-pointer-uri-fragment': 8192,
  'relative-json-pointer': 8192,
};

/** Budget units charged per character of a format test (their programs are fixed and small in practice). */
const FORMAT_UNIT_COST = 16;

/** A format of ajv-formats as a re2js pattern (they carry only the `i` flag). */
function re2Format(name: string, maxLength: number): (s: string) => boolean {
  const format = (fullFormats as Record<string, unknown>)[name];
  const source = format instanceof RegExp ? format : null;
  if (!source) throw new Error(`ajv-formats has no regular-expression format "${name}"`);
  return re2Test(source.source, source.flags.includes('i'), maxLength);
}

function re2Test(source: string, caseInsensitive: boolean, maxLength: number): (s: string) => boolean {
  const re = RE2JS.compile(RE2JS.translateRegExp(source), caseInsensitive ? RE2JS.CASE_INSENSITIVE : 0);
  return (s) => {
    if (s.length > maxLength) return false;
    patternBudget -= (s.length + 1) * FORMAT_UNIT_COST;
    if (patternBudget < 0) throw new PatternBudgetExceeded();
    return re.test(s);
  };
}

function addLinearFormats(ajv: Ajv): void {
  applyFormats(ajv, { mode: 'full', formats: FUNCTION_FORMATS });
  const add = (name: string, validate: (s: string) => boolean) =>
    ajv.addFormat(name, { type: 'string', validate } satisfies FormatDefinition<string>);
  for (const [name, maxLength] of Object.entries(RE2_FORMATS)) add(name, re2Format(name, maxLength));
  // ajv-formats writes these three with lookaheads, which RE2 lacks; the lookaheads become checks.
  const hostname = re2Test(
    '^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\\.[a-z0-9](?:[-0-9a-z]{0,61}[0-9a-z])?)*\\.?$',
    true,
    254,
  );
  add('hostname', (s) => s.replace(/\.$/, '').length <= 253 && hostname(s));
  const duration = re2Test(
    '^P(?:(?:\\d+Y)?(?:\\d+M)?(?:\\d+D)?(?:T(?:\\d+H)?(?:\\d+M)?(?:\\d+S)?)?|\\d+W)$',
    false,
    64,
  );
  add('duration', (s) => s.length > 1 && !/T(?!\d)/.test(s) && duration(s));
  // ajv-formats' dperini URL pattern (lookaheads excluding private ranges) gives way to the URL parser.
  const httpScheme = re2Test('^(?:https?|ftp)://', true, 8192);
  add('url', (s) => httpScheme(s) && URL.canParse(s));
  const uriReference = re2Format('uri-reference', 8192);
  const scheme = re2Test('^[a-z][a-z0-9+.-]*:', true, 8192);
  add('uri', (s) => /[/:]/.test(s) && scheme(s) && uriReference(s));
  const base64 = re2Test('^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$', false, Infinity);
  add('byte', base64);
  // A regex the server can run: the syntax re2js accepts (no lookaround, no backreferences).
  add('regex', (s) => {
    if (s.length > SCHEMA_LIMITS.maxPatternChars) return false;
    try {
      RE2JS.compile(RE2JS.translateRegExp(s));
      return true;
    } catch {
      return false;
    }
  });
}

/** Items of one array `uniqueItems` is checked on; a longer array is refused. */
export const MAX_UNIQUE_ITEMS = 10_000;

/**
 * `uniqueItems` in linear time, on at most {@link MAX_UNIQUE_ITEMS} items: each item's canonical
 * JSON text goes into a set. ajv's own keyword compares every pair of non-scalar items with a deep
 * equality (quadratic).
 */
function addLinearUniqueItems(ajv: Ajv): void {
  ajv.removeKeyword('uniqueItems');
  ajv.addKeyword({
    keyword: 'uniqueItems',
    type: 'array',
    schemaType: 'boolean',
    errors: true,
    validate: function uniqueItems(this: unknown, unique: boolean, data: unknown[]): boolean {
      if (!unique) return true;
      const fail = (message: string, params: Record<string, unknown>) => {
        (uniqueItems as unknown as { errors: Partial<ErrorObject>[] }).errors = [
          { keyword: 'uniqueItems', message, params },
        ];
        return false;
      };
      if (data.length > MAX_UNIQUE_ITEMS)
        return fail(`must have at most ${MAX_UNIQUE_ITEMS} items to be checked for duplicates`, {
          limit: MAX_UNIQUE_ITEMS,
        });
      const seen = new Map<string, number>();
      for (let i = 0; i < data.length; i += 1) {
        const text = canonicalJson(data[i]);
        const first = seen.get(text);
        if (first !== undefined)
          return fail(`must NOT have duplicate items (items ## ${first} and ${i} are identical)`, {
            i: first,
            j: i,
          });
        seen.set(text, i);
      }
      return true;
    },
  });
}

/**
 * One ajv instance per purpose: `useDefaults` mutates validated data (config defaults), which
 * checking a manifest must not do.
 */
function createAjv(useDefaults: boolean, removeAdditional = false): Ajv {
  const ajv = new Ajv({
    allErrors: true,
    strict: false,
    useDefaults,
    removeAdditional,
    coerceTypes: false,
    code: { regExp: linearRegExp },
  });
  addLinearFormats(ajv);
  addLinearUniqueItems(ajv);
  return ajv;
}

/**
 * Compiled validators by schema text: 500 at most, and 32 MB counting 20 bytes of compiled code a
 * character of schema. ajv also keeps each compiled schema by object; it forgets it with ours.
 */
function compiledBy(ajv: Ajv) {
  return {
    ajv,
    compiled: new LRUCache<string, ValidateFunction>({
      max: 500,
      maxSize: 32 * 1024 * 1024,
      sizeCalculation: (_validate, text) => 20 * text.length,
      dispose: (validate) => void ajv.removeSchema(validate.schema as object),
    }),
  };
}

/** Problems reported per validation; the first ones name the fields, the rest are counted. */
const MAX_PROBLEMS = 20;
const plain = createAjv(false);
const modes = {
  strict: compiledBy(createAjv(true)),
  // Moving an installation between versions drops config fields the target no longer declares
  // (where its schema forbids extra fields) instead of refusing the move.
  dropUnknown: compiledBy(createAjv(true, true)),
};

type Obj = Record<string, unknown>;

/**
 * Checks `schema` against {@link SCHEMA_LIMITS}; returns the first cap it breaks, or null.
 * Iterative and linear in the schema's size, so an oversized schema is refused cheaply.
 */
function schemaLimitProblem(schema: unknown): string | null {
  const limits = SCHEMA_LIMITS;
  let text: string;
  try {
    text = JSON.stringify(schema);
  } catch {
    return 'must be plain JSON';
  }
  const bytes = Buffer.byteLength(text);
  if (bytes > limits.maxBytes) return `is ${bytes} bytes of JSON; the limit is ${limits.maxBytes}`;
  let patterns = 0;
  const stack: { value: unknown; depth: number; key: string | null }[] = [
    { value: schema, depth: 0, key: null },
  ];
  while (stack.length > 0) {
    const { value, depth, key } = stack.pop()!;
    if (typeof value !== 'object' || value === null) continue;
    if (depth >= limits.maxDepth) return `is nested deeper than ${limits.maxDepth} levels`;
    if (Array.isArray(value)) {
      if (key === 'enum' && value.length > limits.maxEnum)
        return `has an enum of ${value.length} values; the limit is ${limits.maxEnum}`;
      for (const item of value) stack.push({ value: item, depth: depth + 1, key: null });
      continue;
    }
    const record = value as Obj;
    const keys = Object.keys(record);
    if (keys.length > limits.maxKeys)
      return `has an object with ${keys.length} keys; the limit is ${limits.maxKeys}`;
    const found: string[] = [];
    if (typeof record.pattern === 'string') found.push(record.pattern);
    if (key !== 'properties' && isObject(record.patternProperties))
      found.push(...Object.keys(record.patternProperties));
    for (const pattern of found) {
      patterns += 1;
      if (patterns > limits.maxPatterns) return `has more than ${limits.maxPatterns} patterns`;
      const problem = patternProblem(pattern);
      if (problem) return `has pattern ${JSON.stringify(pattern.slice(0, 80))}: ${problem}`;
    }
    for (const [k, v] of Object.entries(record)) stack.push({ value: v, depth: depth + 1, key: k });
  }
  return null;
}

/** Why a pattern is refused: too long, too large once compiled, or not RE2 syntax. */
function patternProblem(pattern: string): string | null {
  if (pattern.length > SCHEMA_LIMITS.maxPatternChars)
    return `is ${pattern.length} characters; the limit is ${SCHEMA_LIMITS.maxPatternChars}`;
  let size: number;
  try {
    size = new LinearRegExp(pattern).programSize;
  } catch (error) {
    return `is not supported (${(error as Error).message}); patterns use RE2 syntax: no lookaround or backreferences`;
  }
  if (size > SCHEMA_LIMITS.maxPatternProgram)
    return `compiles to ${size} instructions; the limit is ${SCHEMA_LIMITS.maxPatternProgram} (use smaller repetition counts)`;
  return null;
}

const isObject = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

/** Checks that `schema` is a JSON Schema within {@link SCHEMA_LIMITS}; returns the problem or null. */
export function jsonSchemaProblem(schema: unknown): string | null {
  if (!isObject(schema)) return 'must be a JSON Schema object';
  const limit = schemaLimitProblem(schema);
  if (limit) return limit;
  try {
    plain.compile(schema);
    return null;
  } catch (error) {
    return `is not a valid JSON Schema (${(error as Error).message})`;
  } finally {
    // ajv keeps every schema it compiled, by object; this one is checked once.
    plain.removeSchema(schema as object);
  }
}

/**
 * Validates `data` against `schema`, filling in the schema's defaults. Returns the (copied and
 * defaulted) data, or the failing paths prefixed with `root` (e.g. `config.theme`). A schema that
 * cannot be compiled (one stored before today's rules) is the addon's fault: ADDON_ERROR.
 */
export function validateWithDefaults(
  schema: object,
  data: unknown,
  root: string,
  mode: keyof typeof modes = 'strict',
): { ok: true; value: unknown } | { ok: false; problems: FieldProblem[] } {
  const { ajv, compiled } = modes[mode];
  // Schemas arrive as fresh objects from each database read; compiling costs milliseconds, so
  // compiled validators are kept by the schema's text.
  const key = JSON.stringify(schema);
  let validate = compiled.get(key);
  if (!validate) {
    try {
      validate = ajv.compile(structuredClone(schema));
    } catch (error) {
      throw new AppError(
        ErrorCode.AddonError,
        `The addon's schema for ${root} cannot be evaluated: ${(error as Error).message}`,
      );
    }
    compiled.set(key, validate);
  }
  // Defaults and dropped fields change the data: validated then on a copy (a JSON round trip, about
  // half structuredClone's cost), so the caller's value stays as it came.
  const mutates = mode === 'dropUnknown' || key.includes('"default"');
  const copy = !mutates || data === undefined ? data : JSON.parse(JSON.stringify(data));
  patternBudget = PATTERN_BUDGET;
  let valid: boolean;
  try {
    valid = validate(copy) as boolean;
  } catch (error) {
    if (!(error instanceof PatternBudgetExceeded)) throw error;
    return {
      ok: false,
      problems: [
        {
          field: root,
          message: `is too large to check against the schema's patterns (limit: ${PATTERN_BUDGET} units of string length x pattern size)`,
        },
      ],
    };
  }
  if (valid) return { ok: true, value: copy };
  const errors = validate.errors ?? [];
  const problems = errors.slice(0, MAX_PROBLEMS).map((e) => toProblem(e, root));
  if (errors.length > MAX_PROBLEMS) {
    problems.push({ field: root, message: `and ${errors.length - MAX_PROBLEMS} more problems` });
  }
  return { ok: false, problems };
}

function toProblem(error: ErrorObject, root: string): FieldProblem {
  const pointer = error.instancePath
    .split('/')
    .slice(1)
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'));
  let field = root;
  for (const part of pointer) field += /^\d+$/.test(part) ? `[${part}]` : `.${part}`;
  if (error.keyword === 'required')
    field += `.${(error.params as { missingProperty: string }).missingProperty}`;
  if (error.keyword === 'additionalProperties') {
    field += `.${(error.params as { additionalProperty: string }).additionalProperty}`;
  }
  const message = error.keyword === 'required' ? 'is required' : (error.message ?? 'is invalid');
  return { field, message };
}
