import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { generateApiKey } from '../../src/auth/api-key.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';
import { testRedisEnv } from '../support/test-server.js';
import { startChildServer, type ChildServer } from '../support/child-server.js';
import { givenDeveloper, givenPublished, givenSite } from '../support/fixtures.js';
import { ExecuteAddonFunctionDocument, InstallAddonDocument } from '../generated/graphql.js';
import { startTestServerOn, type TestServer } from '../events/test-instance.js';
import { EXAMPLE_NAMES, readExamples, CARDS } from './helpers.js';

/* eslint-disable @typescript-eslint/no-explicit-any -- addon results and stored values are JSON */

const ORDERS = Number(process.env.CRASH_ORDERS ?? 500);
const SENDERS = 8;
const STOCK = 1_000;
const LEASE_MS = '1500';

const skuOf = (i: number) => `CRASH-${i}`;

interface Order {
  id: string;
  sku: string;
  quantity: number;
  /** What the client saw: the payment's answer, or that the request died with the server. */
  answer: 'paid' | 'unknown' | null;
}

/** The network error of a request whose server vanished: sent (maybe acted on) or never sent. */
function neverSent(error: unknown): boolean {
  const cause = (error as { cause?: { code?: string } }).cause;
  return cause?.code === 'ECONNREFUSED';
}

/**
 * The payment flow of the example addons while the instance taking the payments is killed with
 * SIGKILL again and again: a payment's storage (transaction, order), its payment.completed event,
 * the event's deliveries, the stock they decrement and the confirmation email must all exist, or
 * none of them. The client retries what it got no answer for, as a shop's backend would.
 */
