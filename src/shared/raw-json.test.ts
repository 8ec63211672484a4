import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isJsonText, RawJson, stringifyWithRawJson } from './raw-json.js';

/** A small deterministic PRNG (mulberry32), so a failing mutation can be reproduced. */
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const parses = (text: string): boolean => {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
};

const VALID = [
  '0',
  '-0',
  '12.5e-3',
  '1E+2',
  '"plain"',
  '"esc \\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\uD83D\\uDE00"',
  '"lone \\ud800 surrogate"',
  'true',
  'false',
  'null',
  '[]',
  '{}',
  ' \n\t\r[ 1 , "two" , { "three" : [ null , true ] } ] \n',
  '{"__proto__":{"polluted":true},"constructor":{"prototype":{}}}',
  JSON.stringify({ deep: Array.from({ length: 50 }, (_, i) => ({ i, s: `x${i}`, f: i / 7 })) }),
  `${'['.repeat(5000)}${']'.repeat(5000)}`,
];

const INVALID = [
  '',
  ' ',
  '01',
  '-',
  '1.',
  '.5',
  '1e',
  '+1',
  'NaN',
  'tru',
  'nul',
  '"unterminated',
  '"bad escape \\x"',
  '"short \\u12"',
  '"raw \u0001 control"',
  "'single'",
  '[1,]',
  '[,1]',
  '{"a":1,}',
  '{"a" 1}',
  '{a:1}',
  '{"a":1',
  '[1 2]',
  '1 2',
  '{"a":1}}',
  '[]]',
  `${'['.repeat(5000)}${']'.repeat(4999)}`,
];

describe('isJsonText', () => {
  it('accepts what JSON.parse accepts', () => {
    for (const text of VALID) assert.equal(isJsonText(text), true, text.slice(0, 80));
  });

  it('refuses what JSON.parse refuses', () => {
    for (const text of INVALID) {
      assert.equal(parses(text), false, `the corpus is wrong about ${text}`);
      assert.equal(isJsonText(text), false, text.slice(0, 80));
    }
  });

  it('agrees with JSON.parse on 20,000 random mutations of JSON texts', () => {
    const random = prng(20261201);
    const alphabet = '{}[],:"\\ -+.0123456789eEtrufalsn\u0001\u00e9x';
    const texts = VALID.filter((t) => t.length < 2000);
    let valid = 0;
    for (let n = 0; n < 20_000; n += 1) {
      let text = texts[Math.floor(random() * texts.length)];
      const edits = 1 + Math.floor(random() * 3);
      for (let e = 0; e < edits; e += 1) {
        const at = Math.floor(random() * (text.length + 1));
        const ch = alphabet[Math.floor(random() * alphabet.length)];
        const kind = random();
        if (kind < 0.33) text = text.slice(0, at) + ch + text.slice(at);
        else if (kind < 0.66) text = text.slice(0, at) + text.slice(at + 1);
        else text = text.slice(0, at) + ch + text.slice(at + 1);
      }
      const expected = parses(text);
      if (expected) valid += 1;
      assert.equal(isJsonText(text), expected, `mutation ${n}: ${JSON.stringify(text).slice(0, 200)}`);
    }
    // Both verdicts were exercised, not only refusals.
    assert.ok(valid > 1000, `${valid} of the mutations were valid JSON`);
  });
});

describe('stringifyWithRawJson', () => {
  it('writes each RawJson as its text, wherever it sits', () => {
    const value = {
      data: { a: new RawJson('{"x":[1,2]}'), list: [new RawJson('"s"'), 3, new RawJson('null')] },
      after: 'tail',
    };
    assert.equal(
      stringifyWithRawJson(value),
      '{"data":{"a":{"x":[1,2]},"list":["s",3,null]},"after":"tail"}',
    );
    assert.equal(stringifyWithRawJson(new RawJson(' [true] ')), ' [true] ');
  });

  it('leaves strings that look like its marker alone', () => {
    const value = { a: new RawJson('1'), b: 'rawjson:00000000000000000000000000000000', c: new RawJson('2') };
    assert.equal(stringifyWithRawJson(value), '{"a":1,"b":"rawjson:00000000000000000000000000000000","c":2}');
  });

  it('is plain JSON.stringify for values without RawJson', () => {
    const value = { a: [1, 'two', { three: null }], d: new Date(0) };
    assert.equal(stringifyWithRawJson(value), JSON.stringify(value));
    assert.equal(stringifyWithRawJson(undefined), undefined);
  });

  it('parses the text where a plain JSON.stringify meets a RawJson', () => {
    assert.equal(JSON.stringify({ a: new RawJson('{"b": [1, 2]}') }), '{"a":{"b":[1,2]}}');
  });
});
