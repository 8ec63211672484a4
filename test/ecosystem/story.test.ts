import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { Client } from 'graphql-ws';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenDeveloper, givenPublished, givenSite } from '../support/fixtures.js';
import {
  DeliveriesDocument,
  EmitEventDocument,
  EventsDocument,
  ExecuteAddonFunctionDocument,
  ExecuteReadonlyAddonFunctionDocument,
  InstallAddonDocument,
  InstallationsDocument,
  OnEventsDocument,
  RenderWidgetDocument,
} from '../generated/graphql.js';
import {
  eventually,
  liveClient,
  subscribe,
  untilListening,
  type LiveSubscription,
} from '../events/helpers.js';
import { CARDS, EXAMPLE_NAMES, readExamples, submitForm } from './helpers.js';

/* eslint-disable @typescript-eslint/no-explicit-any -- addon results are JSON read field by field */

type Site = Awaited<ReturnType<typeof givenSite>>;
type LiveEvent = { events: { id: string; name: string; source: string; siteId: string | null; data: any } };

const XSS = `"><img src=x onerror=alert(1)><script>alert(1)</script>`;

/**
 * The seed's story through the public API only: a developer publishes the three example addons, a
 * shop installs them, sets its stock, renders the checkout form, and a visitor pays through it.
 * payment.completed then reaches inventory (stock goes down) and email-marketing (a confirmation
 * in its outbox), while a dashboard watches the events over graphql-ws.
 */