describe('payments while the server taking them is killed again and again', () => {
  let database: TestDatabase;
  let survivor: TestServer;
  let victim: ChildServer | null = null;
  let siteKey = '';
  const adminKey = generateApiKey();
  const env = (url: string) => ({
    DATABASE_URL: url,
    ...testRedisEnv(url),
    ADMIN_API_KEY: adminKey,
    MIGRATE_ON_START: 'false',
    RATE_LIMIT_DEFAULT: '0',
    DELIVERY_LEASE_MS: LEASE_MS,
    DELIVERY_BACKOFF_BASE_MS: '100',
  });

  before(async () => {
    database = await createTestDatabase();
    survivor = await startTestServerOn(database.url, adminKey, {
      DELIVERY_LEASE_MS: LEASE_MS,
      DELIVERY_BACKOFF_BASE_MS: '100',
    });
    const developer = await givenDeveloper(survivor.admin, 'themepress-examples');
    const packages = await readExamples();
    for (const name of EXAMPLE_NAMES)
      await givenPublished(developer.client, packages[name].manifest, packages[name].source);
    const site = await givenSite(survivor.admin, 'Crash shop');
    siteKey = site.key;
    for (const id of EXAMPLE_NAMES) await site.client.ok(InstallAddonDocument, { id, config: {} });
    // One item per order: calls are atomic, not isolated (two handlers decrementing one item at the
    // same instant can lose an update, as the inventory example says), and this test is about the former.
    for (let first = 0; first < ORDERS; first += 100) {
      await site.client.ok(ExecuteAddonFunctionDocument, {
        addonId: 'inventory',
        function: 'update-stock',
        data: {
          items: Array.from({ length: Math.min(100, ORDERS - first) }, (_, i) => ({
            sku: skuOf(first + i),
            stock: STOCK,
          })),
          reason: 'initial',
        },
      });
    }
  });
  after(async () => {
    await victim?.kill();
    await survivor?.close();
    await database?.drop();
  });

  it(
    `leaves no order half done over ${ORDERS} orders and repeated kills`,
    { timeout: 240_000 },
    async (t) => {
      // given: the orders, and an instance of its own taking them
      const orders: Order[] = Array.from({ length: ORDERS }, (_, i) => ({
        id: `order-${i}`,
        sku: skuOf(i),
        quantity: 1 + (i % 3),
        answer: null,
      }));
      victim = await startChildServer(env(database.url));
      let kills = 0;
      let sending = true;
      const pay = async (url: string, order: Order) => {
        const response = await fetch(`${url}/api/addons/payment-gateway/execute`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${siteKey}` },
          body: JSON.stringify({
            action: 'process-payment',
            data: {
              orderId: order.id,
              amount: 100 * order.quantity,
              currency: 'USD',
              card: { number: CARDS.visa, expMonth: 12, expYear: 2099, cvc: '123' },
              items: [{ sku: order.sku, name: order.sku, quantity: order.quantity, unitAmount: 100 }],
              customer: { email: `${order.id}@example.com`, name: order.id },
            },
          }),
        });
        return { status: response.status, body: (await response.json()) as any };
      };

      // when: senders pay the orders through the victim while a killer kills and restarts it
      const killer = (async () => {
        while (sending) {
          await sleep(400 + Math.random() * 800);
          if (!sending || !victim) break;
          const dying = victim;
          victim = null;
          await dying.kill();
          kills += 1;
          victim = await startChildServer(env(database.url));
        }
      })();
      let next = 0;
      const senders = Array.from({ length: SENDERS }, async () => {
        for (;;) {
          const order = orders[next];
          if (!order) return;
          next += 1;
          for (;;) {
            const current = victim;
            if (!current) {
              await sleep(20);
              continue;
            }
            try {
              const { status, body } = await pay(current.url, order);
              assert.equal(status, 200, JSON.stringify(body));
              assert.equal(body.result.status, 'succeeded');
              order.answer = 'paid';
            } catch (error) {
              if (error instanceof assert.AssertionError) throw error;
              if (neverSent(error)) {
                await sleep(20);
                continue;
              }
              order.answer = 'unknown';
            }
            break;
          }
        }
      });
      await Promise.all(senders);
      sending = false;
      await killer;
      // The client retries half of the payments it got no answer for (the others it forgets).
      const unknown = orders.filter((o) => o.answer === 'unknown');
      const retried = unknown.filter((_, i) => i % 2 === 0);
      for (const order of retried) {
        const { status, body } = await pay(survivor.url, order);
        assert.equal(status, 200, JSON.stringify(body));
        order.answer = 'paid';
      }
      // Every delivery ends (the killed instance's claims expire and the survivor takes them over).
      const prisma = survivor.app.database.prisma;
      const deadline = Date.now() + 60_000;
      while ((await prisma.delivery.count({ where: { status: { not: 'SUCCEEDED' } } })) > 0) {
        assert.ok(Date.now() < deadline, 'every delivery succeeded within a minute');
        await sleep(100);
      }

      // then: every order is fully effective, or not at all
      const storage = await prisma.addonStorage.findMany({
        select: { addonId: true, key: true, value: true },
      });
      const addonIds = Object.fromEntries(
        (await prisma.addon.findMany({ select: { id: true, name: true } })).map((a) => [a.name, a.id]),
      );
      const keysOf = (addon: string) =>
        new Map(storage.filter((s) => s.addonId === addonIds[addon]).map((s) => [s.key, s.value as any]));
      const gateway = keysOf('payment-gateway');
      const inventory = keysOf('inventory');
      const email = keysOf('email-marketing');
      const events = await prisma.event.findMany({
        where: { name: 'payment.completed' },
        select: { id: true, data: true, deliveries: { select: { addonName: true, status: true } } },
      });
      const outbox = [...email.entries()]
        .filter(([key]) => key.startsWith('outbox:'))
        .map(([, value]) => value);
      const halfDone: string[] = [];
      let effective = 0;
      for (const order of orders) {
        const txnId = gateway.get(`order:${order.id}`);
        const paidEvents = events.filter((e) => (e.data as any).orderId === order.id);
        const parts = {
          order: typeof txnId === 'string',
          transaction: typeof txnId === 'string' && gateway.get(`txn:${txnId}`)?.status === 'succeeded',
          event: paidEvents.length === 1,
          deliveries:
            paidEvents.length === 1 &&
            ['inventory', 'email-marketing'].every((addon) =>
              paidEvents[0].deliveries.some((d) => d.addonName === addon && d.status === 'SUCCEEDED'),
            ),
          stock:
            paidEvents.length === 1 &&
            inventory.has(`event:${paidEvents[0].id}`) &&
            (inventory.get(`item:${order.sku}`) as { stock: number }).stock === STOCK - order.quantity,
          email:
            paidEvents.length === 1 &&
            email.get(`event:${paidEvents[0].id}`) === `em_${paidEvents[0].id}` &&
            outbox.filter((m) => m.id === `em_${paidEvents[0].id}` && m.kind === 'payment-confirmation')
              .length === 1,
        };
        const present = Object.values(parts).filter(Boolean).length;
        const untouched = (inventory.get(`item:${order.sku}`) as { stock: number }).stock === STOCK;
        const anyTrace = present > 0 || paidEvents.length > 0 || !untouched;
        if (present === Object.keys(parts).length) {
          effective += 1;
        } else if (anyTrace) {
          halfDone.push(`${order.id}: ${JSON.stringify(parts)} (${paidEvents.length} events)`);
        }
        if (order.answer === 'paid')
          assert.ok(parts.order, `${order.id} was answered as paid, so it is stored`);
      }
      t.diagnostic(
        `${ORDERS} orders, ${kills} kills: ${effective} fully effective, ${ORDERS - effective - halfDone.length} not at all, ${halfDone.length} half done; ${unknown.length} got no answer, ${retried.length} of them retried`,
      );
      assert.deepEqual(halfDone, []);
      assert.ok(kills >= 3, `the server was killed ${kills} times`);
      assert.ok(unknown.length > 0, 'some payments were in flight when their server was killed');
      assert.ok(effective >= ORDERS - unknown.length, 'every order answered as paid is effective');
    },
  );
});
