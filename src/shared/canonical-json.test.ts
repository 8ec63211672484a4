import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalJson } from './canonical-json.js';

describe('canonicalJson (the text render cache keys are built from)', () => {
  it('gives equal text for equal values whatever the key order, at every level', () => {
    const a = { title: 'Pay', methods: ['card', { b: 1, a: 2 }], nested: { z: true, y: null } };
    const b = { nested: { y: null, z: true }, methods: ['card', { a: 2, b: 1 }], title: 'Pay' };
    assert.equal(canonicalJson(a), canonicalJson(b));
    assert.equal(
      canonicalJson(a),
      '{"methods":["card",{"a":2,"b":1}],"nested":{"y":null,"z":true},"title":"Pay"}',
    );
  });

  it('reads as JSON.stringify does: undefined members dropped, undefined items null, strings escaped', () => {
    const value = { u: undefined, list: [1, undefined, 'a"\n'], k: { '"': 'x' } };
    assert.equal(canonicalJson(value), '{"k":{"\\"":"x"},"list":[1,null,"a\\"\\n"]}');
    assert.deepEqual(JSON.parse(canonicalJson(value)), JSON.parse(JSON.stringify(value)));
    assert.equal(canonicalJson(undefined), 'null');
    assert.equal(canonicalJson([]), '[]');
    assert.equal(canonicalJson({}), '{}');
  });

  it('keeps values apart that differ only in type or order of array items', () => {
    assert.notEqual(canonicalJson({ a: 1 }), canonicalJson({ a: '1' }));
    assert.notEqual(canonicalJson([1, 2]), canonicalJson([2, 1]));
    assert.notEqual(canonicalJson({ a: { b: 1 } }), canonicalJson({ 'a.b': 1 }));
  });
});