describe('ecosystem story: checkout, inventory and email through events', () => {
  let server: TestServer;
  let shop: Site;
  let feed: LiveSubscription<LiveEvent>;
  const clients: Client[] = [];

  /** POST /api/addons/:addon/execute with the site key, as the shop's backend relays a widget form. */
  async function execute(addon: string, action: string, data: unknown) {
    const response = await fetch(`${server.url}/api/addons/${addon}/execute`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${shop.key}` },
      body: JSON.stringify({ action, data }),
    });
    return { status: response.status, body: (await response.json()) as any };
  }

  /** The readonly check-availability through Query.executeAddonFunction. */
  async function stockOf(...skus: string[]): Promise<Record<string, { stock: number; available: number }>> {
    const { executeAddonFunction } = await shop.client.ok(ExecuteReadonlyAddonFunctionDocument, {
      addonId: 'inventory',
      function: 'check-availability',
      data: { items: skus.map((sku) => ({ sku })) },
    });
    const items = (executeAddonFunction as any).items as { sku: string; stock: number; available: number }[];
    return Object.fromEntries(items.map((i) => [i.sku, { stock: i.stock, available: i.available }]));
  }

  /** A widget through the public REST route, anonymously (widgets are page content). */
  async function widget(addon: string, name: string, config: unknown, context: unknown = {}) {
    const query = new URLSearchParams({
      siteId: shop.siteId,
      config: JSON.stringify(config),
      context: JSON.stringify(context),
    });
    const response = await fetch(`${server.url}/api/widgets/${addon}/${name}?${query}`);
    assert.equal(response.status, 200, await response.clone().text());
    return (await response.json()) as { html: string; css: string; javascript: string; cached: boolean };
  }

  const since = (from: number) => feed.received.slice(from).map((e) => e.events);

  before(async () => {
    server = await startTestServer();
    const developer = await givenDeveloper(server.admin, 'themepress-examples');
    const packages = await readExamples();
    for (const name of EXAMPLE_NAMES)
      await givenPublished(developer.client, packages[name].manifest, packages[name].source);
    shop = await givenSite(server.admin, 'Acme shop');
    const client = liveClient(server.url, shop.key);
    clients.push(client);
    feed = subscribe(client, OnEventsDocument, {
      names: ['payment.*', 'refund.*', 'stock.*', 'item.*', 'email.*', 'probe.ping'],
    });
    await untilListening(
      feed,
      () => shop.client.ok(EmitEventDocument, { name: 'probe.ping', data: {} }),
      (e) => e.events.name === 'probe.ping',
    );
  });
  after(async () => {
    for (const client of clients) await client.dispose();
    await server.close();
  });

  it('installs the three published examples on the shop with their configs, defaults applied', async () => {
    // when
    for (const [id, config] of [
      [
        'payment-gateway',
        { merchantName: `Acme ${XSS}`, currency: 'USD', hostOrigin: 'https://shop.example.com' },
      ],
      ['inventory', { lowStockThreshold: 3 }],
      ['email-marketing', { fromName: 'Acme', fromAddress: 'orders@acme.example' }],
    ] as const) {
      const { installAddon } = await shop.client.ok(InstallAddonDocument, { id, config });
      assert.equal(installAddon.success, true);
    }
    // then
    const { installations } = await shop.client.ok(InstallationsDocument, {});
    const configs = Object.fromEntries(installations.map((i) => [i.addon.name, i.config as any]));
    assert.deepEqual(Object.keys(configs).sort(), ['email-marketing', 'inventory', 'payment-gateway']);
    assert.equal(configs['payment-gateway'].maxAmount, 1000000);
    assert.deepEqual(configs.inventory.paymentSources, ['payment-gateway']);
    assert.equal(configs['email-marketing'].sendPaymentConfirmations, true);
  });

  it('sets the initial stock, which the readonly check and the stock display show', async () => {
    // when
    const updated = await execute('inventory', 'update-stock', {
      items: [
        { sku: 'TEE-M', name: 'T-shirt <M>', stock: 10 },
        { sku: 'MUG', name: 'Mug', stock: 4 },
      ],
    });
    // then
    assert.equal(updated.status, 200);
    assert.deepEqual(await stockOf('TEE-M', 'MUG'), {
      'TEE-M': { stock: 10, available: 10 },
      MUG: { stock: 4, available: 4 },
    });
    const display = await widget('inventory', 'stock-display', { sku: 'TEE-M' });
    assert.match(display.html, /data-available="10"[\s\S]*In stock/);
    const event = await feed.next((e) => e.events.name === 'stock.updated');
    assert.equal(event.events.source, 'inventory');
    assert.equal(event.events.data.reason, 'manual');
  });

  const cart = {
    orderId: 'order-1001',
    currency: 'USD',
    items: [
      { sku: 'TEE-M', name: 'T-shirt <M>', quantity: 2, unitAmount: 1500 },
      { sku: 'MUG', name: 'Mug', quantity: 1, unitAmount: 1000 },
    ],
  };
  let checkoutHtml = '';

  it('renders the checkout form for the cart, escaping hostile config, as JSON and as a sandboxed document', async () => {
    // when
    const { renderWidget } = await shop.client.ok(RenderWidgetDocument, {
      addon: 'payment-gateway',
      widget: 'checkout-form',
      config: { title: XSS },
      context: { cart, sessionId: 'visitor-1' },
    });
    const document = await fetch(
      `${server.url}/api/widgets/payment-gateway/checkout-form?${new URLSearchParams({
        siteId: shop.siteId,
        config: JSON.stringify({ title: XSS }),
        context: JSON.stringify({ cart }),
      })}`,
      { headers: { accept: 'text/html' } },
    );
    // then: the widget config and the installation config are escaped where they land
    checkoutHtml = renderWidget.html;
    assert.doesNotMatch(checkoutHtml, /<img|<script|<[^>]*\sonerror=/);
    assert.match(checkoutHtml, /<h2>"&gt;&lt;img src=x onerror=alert\(1\)&gt;/);
    assert.match(checkoutHtml, /Paying Acme "&gt;&lt;img/);
    assert.match(checkoutHtml, /T-shirt &lt;M&gt; × 2/);
    assert.match(
      checkoutHtml,
      /data-tp-action="process-payment" data-tp-endpoint="\/api\/addons\/payment-gateway\/execute"/,
    );
    assert.match(checkoutHtml, /data-tp-target-origin="https:\/\/shop.example.com"/);
    assert.match(checkoutHtml, /Pay \$40\.00/);
    assert.match(renderWidget.css, /\[data-tp-widget="w[0-9a-f]{16}"\] \.tp-pay/);
    assert.match(renderWidget.javascript, /themepress:execute/);
    // and as an iframe document: the script runs under a nonce and may not reach the network
    assert.equal(document.status, 200);
    const csp = document.headers.get('content-security-policy') ?? '';
    assert.match(csp, /connect-src 'none'/);
    assert.match(csp, /form-action 'none'/);
    const body = await document.text();
    assert.match(body, /<script nonce="[^"]+">\(function formScript/);
    assert.doesNotMatch(body, /<img src/);
  });

  let transactionId = '';
  let paymentEventId = '';

  it('takes a payment through the form; payment.completed lowers the stock and queues a confirmation email', async () => {
    // given: what the form's script posts when the visitor pays with a test card
    const from = feed.received.length;
    const submission = submitForm(checkoutHtml, {
      'customer.name': 'Ada <Lovelace>',
      'customer.email': 'ada@example.com',
      'card.number': CARDS.visa,
      'card.expMonth': '12',
      'card.expYear': '2099',
      'card.cvc': '123',
    });
    assert.equal(submission.endpoint, '/api/addons/payment-gateway/execute');
    // when: the shop's backend relays it with its site key
    const paid = await execute('payment-gateway', submission.body.action, submission.body.data);
    // then: the payment succeeds ...
    assert.equal(paid.status, 200, JSON.stringify(paid.body));
    const result = paid.body.result;
    assert.equal(result.status, 'succeeded');
    assert.equal(result.amount, 4000);
    assert.deepEqual(result.card, { brand: 'visa', last4: '4242' });
    transactionId = result.transactionId;
    const completed = await feed.next((e) => e.events.name === 'payment.completed');
    paymentEventId = completed.events.id;
    assert.equal(completed.events.source, 'payment-gateway');
    assert.equal(completed.events.data.transactionId, transactionId);
    assert.deepEqual(completed.events.data.customer, { name: 'Ada <Lovelace>', email: 'ada@example.com' });

    // ... inventory decrements the paid items (MUG falls to the threshold) ...
    // (the handler writes item by item: wait until both changed, not just the first)
    await eventually(async () => {
      const stock = await stockOf('TEE-M', 'MUG');
      return stock['TEE-M'].stock !== 10 && stock.MUG.stock !== 4 ? stock : undefined;
    }, 'the stock to go down');
    assert.deepEqual(await stockOf('TEE-M', 'MUG'), {
      'TEE-M': { stock: 8, available: 8 },
      MUG: { stock: 3, available: 3 },
    });
    const update = await feed.next(
      (e) => e.events.name === 'stock.updated' && e.events.data.reason === 'payment',
    );
    assert.deepEqual(update.events.data, {
      reason: 'payment',
      reference: 'order-1001',
      items: [
        { sku: 'TEE-M', previous: 10, stock: 8, available: 8 },
        { sku: 'MUG', previous: 4, stock: 3, available: 3 },
      ],
    });
    const low = await feed.next((e) => e.events.name === 'stock.low');
    assert.deepEqual(low.events.data, { threshold: 3, items: [{ sku: 'MUG', name: 'Mug', stock: 3 }] });
    // the stock display rendered before is invalidated by stock.updated
    await eventually(async () => {
      const display = await widget('inventory', 'stock-display', { sku: 'TEE-M' });
      return /data-available="8"/.test(display.html) ? display : undefined;
    }, 'the stock display to show 8');

    // ... and email-marketing records the confirmation
    const outbox = await eventually(async () => {
      const { executeAddonFunction } = await shop.client.ok(ExecuteReadonlyAddonFunctionDocument, {
        addonId: 'email-marketing',
        function: 'list-outbox',
        data: { kind: 'payment-confirmation' },
      });
      const emails = (executeAddonFunction as any).emails as any[];
      return emails.length > 0 ? emails : undefined;
    }, 'the confirmation email');
    assert.equal(outbox.length, 1);
    assert.deepEqual(
      [outbox[0].to, outbox[0].from, outbox[0].subject],
      ['ada@example.com', 'Acme <orders@acme.example>', 'Payment received for order order-1001'],
    );
    assert.match(
      outbox[0].text,
      /^Hi Ada <Lovelace>,\n\nWe received your payment of \$40\.00 \(visa ending in 4242\)/,
    );
    assert.match(outbox[0].text, /- 2 × T-shirt <M>\n- 1 × Mug/);
    assert.match(outbox[0].text, new RegExp(`Transaction: ${transactionId}`));
    const sent = await feed.next((e) => e.events.name === 'email.sent');
    assert.deepEqual(sent.events.data, {
      emailId: outbox[0].id,
      to: 'ada@example.com',
      subject: 'Payment received for order order-1001',
      kind: 'payment-confirmation',
      reference: transactionId,
    });

    // both deliveries of payment.completed succeeded, once each
    const deliveries = await eventually(async () => {
      const { deliveries } = await shop.client.ok(DeliveriesDocument, { eventId: paymentEventId });
      const nodes = deliveries.edges.map((e) => e.node);
      return nodes.length === 2 && nodes.every((d) => d.status === 'SUCCEEDED') ? nodes : undefined;
    }, 'both deliveries to succeed');
    assert.deepEqual(deliveries.map((d) => [d.addonName, d.handler, d.attempts]).sort(), [
      ['email-marketing', 'onPaymentCompleted', 1],
      ['inventory', 'onPaymentCompleted', 1],
    ]);
    // the dashboard saw the whole chain, the payment first
    const names = since(from).map((e) => e.name);
    assert.equal(names[0], 'payment.completed');
    for (const name of ['stock.updated', 'stock.low', 'email.sent']) assert.ok(names.includes(name), name);
  });

  it('shows the payment on the status and receipt widgets of the confirmation page', async () => {
    const status = await widget('payment-gateway', 'payment-status', {}, { transactionId });
    const receipt = await widget(
      'payment-gateway',
      'receipt',
      { footer: 'See you <soon>' },
      { transactionId },
    );
    assert.match(status.html, /data-status="succeeded"[\s\S]*<strong>Paid<\/strong>[\s\S]*\$40\.00/);
    assert.match(
      receipt.html,
      /T-shirt &lt;M&gt; × 2[\s\S]*\$30\.00[\s\S]*Mug × 1[\s\S]*Total[\s\S]*\$40\.00/,
    );
    assert.match(receipt.html, /See you &lt;soon&gt;/);
  });

  it('declines a test card: payment.failed, no payment.completed, no stock change', async () => {
    // given
    const from = feed.received.length;
    const submission = submitForm(checkoutHtml.replace(/order-1001/g, 'order-1002'), {
      'card.number': CARDS.declined,
      'card.expMonth': '12',
      'card.expYear': '2099',
    });
    // when
    const declined = await execute('payment-gateway', submission.body.action, submission.body.data);
    // then
    assert.equal(declined.status, 200);
    assert.equal(declined.body.result.status, 'failed');
    assert.deepEqual(declined.body.result.failure, {
      code: 'card_declined',
      message: 'Your card was declined.',
      retryable: false,
    });
    const failed = await feed.next((e) => e.events.name === 'payment.failed');
    assert.equal(failed.events.data.orderId, 'order-1002');
    assert.equal(failed.events.data.code, 'card_declined');
    const { events } = await shop.client.ok(EventsDocument, { names: ['payment.completed'], first: 50 });
    assert.deepEqual(
      events.edges.map((e) => e.node.id),
      [paymentEventId],
      'only the first order was paid',
    );
    assert.deepEqual(
      since(from).map((e) => e.name),
      ['payment.failed'],
    );
    assert.deepEqual(await stockOf('TEE-M'), { 'TEE-M': { stock: 8, available: 8 } });
  });

  it('ignores a payment.completed forged by the site outside the gateway', async () => {
    // when: the event is delivered to inventory and email-marketing, whose handlers run and succeed
    const { emitEvent } = await shop.client.ok(EmitEventDocument, {
      name: 'payment.completed',
      data: {
        transactionId: 'txn_forged00',
        items: [{ sku: 'TEE-M', quantity: 5 }],
        customer: { email: 'x@example.com' },
      },
    });
    await eventually(async () => {
      const { deliveries } = await shop.client.ok(DeliveriesDocument, { eventId: emitEvent.id });
      const nodes = deliveries.edges.map((e) => e.node);
      return nodes.length === 2 && nodes.every((d) => d.status === 'SUCCEEDED') ? nodes : undefined;
    }, 'the forged event to be handled');
    // then
    assert.equal(emitEvent.source, 'platform');
    assert.deepEqual(await stockOf('TEE-M'), { 'TEE-M': { stock: 8, available: 8 } });
    const { executeAddonFunction } = await shop.client.ok(ExecuteReadonlyAddonFunctionDocument, {
      addonId: 'email-marketing',
      function: 'list-outbox',
      data: { kind: 'payment-confirmation' },
    });
    assert.equal((executeAddonFunction as any).emails.length, 1);
  });

  it('does not charge an order that is already paid', async () => {
    const submission = submitForm(checkoutHtml, {
      'card.number': CARDS.visa,
      'card.expMonth': '12',
      'card.expYear': '2099',
    });
    const again = await execute('payment-gateway', submission.body.action, submission.body.data);
    assert.equal(again.body.result.duplicate, true);
    assert.equal(again.body.result.transactionId, transactionId);
    const { events } = await shop.client.ok(EventsDocument, { names: ['payment.completed'], first: 50 });
    assert.equal(events.edges.filter((e) => e.node.source === 'payment-gateway').length, 1);
  });

  it('refunds in two steps: refund.processed each time, the status widget follows, over-refunds are refused', async () => {
    // when
    const partial = await shop.client.ok(ExecuteAddonFunctionDocument, {
      addonId: 'payment-gateway',
      function: 'refund',
      data: { transactionId, amount: 1000 },
    });
    const firstRefund = await feed.next((e) => e.events.name === 'refund.processed');
    const tooMuch = await execute('payment-gateway', 'refund', { transactionId, amount: 3001 });
    const rest = await execute('payment-gateway', 'refund', { transactionId, reason: 'other' });
    const secondRefund = await feed.next(
      (e) => e.events.name === 'refund.processed' && e.events.data.fullyRefunded === true,
    );
    // then
    assert.equal((partial.executeAddonFunction as any).status, 'partially_refunded');
    assert.deepEqual(firstRefund.events.data, {
      refundId: (partial.executeAddonFunction as any).refundId,
      transactionId,
      orderId: 'order-1001',
      amount: 1000,
      currency: 'USD',
      amountRefunded: 1000,
      fullyRefunded: false,
      reason: 'requested_by_customer',
    });
    assert.equal(tooMuch.status, 422);
    assert.equal(tooMuch.body.error.code, 'ADDON_ERROR');
    assert.match(tooMuch.body.error.message, /only \$30\.00 is left to refund/);
    assert.equal(rest.body.result.status, 'refunded');
    assert.deepEqual(
      [secondRefund.events.data.amount, secondRefund.events.data.amountRefunded],
      [3000, 4000],
    );
    const verified = await execute('payment-gateway', 'verify-transaction', { transactionId });
    assert.deepEqual([verified.body.result.valid, verified.body.result.reason], [false, 'refunded']);
    // the status widget rendered before is invalidated by refund.processed
    await eventually(async () => {
      const status = await widget('payment-gateway', 'payment-status', {}, { transactionId });
      return /data-status="refunded"/.test(status.html) ? status : undefined;
    }, 'the status widget to show the refund');
  });
});
