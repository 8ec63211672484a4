import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import vm from 'node:vm';
import { parseAddonManifest, type AddonManifest } from '../../src/addons/addon-manifest.js';
import type { AddonPackage } from '../../src/addons/addon-package.js';
import { validateWithDefaults } from '../../src/shared/json-schema.js';
import type { AddonBundle, SandboxPool } from '../../src/sandbox/index.js';
import { codeOf, createPool, makeBundle, MemoryCapabilities } from '../sandbox/helpers.js';
import { CARDS, EXAMPLE_NAMES, readExamples, submitForm, type ExampleName } from './helpers.js';

/* eslint-disable @typescript-eslint/no-explicit-any -- addon outputs are JSON read field by field */

const XSS = `"><img src=x onerror=alert(1)><script>alert(1)</script>`;

/**
 * One example addon installed on one (fresh) site of the real sandbox pool, with in-memory storage
 * and events. Inputs, widget configs and the installation config go through the manifest's schemas
 * with defaults applied, exactly as the server does before it calls the sandbox.
 */
class Installed {
  readonly siteId = `site-${randomUUID()}`;
  readonly config: Record<string, unknown>;

  constructor(
    readonly manifest: AddonManifest,
    readonly bundle: AddonBundle,
    private readonly pool: SandboxPool,
    private readonly caps: MemoryCapabilities,
    installConfig: Record<string, unknown> = {},
  ) {
    this.config = valid(manifest.configSchema, installConfig, 'config') as Record<string, unknown>;
  }

  /** Runs a declared function; its input must satisfy the declared inputSchema. */
  async call(name: string, data: unknown = {}): Promise<any> {
    const declared = this.manifest.functions.find((f) => f.name === name);
    assert.ok(declared, `${this.manifest.name} declares no function ${name}`);
    const input = declared.inputSchema ? valid(declared.inputSchema, data, 'data') : data;
    return (await this.run({ kind: 'function', name }, input)).output;
  }

  /** The problems the server would report for `data`, before running anything. */
  inputProblems(name: string, data: unknown): string[] {
    const declared = this.manifest.functions.find((f) => f.name === name);
    const result = validateWithDefaults(declared?.inputSchema ?? {}, data, 'data');
    return result.ok ? [] : result.problems.map((p) => p.field);
  }

  /** Renders a declared widget: config validated with defaults, context reduced to varyOn. */
  async render(
    name: string,
    config: unknown = {},
    context: Record<string, unknown> = {},
  ): Promise<{ html: string; css?: string; javascript?: string }> {
    const widget = this.manifest.widgets.find((w) => w.name === name);
    assert.ok(widget, `${this.manifest.name} declares no widget ${name}`);
    const varied = Object.fromEntries(Object.entries(context).filter(([k]) => widget.varyOn.includes(k)));
    const widgetConfig = valid(widget.configSchema, config, 'config');
    return (await this.run({ kind: 'widget', name }, varied, widgetConfig)).output as never;
  }

  /** Delivers an event to the handler the manifest maps it to. */
  async deliver(event: Record<string, unknown>): Promise<any> {
    const handler = this.manifest.events.handles[event.name as string];
    assert.ok(handler, `${this.manifest.name} does not handle ${String(event.name)}`);
    return (await this.run({ kind: 'handler', name: handler }, event)).output;
  }

  /** Events this installation emitted (checked against the declared schemas), oldest first. */
  emitted(name?: string): any[] {
    return this.caps.events
      .filter((e) => e.scope.addonId === this.bundle.addonId && e.scope.siteId === this.siteId)
      .filter((e) => name === undefined || e.name === name)
      .map((e) => {
        const declared = this.manifest.events.emits.find((d) => d.name === e.name);
        assert.ok(declared, `emitted undeclared event ${e.name}`);
        if (declared.schema) valid(declared.schema, e.data, `data of ${e.name}`);
        return e.data;
      });
  }

  /**
   * Runs an entry. The platform commits a call's writes and events only when it succeeds (see
   * test/executions/atomic-effects.test.ts); these in-memory ones are put back as they were when a
   * call fails, so the examples run here under the same rule. Calls of these tests never overlap.
   */
  private async run(
    entry: { kind: 'function' | 'widget' | 'handler'; name: string },
    input: unknown,
    widgetConfig?: unknown,
  ) {
    const store = new Map(this.caps.store);
    const emitted = this.caps.events.length;
    try {
      return await this.pool.execute({
        bundle: this.bundle,
        siteId: this.siteId,
        installationId: `inst-${this.siteId}`,
        config: this.config,
        entry,
        input,
        ...(widgetConfig === undefined ? {} : { widgetConfig }),
      });
    } catch (error) {
      this.caps.store.clear();
      for (const [key, value] of store) this.caps.store.set(key, value);
      this.caps.events.length = emitted;
      throw error;
    }
  }
}

