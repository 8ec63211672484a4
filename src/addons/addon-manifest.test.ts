import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { parseAddonManifest } from './addon-manifest.js';
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
});
