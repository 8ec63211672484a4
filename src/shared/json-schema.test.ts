import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { AppError, ErrorCode } from '../errors/index.js';
import {
  jsonSchemaProblem,
  MAX_UNIQUE_ITEMS,
  PATTERN_BUDGET,
  SCHEMA_LIMITS,
  validateWithDefaults,
} from './json-schema.js';

const problemsOf = (schema: object, data: unknown) => {
  const result = validateWithDefaults(schema, data, 'data');
  return result.ok ? [] : result.problems;
};

describe('validateWithDefaults on hostile schemas', () => {
  it('evaluates a catastrophic-backtracking pattern in linear time', () => {
    // On a backtracking engine this input takes longer than the test runner allows.
    const schema = { type: 'string', pattern: '^(a+)+$' };
    assert.deepEqual(problemsOf(schema, `${'a'.repeat(5000)}!`), [
      { field: 'data', message: 'must match pattern "^(a+)+$"' },
    ]);
    assert.deepEqual(problemsOf(schema, 'a'.repeat(5000)), []);
  });

  it('refuses input whose pattern checks would exceed the budget, naming the field', () => {
    const schema = { type: 'array', items: { type: 'string', pattern: '[ab]*a[ab]{20}$' } };
    const items = Array.from({ length: 100 }, () => 'ab'.repeat(2000));
    const problems = problemsOf(schema, items);
    assert.equal(problems.length, 1);
    assert.equal(problems[0].field, 'data');
    assert.match(problems[0].message, new RegExp(`too large to check .*${PATTERN_BUDGET}`));
  });

  it('finds duplicates among many non-scalar items by value, whatever the key order', () => {
    const items: unknown[] = Array.from({ length: MAX_UNIQUE_ITEMS - 1 }, (_, i) => ({ a: i, b: [i, 'x'] }));
    assert.deepEqual(problemsOf({ type: 'array', uniqueItems: true }, items), []);
    items.push({ b: [7, 'x'], a: 7 });
    assert.deepEqual(problemsOf({ type: 'array', uniqueItems: true }, items), [
      {
        field: 'data',
        message: `must NOT have duplicate items (items ## 7 and ${MAX_UNIQUE_ITEMS - 1} are identical)`,
      },
    ]);
    items.push({ a: -1 });
    assert.deepEqual(problemsOf({ type: 'array', uniqueItems: true }, items), [
      { field: 'data', message: `must have at most ${MAX_UNIQUE_ITEMS} items to be checked for duplicates` },
    ]);
  });

  it('leaves the caller’s value alone when defaults are filled in', () => {
    const data = { a: 1 };
    const result = validateWithDefaults({ type: 'object', properties: { b: { default: 2 } } }, data, 'data');
    assert.deepEqual(result, { ok: true, value: { a: 1, b: 2 } });
    assert.deepEqual(data, { a: 1 });
  });

  it('checks formats with linear engines, keeping their meaning', () => {
    const cases: [string, string, string][] = [
      ['email', 'a@b.example', 'a@'],
      ['hostname', 'shop.example.com', '-x.example'],
      ['uri', 'https://x.example/a?b', 'no scheme'],
      ['duration', 'P1DT2H', 'PT'],
      ['date-time', '2026-01-02T03:04:05Z', '2026-13-01T00:00:00Z'],
      ['ipv4', '10.0.0.1', '256.0.0.1'],
      ['regex', '^a+$', '(?<=a)b'],
    ];
    for (const [format, good, bad] of cases) {
      assert.deepEqual(problemsOf({ type: 'string', format }, good), [], `${format} ${good}`);
      assert.equal(problemsOf({ type: 'string', format }, bad).length, 1, `${format} ${bad}`);
    }
  });

  it('reports at most 20 problems and counts the rest', () => {
    const problems = problemsOf({ type: 'array', items: { type: 'string' } }, Array(500).fill(1));
    assert.equal(problems.length, 21);
    assert.deepEqual(problems[20], { field: 'data', message: 'and 480 more problems' });
  });

  it('answers ADDON_ERROR for a stored schema today’s rules cannot compile', () => {
    assert.throws(
      () => validateWithDefaults({ type: 'string', pattern: '(a)\\1' }, 'aa', 'config'),
      (error: AppError) => error.code === ErrorCode.AddonError && /config/.test(error.message),
    );
  });
});

describe('jsonSchemaProblem (publish-time caps)', () => {
  it('refuses each cap with a message naming it', () => {
    const nested: Record<string, unknown> = {};
    let current = nested;
    for (let i = 0; i < SCHEMA_LIMITS.maxDepth; i += 1)
      current = (current.items = {}) as Record<string, unknown>;
    const cases: [object, RegExp][] = [
      [{ description: 'x'.repeat(SCHEMA_LIMITS.maxBytes) }, /bytes of JSON; the limit is 32768/],
      [nested, /nested deeper than 32/],
      [{ enum: Array.from({ length: SCHEMA_LIMITS.maxEnum + 1 }, (_, i) => i) }, /enum of 257 values/],
      [{ pattern: 'a'.repeat(SCHEMA_LIMITS.maxPatternChars + 1) }, /257 characters; the limit is 256/],
      [{ pattern: 'a{300}' }, /compiles to \d+ instructions; the limit is 256/],
      [{ pattern: '(?!x)' }, /RE2 syntax: no lookaround/],
      [
        { allOf: Array.from({ length: SCHEMA_LIMITS.maxPatterns + 1 }, () => ({ pattern: 'a' })) },
        /more than 64 patterns/,
      ],
      [{ type: 'nonsense' }, /is not a valid JSON Schema/],
    ];
    for (const [schema, expected] of cases) assert.match(jsonSchemaProblem(schema) ?? '', expected);
    assert.equal(jsonSchemaProblem({ type: 'object', properties: { a: { pattern: '^\\u00e9+$' } } }), null);
  });
});
