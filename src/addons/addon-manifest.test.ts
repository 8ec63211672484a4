import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { MANIFEST_LIMITS, parseAddonManifest } from './addon-manifest.js';
import { SCHEMA_LIMITS } from '../shared/json-schema.js';
import { ValidationError } from '../errors/index.js';

const fieldsOf = (input: unknown): string[] => {
  try {
    parseAddonManifest(input);
  } catch (error) {
    assert.ok(error instanceof ValidationError);
    return error.fields.map((f) => f.field);
  }
  return [];
};

describe('parseAddonManifest', () => {
  it('normalises a minimal manifest', () => {
    const m = parseAddonManifest({ name: 'payment-gateway', version: '1.0.0', category: 'ecommerce' });
    assert.equal(m.category, 'ECOMMERCE');
    assert.equal(m.displayName, 'payment-gateway');
    assert.deepEqual(m.widgets, []);
    assert.deepEqual(m.configSchema, { type: 'object' });
  });

  it('accepts the seed body, with endpoints for functions', () => {
    const m = parseAddonManifest({
      name: 'payment-gateway',
      version: '1.0.0',
      category: 'ECOMMERCE',
      widgets: [{ name: 'checkout-form', category: 'FORM', configSchema: { type: 'object' } }],
      endpoints: [{ name: 'process-payment' }],
    });
    assert.deepEqual(
      m.functions.map((f) => f.name),
      ['process-payment'],
    );
  });

  it('names each failing field', () => {
    assert.deepEqual(fieldsOf(null), ['manifest']);
    assert.deepEqual(fieldsOf({ version: '1.0.0', category: 'UTILITIES' }), ['manifest.name']);
    assert.deepEqual(fieldsOf({ name: 'a-b', version: '01.0.0', category: 'UTILITIES' }), [
      'manifest.version',
    ]);
    assert.deepEqual(
      fieldsOf({ name: 'x-y', version: '1.0.0', category: 'UTILITIES', events: { emits: ['bad'] } }),
      ['manifest.events.emits[0]'],
    );
    assert.deepEqual(
      fieldsOf({
        name: 'x-y',
        version: '1.0.0',
        category: 'UTILITIES',
        http: { allow: ['api.example.com'] },
      }),
      ['manifest.http.allow'],
    );
    assert.deepEqual(
      fieldsOf({
        name: 'x-y',
        version: '1.0.0',
        category: 'UTILITIES',
        limits: { memoryMb: 4096, speed: 1 },
      }),
      ['manifest.limits.memoryMb', 'manifest.limits.speed'],
    );
    assert.deepEqual(
      fieldsOf({ name: 'x-y', version: '1.0.0', category: 'UTILITIES', dependencies: { 'x-y': '^1' } }),
      ['manifest.dependencies.x-y'],
    );
    assert.deepEqual(
      fieldsOf({
        name: 'x-y',
        version: '1.0.0',
        category: 'UTILITIES',
        functions: [{ name: 'f', inputSchema: { type: 12 } }, { name: 'f' }],
      }),
      ['manifest.functions[1].name', 'manifest.functions[0].inputSchema'],
    );
  });

  it('keeps events, handlers and http allow-lists it validated', () => {
    const m = parseAddonManifest({
      name: 'inventory',
      version: '1.0.0',
      category: 'ECOMMERCE',
      permissions: ['events.emit', 'http.fetch'],
      events: {
        emits: ['stock.updated', { name: 'stock.low', schema: { type: 'object' } }],
        handles: { 'payment.completed': 'onPaymentCompleted', 'payment.*': 'onPayment' },
      },
      http: { allow: ['API.example.com'] },
    });
    assert.deepEqual(
      m.events.emits.map((e) => e.name),
      ['stock.updated', 'stock.low'],
    );
    assert.equal(m.events.handles['payment.*'], 'onPayment');
    assert.deepEqual(m.http.allow, ['api.example.com']);
  });

  it('refuses a manifest over its limits before parsing its entries, naming the list and the limit', () => {
    const base = { name: 'big-addon', version: '1.0.0', category: 'UTILITIES' };
    const functions = Array.from({ length: MANIFEST_LIMITS.functions + 1 }, (_, i) => ({ name: `f${i}` }));
    assert.throws(
      () => parseAddonManifest({ ...base, functions }),
      (error: ValidationError) =>
        error.fields.length === 1 &&
        error.fields[0].field === 'manifest.functions' &&
        error.fields[0].message ===
          `declares ${MANIFEST_LIMITS.functions + 1} entries; the limit is ${MANIFEST_LIMITS.functions}`,
    );
    const widgets = Array.from({ length: MANIFEST_LIMITS.widgets + 1 }, (_, i) => ({
      name: `w${i}`,
      category: 'DISPLAY',
    }));
    assert.deepEqual(fieldsOf({ ...base, widgets }), ['manifest.widgets']);
    const emits = Array.from({ length: MANIFEST_LIMITS.events + 1 }, (_, i) => `a.e${i}`);
    assert.deepEqual(fieldsOf({ ...base, permissions: ['events.emit'], events: { emits } }), [
      'manifest.events.emits',
    ]);
  });

  it('refuses schemas over the per-schema caps and over the manifest-wide byte cap', () => {
    const base = { name: 'big-addon', version: '1.0.0', category: 'UTILITIES' };
    const wide = {
      type: 'object',
      properties: Object.fromEntries(
        Array.from({ length: SCHEMA_LIMITS.maxKeys + 1 }, (_, i) => [`p${i}`, { type: 'string' }]),
      ),
    };
    assert.deepEqual(fieldsOf({ ...base, configSchema: wide }), ['manifest.configSchema']);
    assert.deepEqual(fieldsOf({ ...base, configSchema: { type: 'string', pattern: '^(a|b)(?=c)' } }), [
      'manifest.configSchema',
    ]);
    // Each schema under its own cap, together over the manifest's.
    const padding = 'x'.repeat(SCHEMA_LIMITS.maxBytes - 100);
    const functions = Array.from({ length: 10 }, (_, i) => ({
      name: `f${i}`,
      inputSchema: { type: 'object', description: padding },
    }));
    assert.deepEqual(fieldsOf({ ...base, functions }), ['manifest']);
  });

  it('refuses an empty category and text PostgreSQL cannot store', () => {
    const base = { name: 'x-y', version: '1.0.0', category: 'UTILITIES' };
    assert.deepEqual(fieldsOf({ ...base, category: '' }), ['manifest.category']);
    assert.deepEqual(fieldsOf({ ...base, description: 'a\u0000b' }), ['manifest.description']);
    assert.deepEqual(fieldsOf({ ...base, author: 'lone \ud800' }), ['manifest.author']);
    assert.deepEqual(fieldsOf({ ...base, functions: [{ name: 'f', description: 'x'.repeat(2001) }] }), [
      'manifest.functions[0].description',
    ]);
  });
});
