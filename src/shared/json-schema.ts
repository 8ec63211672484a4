import { Ajv, type ErrorObject, type ValidateFunction } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { LRUCache } from 'lru-cache';
import type { FieldProblem } from '../errors/index.js';

// ajv-formats is CommonJS; its default export arrives wrapped under ESM.
const addFormats = addFormatsModule as unknown as {
  default?: typeof addFormatsModule;
} & typeof addFormatsModule;
const applyFormats = (addFormats.default ?? addFormats) as unknown as (ajv: Ajv) => Ajv;

/**
 * One ajv instance per purpose: `useDefaults` mutates validated data (config defaults), which
 * checking a manifest must not do.
 */
function createAjv(useDefaults: boolean, removeAdditional = false): Ajv {
  const ajv = new Ajv({ allErrors: true, strict: false, useDefaults, removeAdditional, coerceTypes: false });
  applyFormats(ajv);
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

const plain = createAjv(false);
const modes = {
  strict: compiledBy(createAjv(true)),
  // Moving an installation between versions drops config fields the target no longer declares
  // (where its schema forbids extra fields) instead of refusing the move.
  dropUnknown: compiledBy(createAjv(true, true)),
};

/** Checks that `schema` is itself a valid JSON Schema; returns the problem or null. */
export function jsonSchemaProblem(schema: unknown): string | null {
  if (typeof schema !== 'object' || schema === null || Array.isArray(schema))
    return 'must be a JSON Schema object';
  try {
    plain.compile(schema as object);
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
 * defaulted) data, or the failing paths prefixed with `root` (e.g. `config.theme`).
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
    validate = ajv.compile(structuredClone(schema));
    compiled.set(key, validate);
  }
  const copy = structuredClone(data);
  if (validate(copy)) return { ok: true, value: copy };
  return { ok: false, problems: (validate.errors ?? []).map((e) => toProblem(e, root)) };
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