function valid(schema: object, data: unknown, what: string): unknown {
  const result = validateWithDefaults(schema, data, what);
  if (!result.ok) throw new Error(`${what} is invalid: ${JSON.stringify(result.problems)}`);
  return result.value;
}

/** A delivery as the platform's worker hands it to a handler. */
function delivery(name: string, data: unknown, source: string, idempotencyKey = randomUUID()) {
  return {
    id: idempotencyKey,
    idempotencyKey,
    name,
    source,
    siteId: 'ignored',
    data,
    createdAt: new Date().toISOString(),
    deliveryId: randomUUID(),
    attempt: 1,
  };
}

const card = (number: string, extra: Record<string, unknown> = {}) => ({
  number,
  expMonth: 12,
  expYear: 2099,
  cvc: '123',
  ...extra,
});

describe('example addons', () => {
  let packages: Record<ExampleName, AddonPackage>;
  const manifests = {} as Record<ExampleName, AddonManifest>;
  const bundles = {} as Record<ExampleName, AddonBundle>;
  const caps = new MemoryCapabilities();
  let pool: SandboxPool;

  before(async () => {
    packages = await readExamples();
    for (const name of EXAMPLE_NAMES) {
      const manifest = parseAddonManifest(packages[name].manifest);
      manifests[name] = manifest;
      bundles[name] = makeBundle(packages[name].source, {
        addonName: name,
        addonId: `id-${name}`,
        permissions: manifest.permissions,
        limits: manifest.limits,
        dependencies: manifest.dependencies,
        httpAllow: manifest.http.allow,
        emits: manifest.events.emits.map((e) => e.name),
      });
    }
    pool = createPool(caps);
    await pool.start();
  });
  after(() => pool.close());

  const install = (name: ExampleName, config: Record<string, unknown> = {}) =>
    new Installed(manifests[name], bundles[name], pool, caps, config);

  it('each manifest is valid, each source is one self-contained script, and every declared entry exists', async () => {
    for (const name of EXAMPLE_NAMES) {
      const { manifest, source } = packages[name];
      const parsed = manifests[name];
      // given: the folder layout readAddonPackage reads
      assert.equal(parsed.name, name);
      assert.equal(parsed.version, '1.0.0');
      assert.deepEqual(
        Object.keys(manifest).filter((k) => !(k in parsed)),
        [],
        'no manifest field is silently dropped',
      );
      assert.match(source, /^\/\/ @ts-check\n\/\/\/ <reference path="\.\.\/sdk\.d\.ts" \/>/);
      assert.doesNotMatch(source, /\brequire\s*\(|^\s*import\s|\bimport\s*\(/m);
      // every declared permission is used, and nothing beyond storage and events is asked for
      assert.deepEqual(parsed.permissions, ['storage.read', 'storage.write', 'events.emit']);
      for (const fn of parsed.functions) {
        assert.ok(fn.inputSchema, `${name}/${fn.name} declares an inputSchema`);
        assert.ok(fn.description, `${name}/${fn.name} is described`);
      }
      for (const event of parsed.events.emits)
        assert.ok(event.schema, `${name} declares the data of ${event.name}`);
      // when: every declared entry is looked up in the module (a missing one fails with NOT_FOUND)
      const site = install(name);
      const bad = await codeOf(
        pool.execute({
          bundle: bundles[name],
          siteId: site.siteId,
          installationId: null,
          config: site.config,
          entry: { kind: 'function', name: 'no-such-function' },
          input: {},
        }),
      );
      assert.equal(bad.code, 'NOT_FOUND');
      for (const eventName of Object.keys(parsed.events.handles)) {
        const result = await site.deliver(delivery(eventName, {}, 'nobody'));
        assert.deepEqual(
          result,
          { ignored: true, reason: 'untrusted-source' },
          `${name} handles ${eventName}`,
        );
      }
    }
    assert.deepEqual(
      manifests['payment-gateway'].widgets.map((w) => w.name),
      ['checkout-form', 'payment-status', 'receipt'],
    );
    assert.deepEqual(manifests.inventory.widgets.find((w) => w.name === 'stock-display')?.invalidateOn, [
      'stock.updated',
      'item.reserved',
    ]);
  });

  describe('payment-gateway', () => {
    it('charges test cards with deterministic outcomes, stores the transaction and emits the matching event', async () => {
      // given
      const gateway = install('payment-gateway', { merchantName: 'Acme', currency: 'EUR' });
      const items = [{ sku: 'TEE', name: 'Tee', quantity: 2, unitAmount: 1250 }];
      // when
      const ok = await gateway.call('process-payment', {
        orderId: 'o-1',
        amount: 2500,
        card: card(CARDS.visa),
        items,
        customer: { email: 'ada@example.com', name: 'Ada' },
      });
      const declined = await gateway.call('process-payment', {
        orderId: 'o-2',
        amount: 900,
        card: card(CARDS.declined),
      });
      const funds = await gateway.call('process-payment', {
        amount: 900,
        card: card(CARDS.insufficientFunds),
      });
      const checksum = await gateway.call('process-payment', { amount: 900, card: card(CARDS.badChecksum) });
      const expired = await gateway.call('process-payment', {
        amount: 900,
        card: card(CARDS.visa, { expYear: 2001 }),
      });
      const tooLarge = await gateway.call('process-payment', { amount: 5_000_000, card: card(CARDS.visa) });
      // then
      assert.equal(ok.status, 'succeeded');
      assert.match(ok.transactionId, /^txn_[a-z0-9]+$/);
      assert.deepEqual(ok.card, { brand: 'visa', last4: '4242' });
      assert.equal(ok.currency, 'EUR');
      assert.equal(ok.message, 'Payment of €25.00 approved.');
      assert.deepEqual(
        [declined, funds, checksum, expired, tooLarge].map((r) => [r.status, r.failure.code]),
        [
          ['failed', 'card_declined'],
          ['failed', 'insufficient_funds'],
          ['failed', 'incorrect_number'],
          ['failed', 'expired_card'],
          ['failed', 'amount_too_large'],
        ],
      );
      const completed = gateway.emitted('payment.completed');
      assert.deepEqual(completed, [
        {
          transactionId: ok.transactionId,
          orderId: 'o-1',
          amount: 2500,
          currency: 'EUR',
          brand: 'visa',
          last4: '4242',
          items,
          customer: { email: 'ada@example.com', name: 'Ada' },
        },
      ]);
      assert.deepEqual(
        gateway.emitted('payment.failed').map((e) => e.code),
        ['card_declined', 'insufficient_funds', 'incorrect_number', 'expired_card', 'amount_too_large'],
      );
      // no card number is kept anywhere
      assert.doesNotMatch(JSON.stringify([...caps.store.values()]), /4242 4242|4242424242424242/);
    });

    it('never charges an order twice, replays an idempotency key, and refuses malformed input by schema', async () => {
      const gateway = install('payment-gateway');
      const first = await gateway.call('process-payment', {
        orderId: 'o-9',
        amount: 100,
        card: card(CARDS.visa),
      });
      const again = await gateway.call('process-payment', {
        orderId: 'o-9',
        amount: 100,
        card: card(CARDS.visa),
      });
      const keyed = await gateway.call('process-payment', {
        idempotencyKey: 'checkout-123',
        amount: 300,
        card: card(CARDS.declined),
      });
      const replay = await gateway.call('process-payment', {
        idempotencyKey: 'checkout-123',
        amount: 300,
        card: card(CARDS.visa),
      });
      assert.equal(again.duplicate, true);
      assert.equal(again.transactionId, first.transactionId);
      assert.equal(replay.transactionId, keyed.transactionId);
      assert.equal(replay.status, 'failed');
      assert.equal(gateway.emitted('payment.completed').length, 1);
      assert.equal(gateway.emitted('payment.failed').length, 1);
      assert.deepEqual(
        gateway.inputProblems('process-payment', { amount: 0, card: { number: 'x', expMonth: 13 } }),
        ['data.amount', 'data.card.expYear', 'data.card.number', 'data.card.expMonth'],
      );
    });

    it('verifies and refunds, partially then fully, and refuses to refund more than is left', async () => {
      // given
      const gateway = install('payment-gateway');
      const paid = await gateway.call('process-payment', {
        orderId: 'o-5',
        amount: 5000,
        card: card(CARDS.visa),
      });
      const failed = await gateway.call('process-payment', { amount: 5000, card: card(CARDS.declined) });
      // when
      const verified = await gateway.call('verify-transaction', {
        transactionId: paid.transactionId,
        amount: 5000,
        orderId: 'o-5',
      });
      const mismatch = await gateway.call('verify-transaction', {
        transactionId: paid.transactionId,
        amount: 4999,
      });
      const unpaid = await gateway.call('verify-transaction', { transactionId: failed.transactionId });
      const unknown = await gateway.call('verify-transaction', { transactionId: 'txn_doesnotexist' });
      const partial = await gateway.call('refund', { transactionId: paid.transactionId, amount: 2000 });
      const tooMuch = await codeOf(
        gateway.call('refund', { transactionId: paid.transactionId, amount: 3001 }),
      );
      const rest = await gateway.call('refund', { transactionId: paid.transactionId, reason: 'duplicate' });
      const afterFull = await codeOf(gateway.call('refund', { transactionId: paid.transactionId }));
      const ofFailed = await codeOf(gateway.call('refund', { transactionId: failed.transactionId }));
      // then
      assert.equal(verified.valid, true);
      assert.deepEqual(
        [mismatch.reason, unpaid.reason, unknown.reason],
        ['amount_mismatch', 'not_paid', 'not_found'],
      );
      assert.deepEqual([partial.status, partial.amountRefunded], ['partially_refunded', 2000]);
      assert.deepEqual(tooMuch, {
        code: 'ADDON_ERROR',
        message: 'Cannot refund $30.01: only $30.00 is left to refund.',
      });
      assert.deepEqual([rest.status, rest.amountRefunded], ['refunded', 5000]);
      assert.equal(afterFull.code, 'ADDON_ERROR');
      assert.match(ofFailed.message, /is failed; only paid transactions can be refunded/);
      assert.deepEqual(
        gateway
          .emitted('refund.processed')
          .map((e) => [e.amount, e.amountRefunded, e.fullyRefunded, e.reason]),
        [
          [2000, 2000, false, 'requested_by_customer'],
          [3000, 5000, true, 'duplicate'],
        ],
      );
      assert.equal(
        (await gateway.call('verify-transaction', { transactionId: paid.transactionId })).reason,
        'refunded',
      );
    });

    it('renders the checkout form escaped, with a script that compiles and a form the host can relay', async () => {
      // given
      const gateway = install('payment-gateway', {
        merchantName: `Acme ${XSS}`,
        hostOrigin: 'https://shop.example.com',
      });
      const cart = {
        orderId: 'o-77',
        currency: 'USD',
        items: [
          { sku: 'TEE', name: `Tee ${XSS}`, quantity: 2, unitAmount: 1500 },
          { sku: 'bad sku!', quantity: 1, unitAmount: 999 },
        ],
      };
      // when
      const form = await gateway.render(
        'checkout-form',
        { title: XSS, buttonLabel: 'Buy' },
        { cart, other: 'x' },
      );
      const empty = await gateway.render('checkout-form', {}, {});
      // then
      assert.doesNotMatch(form.html, /<img|<script|onerror=/);
      assert.match(form.html, /<h2>&quot;&gt;&lt;img src&#61;x onerror&#61;alert\(1\)&gt;&lt;script&gt;/);
      assert.match(form.html, /Paying Acme &quot;&gt;&lt;img/);
      assert.match(form.html, /data-tp-target-origin="https:\/\/shop.example.com"/);
      assert.match(form.html, /<button type="submit">Buy \$30\.00<\/button>/);
      assert.doesNotMatch(form.html, /bad sku/, 'malformed cart lines are dropped');
      assert.ok(form.javascript && form.css);
      assert.doesNotThrow(() => new vm.Script(form.javascript!), 'the widget script is valid JavaScript');
      assert.match(form.javascript!, /themepress:execute/);
      assert.doesNotMatch(
        form.javascript!,
        /fetch\(|XMLHttpRequest/,
        'the widget never calls the network itself',
      );
      assert.match(empty.html, /Your cart is empty/);
      const submission = submitForm(form.html, {
        'card.number': CARDS.visa,
        'card.expMonth': '12',
        'card.expYear': '2099',
        'card.cvc': '123',
        'customer.email': 'ada@example.com',
      });
      assert.equal(submission.endpoint, '/api/addons/payment-gateway/execute');
      assert.deepEqual(submission.body, {
        action: 'process-payment',
        data: {
          orderId: 'o-77',
          amount: 3000,
          currency: 'USD',
          items: [{ sku: 'TEE', name: `Tee ${XSS}`, quantity: 2, unitAmount: 1500 }],
          customer: { email: 'ada@example.com' },
          card: { number: CARDS.visa, expMonth: 12, expYear: 2099, cvc: '123' },
        },
      });
      // and the relayed body is a valid process-payment call
      const result = await gateway.call(submission.body.action, submission.body.data);
      assert.equal(result.status, 'succeeded');
    });

    it('renders payment status and receipt for the transaction in the page context', async () => {
      const gateway = install('payment-gateway', { merchantName: 'Acme' });
      const paid = await gateway.call('process-payment', {
        orderId: 'o-3',
        amount: 4000,
        card: card(CARDS.visa),
        items: [{ sku: 'MUG', name: 'Mug <b>', quantity: 1, unitAmount: 4000 }],
      });
      await gateway.call('refund', { transactionId: paid.transactionId, amount: 1000 });
      const failed = await gateway.call('process-payment', { amount: 10, card: card(CARDS.declined) });

      const status = await gateway.render('payment-status', {}, { transactionId: paid.transactionId });
      const failedStatus = await gateway.render(
        'payment-status',
        {},
        { transactionId: failed.transactionId },
      );
      const unknown = await gateway.render('payment-status', {}, { transactionId: '"><x>' });
      const receipt = await gateway.render(
        'receipt',
        { footer: 'Bye <3' },
        { transactionId: paid.transactionId },
      );

      assert.match(status.html, /data-status="partially_refunded"/);
      assert.match(status.html, /Partially refunded/);
      assert.match(status.html, /\$40\.00 \(refunded \$10\.00\)/);
      assert.match(failedStatus.html, /Failed[\s\S]*Your card was declined\./);
      assert.match(unknown.html, /No payment found/);
      assert.match(receipt.html, /Mug &lt;b&gt; × 1/);
      assert.match(receipt.html, /Refund \(requested by customer\)/);
      assert.match(receipt.html, /<strong>Acme<\/strong>/);
      assert.match(receipt.html, /Bye &lt;3/);
    });
  });

  describe('inventory', () => {
    it('sets and adjusts stock all-or-nothing, checks availability and reserves, emitting stock events', async () => {
      // given
      const inventory = install('inventory', { lowStockThreshold: 3 });
      // when
      const set = await inventory.call('update-stock', {
        items: [
          { sku: 'TEE', name: 'Tee', stock: 10 },
          { sku: 'MUG', name: 'Mug', stock: 4 },
        ],
      });
      const refused = await codeOf(
        inventory.call('update-stock', {
          items: [
            { sku: 'TEE', delta: 5 },
            { sku: 'MUG', delta: -5 },
          ],
        }),
      );
      const adjusted = await inventory.call('update-stock', {
        items: [{ sku: 'MUG', delta: -2 }],
        reason: 'breakage',
      });
      const check = await inventory.call('check-availability', {
        items: [{ sku: 'TEE', quantity: 10 }, { sku: 'MUG', quantity: 3 }, { sku: 'NOPE' }],
      });
      const reserved = await inventory.call('reserve-items', {
        orderId: 'o-1',
        items: [{ sku: 'TEE', quantity: 4 }],
      });
      const again = await inventory.call('reserve-items', {
        orderId: 'o-1',
        items: [{ sku: 'TEE', quantity: 4 }],
      });
      const short = await inventory.call('reserve-items', {
        items: [
          { sku: 'TEE', quantity: 7 },
          { sku: 'MUG', quantity: 1 },
        ],
      });
      const afterReserve = await inventory.call('check-availability', { items: [{ sku: 'TEE' }] });
      // then
      assert.deepEqual(
        set.items.map((i: any) => [i.sku, i.previous, i.stock]),
        [
          ['TEE', null, 10],
          ['MUG', null, 4],
        ],
      );
      assert.deepEqual(refused, {
        code: 'ADDON_ERROR',
        message: 'Stock of "MUG" cannot go below 0 (it is 4, delta -5).',
      });
      assert.equal(adjusted.items[0].stock, 2);
      assert.equal(check.available, false);
      assert.deepEqual(
        check.items.map((i: any) => [i.sku, i.available, i.sufficient, i.known]),
        [
          ['TEE', 10, true, true],
          ['MUG', 2, false, true],
          ['NOPE', 0, false, false],
        ],
      );
      assert.equal(reserved.reserved, true);
      assert.equal(again.duplicate, true);
      assert.equal(again.reservationId, reserved.reservationId);
      assert.deepEqual(short.shortages, [{ sku: 'TEE', requested: 7, available: 6 }]);
      assert.deepEqual(
        [afterReserve.items[0].stock, afterReserve.items[0].reserved, afterReserve.items[0].available],
        [10, 4, 6],
      );
      assert.deepEqual(
        inventory
          .emitted('stock.updated')
          .map((e) => [e.reason, e.items.map((i: any) => `${i.sku}:${i.stock}`).join()]),
        [
          ['manual', 'TEE:10,MUG:4'],
          ['breakage', 'MUG:2'],
        ],
      );
      // MUG fell from 4 to 2 (threshold 3): one alert, not one per update
      assert.deepEqual(inventory.emitted('stock.low'), [
        { threshold: 3, items: [{ sku: 'MUG', name: 'Mug', stock: 2 }] },
      ]);
      assert.deepEqual(inventory.emitted('item.reserved'), [
        { reservationId: reserved.reservationId, orderId: 'o-1', items: [{ sku: 'TEE', quantity: 4 }] },
      ]);
      assert.deepEqual(inventory.inputProblems('update-stock', { items: [{ sku: 'TEE' }] }), [
        'data.items[0].stock',
        'data.items[0].delta',
        'data.items[0]',
      ]);
    });

    it('decrements stock once per payment.completed, however often it is delivered, and only from the gateway', async () => {
      // given
      const inventory = install('inventory');
      await inventory.call('update-stock', {
        items: [
          { sku: 'TEE', stock: 10 },
          { sku: 'MUG', stock: 4 },
        ],
      });
      await inventory.call('reserve-items', { orderId: 'o-1', items: [{ sku: 'TEE', quantity: 2 }] });
      const data = {
        transactionId: 'txn_abc123',
        orderId: 'o-1',
        amount: 100,
        currency: 'USD',
        brand: 'visa',
        last4: '4242',
        items: [
          { sku: 'TEE', quantity: 2 },
          { sku: 'MUG', quantity: 1 },
          { sku: 'GHOST', quantity: 1 },
        ],
        customer: {},
      };
      const event = delivery('payment.completed', data, 'payment-gateway');
      // when
      const first = await inventory.deliver(event);
      const repeat = await inventory.deliver({ ...event, deliveryId: randomUUID(), attempt: 2 });
      const forged = await inventory.deliver(delivery('payment.completed', data, 'platform'));
      const stock = await inventory.call('check-availability', { items: [{ sku: 'TEE' }, { sku: 'MUG' }] });
      // then
      assert.deepEqual(first.unknown, ['GHOST']);
      assert.deepEqual(repeat, { duplicate: true });
      assert.deepEqual(forged, { ignored: true, reason: 'untrusted-source' });
      assert.deepEqual(
        stock.items.map((i: any) => [i.sku, i.stock, i.reserved]),
        [
          ['TEE', 8, 0],
          ['MUG', 3, 0],
        ],
        'the reservation became the sale',
      );
      const updates = inventory.emitted('stock.updated').filter((e) => e.reason === 'payment');
      assert.deepEqual(updates, [
        {
          reason: 'payment',
          reference: 'o-1',
          items: [
            { sku: 'TEE', previous: 10, stock: 8, available: 8 },
            { sku: 'MUG', previous: 4, stock: 3, available: 3 },
          ],
        },
      ]);
    });

    it('renders stock display, low-stock alert and inventory table, escaping item names', async () => {
      const inventory = install('inventory', { lowStockThreshold: 3 });
      await inventory.call('update-stock', {
        items: [
          { sku: 'TEE', name: `Tee ${XSS}`, stock: 10 },
          { sku: 'MUG', name: 'Mug', stock: 2 },
          { sku: 'CAP', name: 'Cap', stock: 0 },
        ],
      });
      const inStock = await inventory.render('stock-display', { sku: 'TEE' });
      const fromPage = await inventory.render('stock-display', {}, { sku: 'MUG' });
      const out = await inventory.render('stock-display', { sku: 'CAP' });
      const unknown = await inventory.render('stock-display', {}, { sku: 'NOPE' });
      const noSku = await inventory.render('stock-display', {});
      const alert = await inventory.render('low-stock-alert', {});
      const table = await inventory.render('inventory-table', {});

      assert.match(inStock.html, /data-state="in" data-available="10"[\s\S]*In stock[\s\S]*\(10 available\)/);
      assert.match(fromPage.html, /data-sku="MUG" data-state="low" data-available="2"[\s\S]*Only 2 left/);
      assert.match(out.html, /Out of stock/);
      assert.match(unknown.html, /data-state="unknown">Unavailable[\s\S]*SKU NOPE is not in the inventory/);
      assert.match(
        noSku.html,
        /data-state="no-sku">Unavailable[\s\S]*no SKU: set "sku" in the widget config/,
      );
      assert.match(alert.html, /data-count="2"/);
      assert.ok(alert.html.indexOf('CAP') < alert.html.indexOf('MUG'), 'lowest first');
      assert.doesNotMatch(alert.html, /TEE/);
      assert.equal((table.html.match(/<tr data-sku=/g) ?? []).length, 3);
      assert.doesNotMatch(table.html, /<img|<script/);
      assert.match(table.html, /Tee &quot;&gt;&lt;img/);
    });
  });

  describe('email-marketing', () => {
    it('confirms each completed payment once, in the outbox, and ignores other sources', async () => {
      // given
      const email = install('email-marketing', { fromName: 'Acme', fromAddress: 'shop@acme.example' });
      const data = {
        transactionId: 'txn_abc123',
        orderId: 'o-1',
        amount: 123456,
        currency: 'USD',
        brand: 'visa',
        last4: '4242',
        items: [{ sku: 'TEE', name: 'Tee', quantity: 2 }],
        customer: { email: 'ada@example.com', name: 'Ada' },
      };
      const event = delivery('payment.completed', data, 'payment-gateway');
      // when
      const first = await email.deliver(event);
      const repeat = await email.deliver({ ...event, attempt: 2 });
      const forged = await email.deliver(delivery('payment.completed', data, 'platform'));
      const noRecipient = await email.deliver(
        delivery('payment.completed', { ...data, customer: {} }, 'payment-gateway'),
      );
      const outbox = await email.call('list-outbox', { kind: 'payment-confirmation' });
      // then
      assert.deepEqual(repeat, { duplicate: true, emailId: first.emailId });
      assert.equal(forged.ignored, true);
      assert.equal(noRecipient.reason, 'no-recipient');
      assert.equal(outbox.emails.length, 1);
      const [mail] = outbox.emails;
      assert.equal(mail.to, 'ada@example.com');
      assert.equal(mail.from, 'Acme <shop@acme.example>');
      assert.equal(mail.subject, 'Payment received for order o-1');
      assert.match(
        mail.text,
        /^Hi Ada,\n\nWe received your payment of \$1,234\.56 \(visa ending in 4242\)\.\n\nItems:\n- 2 × Tee\n/,
      );
      assert.match(mail.text, /Transaction: txn_abc123\n\nThank you,\nAcme$/);
      assert.deepEqual(email.emitted('email.sent'), [
        {
          emailId: first.emailId,
          to: 'ada@example.com',
          subject: mail.subject,
          kind: 'payment-confirmation',
          reference: 'txn_abc123',
        },
      ]);
    });

    it('manages subscribers, welcomes new ones, sends transactional mail and campaigns by tag', async () => {
      // given
      const email = install('email-marketing', { fromName: 'Acme' });
      // when
      const added = await email.call('manage-subscribers', {
        action: 'add',
        email: 'Ada@Example.com',
        name: 'Ada',
        tags: ['vip'],
      });
      const twice = await email.call('manage-subscribers', { action: 'add', email: 'ada@example.com' });
      await email.call('manage-subscribers', { action: 'add', email: 'bob@example.com' });
      await email.call('manage-subscribers', { action: 'add', email: 'cy@example.com', tags: ['vip'] });
      const removed = await email.call('manage-subscribers', { action: 'remove', email: 'cy@example.com' });
      const listed = await email.call('manage-subscribers', { action: 'list' });
      const dry = await email.call('create-campaign', {
        name: 'Sale',
        subject: 'Hi {{name}}',
        body: 'Sale for {{ email }}',
        dryRun: true,
      });
      const vip = await email.call('create-campaign', {
        name: 'VIP',
        subject: 'Hi {{name}}',
        body: 'Early access for {{email}}',
        tag: 'vip',
      });
      const sent = await email.call('send-email', {
        to: 'bob@example.com',
        subject: 'Your order',
        text: 'Shipped.',
      });
      const templated = await email.call('send-email', {
        to: 'bob@example.com',
        template: 'welcome',
        variables: { name: 'Bob' },
      });
      const campaignMail = await email.call('list-outbox', { kind: 'campaign' });
      const all = await email.call('list-outbox', { limit: 100 });
      // then
      assert.equal(added.added, true);
      assert.equal(added.subscriber.email, 'ada@example.com');
      assert.deepEqual([twice.added, twice.subscriber.name, twice.subscriber.tags], [false, 'Ada', ['vip']]);
      assert.equal(removed.removed, true);
      assert.deepEqual(
        listed.subscribers.map((s: any) => [s.email, s.status]),
        [
          ['ada@example.com', 'subscribed'],
          ['bob@example.com', 'subscribed'],
          ['cy@example.com', 'unsubscribed'],
        ],
      );
      assert.deepEqual([dry.dryRun, dry.recipients], [true, 2]);
      assert.deepEqual([vip.recipients, vip.sent], [1, 1]);
      assert.deepEqual(
        campaignMail.emails.map((m: any) => [m.to, m.subject, m.text]),
        [['ada@example.com', 'Hi Ada', 'Early access for ada@example.com']],
      );
      assert.equal(sent.status, 'sent');
      assert.ok(templated.emailId);
      // (emails recorded within the same millisecond may list in either order)
      assert.deepEqual(all.emails.map((m: any) => m.kind).sort(), [
        'campaign',
        'transactional',
        'transactional',
        'welcome',
        'welcome',
        'welcome',
      ]);
      const fromTemplate = all.emails.find((m: any) => m.id === templated.emailId);
      assert.deepEqual(
        [fromTemplate.subject, fromTemplate.text],
        ['Welcome to Acme', 'Hi Bob,\n\nThanks for subscribing to our newsletter.\n\nAcme'],
      );
      assert.deepEqual(
        email.emitted('subscriber.added').map((e) => e.email),
        ['ada@example.com', 'bob@example.com', 'cy@example.com'],
      );
      assert.deepEqual(email.emitted('campaign.completed'), [
        { campaignId: vip.campaignId, name: 'VIP', tag: 'vip', recipients: 1, sent: 1, truncated: false },
      ]);
      assert.equal(email.emitted('email.sent').length, 5, 'three welcomes and two transactional emails');
      assert.deepEqual(email.inputProblems('manage-subscribers', { action: 'add' }), ['data.email', 'data']);
      assert.deepEqual(
        email.inputProblems('send-email', { to: 'bob@example.com', subject: 'only a subject' }),
        ['data.template', 'data.text', 'data'],
      );
    });

    it('renders the signup form and the template editor, and saving a template changes the next confirmation', async () => {
      const email = install('email-marketing');
      const signup = await email.render('newsletter-signup', {
        title: XSS,
        tags: ['news'],
        collectName: true,
      });
      const editor = await email.render('email-template-editor', {});
      const submission = submitForm(signup.html, { email: 'dee@example.com', name: 'Dee' });
      const joined = await email.call(submission.body.action, submission.body.data);

      const save = submitForm(editor.html, {
        subject: 'Paid: {{orderId}}',
        body: 'Thanks {{name}} </textarea><script>',
      });
      await email.call(save.body.action, save.body.data);
      const edited = await email.render('email-template-editor', {});
      await email.deliver(
        delivery(
          'payment.completed',
          {
            transactionId: 'txn_x12345',
            orderId: 'o-4',
            amount: 5,
            currency: 'USD',
            brand: 'visa',
            last4: '4242',
            items: [],
            customer: { email: 'dee@example.com', name: 'Dee' },
          },
          'payment-gateway',
        ),
      );
      const [confirmation] = (await email.call('list-outbox', { kind: 'payment-confirmation' })).emails;

      assert.doesNotMatch(signup.html, /<img|<script/);
      assert.deepEqual(submission.body, {
        action: 'manage-subscribers',
        data: { action: 'add', tags: ['news'], name: 'Dee', email: 'dee@example.com' },
      });
      assert.equal(joined.added, true);
      assert.doesNotThrow(() => new vm.Script(signup.javascript!));
      assert.match(editor.html, /Built-in default/);
      assert.match(editor.html, /<code>\{\{transactionId\}\}<\/code>/);
      assert.equal(save.body.action, 'save-template');
      assert.equal(save.body.data.name, 'payment-confirmation');
      assert.match(
        edited.html,
        /<textarea [^>]*>Thanks \{\{name\}\} &lt;\/textarea&gt;&lt;script&gt;<\/textarea>/,
      );
      assert.deepEqual(email.emitted('template.updated'), [{ name: 'payment-confirmation' }]);
      assert.deepEqual(
        [confirmation.subject, confirmation.text],
        ['Paid: o-4', 'Thanks Dee </textarea><script>'],
      );
    });
  });

  it('works as a chain: the gateway’s payment.completed drives inventory and email', async () => {
    // given: the three on one site (each addon's storage is its own)
    const gateway = install('payment-gateway');
    const inventory = new Installed(manifests.inventory, bundles.inventory, pool, caps, {});
    const email = new Installed(manifests['email-marketing'], bundles['email-marketing'], pool, caps, {});
    await inventory.call('update-stock', { items: [{ sku: 'TEE', stock: 5 }] });
    // when
    await gateway.call('process-payment', {
      amount: 1000,
      card: card(CARDS.visa),
      items: [{ sku: 'TEE', quantity: 2 }],
      customer: { email: 'eve@example.com' },
    });
    const [completed] = gateway.emitted('payment.completed');
    const event = delivery('payment.completed', completed, 'payment-gateway');
    await inventory.deliver(event);
    await email.deliver(event);
    // then
    const stock = await inventory.call('check-availability', { items: [{ sku: 'TEE' }] });
    assert.equal(stock.items[0].stock, 3);
    const outbox = await email.call('list-outbox', {});
    assert.deepEqual(
      outbox.emails.map((m: any) => [m.to, m.kind]),
      [['eve@example.com', 'payment-confirmation']],
    );
  });
});
