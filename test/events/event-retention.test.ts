import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startTestServer, type TestServer } from '../support/test-server.js';

describe('event retention', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer({ DELIVERY_WORKER: 'false' });
  });
  after(() => server.close());

  /** Stores an event `daysOld` days old with one delivery per status given, and an attempt each. */
  const givenEvent = async (daysOld: number, statuses: string[]) => {
    const id = randomUUID();
    const { pool } = server.app.database;
    await pool.query(
      `INSERT INTO "Event" (id, name, source, data, "createdAt")
       VALUES ($1, 'order.created', 'platform', '{}', (now() AT TIME ZONE 'UTC') - $2 * interval '1 day')`,
      [id, daysOld],
    );
    for (const status of statuses) {
      const delivery = randomUUID();
      await pool.query(
        `INSERT INTO "Delivery" (id, "eventId", "eventName", "siteId", "installationId", "addonId",
                                 "addonName", handler, status, "maxAttempts")
         VALUES ($1, $2, 'order.created', $3, $4, $5, 'listener', 'on', $6::"DeliveryStatus", 5)`,
        [delivery, id, randomUUID(), randomUUID(), randomUUID(), status],
      );
      await pool.query(
        `INSERT INTO "DeliveryAttempt" (id, "deliveryId", attempt, status, "durationMs", "startedAt")
         VALUES (gen_random_uuid(), $1, 1, 'SUCCEEDED', 1, now())`,
        [delivery],
      );
    }
    return id;
  };

  it('deletes events past the retention with their deliveries once every delivery is finished', async () => {
    // given: events 31 days old (finished, dead, one still due, none subscribed) and a recent one
    const finished = await givenEvent(31, ['SUCCEEDED', 'SUCCEEDED']);
    const dead = await givenEvent(31, ['SUCCEEDED', 'DEAD']);
    const stillDue = await givenEvent(31, ['SUCCEEDED', 'PENDING']);
    const unsubscribed = await givenEvent(31, []);
    const recent = await givenEvent(29, ['SUCCEEDED']);
    const prisma = server.app.database.prisma;
    const ids = [finished, dead, stillDue, unsubscribed, recent];
    const deliveriesBefore = await prisma.delivery.findMany({ where: { eventId: { in: ids } } });
    // when: the retention of 30 days runs
    const deleted = await server.app.services.events.forgetOldEvents(30);
    // then: the finished, dead and unsubscribed old events are gone, with their deliveries and attempts
    const left = (await prisma.event.findMany({ where: { id: { in: ids } } })).map((e) => e.id).sort();
    assert.deepEqual(left, [stillDue, recent].sort());
    assert.ok(deleted >= 3, `${deleted} deleted`);
    const deliveriesLeft = await prisma.delivery.findMany({ where: { eventId: { in: ids } } });
    assert.deepEqual(deliveriesLeft.map((d) => d.eventId).sort(), [stillDue, stillDue, recent].sort());
    const attemptsLeft = await prisma.deliveryAttempt.count({
      where: { deliveryId: { in: deliveriesBefore.map((d) => d.id) } },
    });
    assert.equal(attemptsLeft, 3);
    // and the event still due goes once its delivery is finished
    await prisma.delivery.updateMany({ where: { eventId: stillDue }, data: { status: 'DEAD' } });
    await server.app.services.events.forgetOldEvents(30);
    assert.equal(await prisma.event.count({ where: { id: stillDue } }), 0);
    assert.equal(await prisma.event.count({ where: { id: recent } }), 1);
  });
});
