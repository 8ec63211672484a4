import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenDeveloper, givenPublished, givenSite, manifest } from '../support/fixtures.js';
import { EmitEventDocument, InstallAddonDocument } from '../generated/graphql.js';
import { DeliveryRepository, type FlowCursor } from '../../src/events/delivery.repository.js';
import { eventually } from './helpers.js';

/** Busy for 40 ms of the sandbox's CPU: the addon's one delivery slot drains 25 a second at most. */
const SLOW = `module.exports = { handlers: { onEvent: () => {
  const end = Date.now() + 40;
  while (Date.now() < end) {}
  return true;
} } };`;

/** Hangs on the events asking for it (the sandbox would time it out after 60 s); returns at once on others. */
const HANGS_WHEN_ASKED = `module.exports = { handlers: { onEvent: (event) =>
  event.data && event.data.hang ? new Promise(() => {}) : true } };`;

/** Manifest fields of an addon that only handles `order.created` with `onEvent`. */
const HANDLES_ORDERS = {
  configSchema: { type: 'object' },
  widgets: [],
  functions: [],
  events: { handles: { 'order.created': 'onEvent' } },
};

/** Resolves once the one delivery of `siteId` succeeded; fails the test after `ms`. */
function succeededOn(server: TestServer, siteId: string, ms = 5000) {
  return eventually(
    async () => {
      const mine = await server.app.database.prisma.delivery.findFirst({ where: { siteId } });
      return mine?.status === 'SUCCEEDED' ? true : undefined;
    },
    'the quiet site’s delivery',
    ms,
  );
}

/** Publishes an addon handling `order.created` with `source` and installs it on two new sites. */
async function givenAddonOnTwoSites(
  server: TestServer,
  source: string,
  overrides: Record<string, unknown> = {},
) {
  const developer = (await givenDeveloper(server.admin)).client;
  const m = manifest({ ...HANDLES_ORDERS, ...overrides });
  await givenPublished(developer, m, source);
  const noisy = await givenSite(server.admin);
  const quiet = await givenSite(server.admin);
  for (const site of [noisy, quiet])
    await site.client.ok(InstallAddonDocument, { id: m.name as string, config: {} });
  return { noisy, quiet };
}

/** Five deliveries due a minute ago for each (site, addon) flow, of one new platform event. */
async function givenFiveDuePerFlow(pool: pg.Pool, flows: [siteId: string, addonId: string][]): Promise<void> {
  const eventId = randomUUID();
  await pool.query(
    `INSERT INTO "Event" (id, name, source, data) VALUES ($1, 'order.created', 'platform', '{}')`,
    [eventId],
  );
  for (const [siteId, addonId] of flows) {
    await pool.query(
      `INSERT INTO "Delivery" (id, "eventId", "eventName", "siteId", "installationId", "addonId",
                               "addonName", handler, "maxAttempts", "nextAttemptAt")
       SELECT gen_random_uuid(), $1, 'order.created', $2, gen_random_uuid(), $3, 'room', 'on', 5,
              now() - interval '1 minute'
         FROM generate_series(1, 5)`,
      [eventId, siteId, addonId],
    );
  }
}

describe('delivery claims take turns across sites and addons', () => {
  describe('the claim statement', () => {
    let database: TestDatabase;
    let pool: pg.Pool;

    before(async () => {
      database = await createTestDatabase();
      pool = new pg.Pool({ connectionString: database.url, max: 2 });
      // Idle connections are terminated when the database is dropped at the end.
      pool.on('error', () => undefined);
    });
    after(async () => {
      await pool.end();
      await database.drop();
    });

    it('reaches every flow’s oldest row before a flooded flow’s backlog, walking on from where the last claim stopped', async () => {
      // given: one (site, addon) flow with 1,000 due deliveries, older than the one due delivery
      // of each of 100 other flows (more flows than one claim walks)
      const eventId = randomUUID();
      await pool.query(
        `INSERT INTO "Event" (id, name, source, data) VALUES ($1, 'order.created', 'platform', '{}')`,
        [eventId],
      );
      const flooded = { siteId: randomUUID(), addonId: randomUUID() };
      await pool.query(
        `INSERT INTO "Delivery" (id, "eventId", "eventName", "siteId", "installationId", "addonId",
                                 "addonName", handler, "maxAttempts", "nextAttemptAt")
         SELECT gen_random_uuid(), $1, 'order.created', $2, gen_random_uuid(), $3, 'flooded', 'on', 5,
                now() - interval '1 hour' + i * interval '1 millisecond'
           FROM generate_series(1, 1000) i`,
        [eventId, flooded.siteId, flooded.addonId],
      );
      await pool.query(
        `INSERT INTO "Delivery" (id, "eventId", "eventName", "siteId", "installationId", "addonId",
                                 "addonName", handler, "maxAttempts", "nextAttemptAt")
         SELECT gen_random_uuid(), $1, 'order.created', gen_random_uuid(), gen_random_uuid(),
                gen_random_uuid(), 'quiet', 'on', 5, now() - interval '1 minute'
           FROM generate_series(1, 100)`,
        [eventId],
      );
      // when: claims of 8, each starting where the previous one's walk ended
      let cursor: FlowCursor | null = null;
      let claims = 0;
      let quietClaimed = 0;
      const floodedPerClaim: number[] = [];
      while (quietClaimed < 100 && claims < 60) {
        const claim = await DeliveryRepository.claimFast(pool, {
          workerId: 'test',
          limit: 8,
          perAddon: 8,
          busyAddonIds: [],
          leaseMs: 60_000,
          cursor,
        });
        cursor = claim.cursor;
        claims += 1;
        const floodedRows = claim.claimed.filter((row) => row.addonId === flooded.addonId).length;
        floodedPerClaim.push(floodedRows);
        quietClaimed += claim.claimed.length - floodedRows;
      }
      // then: the 100 quiet flows were served in ceil(100 / 7) claims, the flooded flow taking one
      // turn in each beside seven of them (FIFO would have given it the first 125 claims), and the
      // rest of the last claim once the quiet rows ran out
      assert.equal(quietClaimed, 100);
      assert.equal(claims, 15);
      assert.deepEqual(floodedPerClaim.slice(0, -1), Array(14).fill(1));
      assert.equal(floodedPerClaim.at(-1), 6);
    });
    it('claims no more of an addon or a flow than the room the worker says it has left', async () => {
      // given: one flow of addon A and two flows of addon B, five due rows each
      const [siteA, siteB, siteC, addonA, addonB] = Array.from({ length: 5 }, () => randomUUID());
      await givenFiveDuePerFlow(pool, [
        [siteA, addonA],
        [siteB, addonB],
        [siteC, addonB],
      ]);
      // when: a worker holding rows of A (room for 1 more) and of B on site B (room for 1 more there)
      // claims with shares of 4 per addon and 3 per flow
      const { claimed } = await DeliveryRepository.claimFast(pool, {
        workerId: 'room',
        limit: 20,
        perAddon: 4,
        perFlow: 3,
        busyAddonIds: [],
        leaseMs: 60_000,
        addonRoom: [{ addonId: addonA, room: 1 }],
        flowRoom: [{ siteId: siteB, addonId: addonB, room: 1 }],
      });
      // then: one row of A; of B, one on site B and three on site C (B's share of 4)
      const count = (siteId: string) => claimed.filter((row) => row.siteId === siteId).length;
      assert.deepEqual([count(siteA), count(siteB), count(siteC)], [1, 1, 3]);
    });

    it('claims no more of a site, across its addons, than the room the worker says it has left', async () => {
      // given: site A with three addons, sites B and C with one each, five due rows per flow
      const [siteA, siteB, siteC] = Array.from({ length: 3 }, () => randomUUID());
      await givenFiveDuePerFlow(
        pool,
        [siteA, siteA, siteA, siteB, siteC].map((siteId) => [siteId, randomUUID()]),
      );
      // when: a worker holding rows of A (room for 2 more) and at its share of C claims, with
      // shares of 4 per site and 10 per addon or flow
      const { claimed } = await DeliveryRepository.claimFast(pool, {
        workerId: 'site-room',
        limit: 30,
        perAddon: 10,
        perFlow: 10,
        busyAddonIds: [],
        leaseMs: 60_000,
        perSite: 4,
        siteRoom: [{ siteId: siteA, room: 2 }],
        busySiteIds: [siteC],
      });
      // then: two rows of A's fifteen, four of B's five, none of C's
      const count = (siteId: string) => claimed.filter((row) => row.siteId === siteId).length;
      assert.deepEqual([count(siteA), count(siteB), count(siteC)], [2, 4, 0]);
    });
  });

  describe('through the server', () => {
    let server: TestServer;

    before(async () => {
      // 4 handlers: one running delivery of an addon at a time (a quarter), four held.
      server = await startTestServer({ DELIVERY_CONCURRENCY: '4', DELIVERY_POLL_MS: '100' });
    });
    after(() => server.close());

    it('runs a quiet site’s delivery of a shared addon before the backlog another site flooded it with', async () => {
      // given: one slow addon installed on two sites
      const { noisy, quiet } = await givenAddonOnTwoSites(server, SLOW);
      const deliveries = server.app.database.prisma.delivery;
      // when: the noisy site emits 60 events (2.4 s of the addon's handler), then the quiet site one
      for (let i = 0; i < 60; i += 10) {
        await Promise.all(
          Array.from({ length: 10 }, (_, j) =>
            noisy.client.ok(EmitEventDocument, { name: 'order.created', data: { i: i + j } }),
          ),
        );
      }
      await quiet.client.ok(EmitEventDocument, { name: 'order.created', data: { quiet: true } });
      // then: the quiet site's delivery is done while most of the noisy backlog still waits
      const noisyLeft = await eventually(
        async () => {
          const mine = await deliveries.findFirst({ where: { siteId: quiet.siteId } });
          if (mine?.status !== 'SUCCEEDED') return undefined;
          return deliveries.count({ where: { siteId: noisy.siteId, status: { not: 'SUCCEEDED' } } });
        },
        'the quiet site’s delivery',
        20_000,
      );
      assert.ok(noisyLeft >= 20, `only ${noisyLeft} of the noisy site’s 60 deliveries were left`);
      // and the noisy site's deliveries all run too
      await eventually(
        async () =>
          (await deliveries.count({ where: { siteId: noisy.siteId, status: 'SUCCEEDED' } })) === 60
            ? true
            : undefined,
        'the noisy site’s deliveries',
        30_000,
      );
    });
  });

  describe('with room for a reserve (8 handlers: two running deliveries of one addon)', () => {
    let server: TestServer;

    before(async () => {
      server = await startTestServer({
        DELIVERY_CONCURRENCY: '8',
        DELIVERY_POLL_MS: '100',
        DELIVERY_BACKOFF_BASE_MS: '60000',
      });
    });
    after(() => server.close());

    it('keeps a running slot of a shared addon for other sites while one site’s deliveries hang', async () => {
      // given: one addon on two sites whose handler hangs on the events that ask it to
      const { noisy, quiet } = await givenAddonOnTwoSites(server, HANGS_WHEN_ASKED, {
        limits: { timeoutMs: 60_000 },
      });
      const deliveries = server.app.database.prisma.delivery;
      // when: the noisy site emits ten events its deliveries hang on, then the quiet site one
      for (let i = 0; i < 10; i += 1)
        await noisy.client.ok(EmitEventDocument, { name: 'order.created', data: { hang: true, i } });
      await eventually(
        async () =>
          (await deliveries.count({ where: { siteId: noisy.siteId, status: 'RUNNING' } })) > 0
            ? true
            : undefined,
        'the noisy site’s deliveries to start',
      );
      await quiet.client.ok(EmitEventDocument, { name: 'order.created', data: { hang: false } });
      // then: the quiet site's delivery runs at once on the slot the noisy site may not take
      await succeededOn(server, quiet.siteId);
      // and the noisy site holds one running handler of the addon's two, its other rows waiting
      assert.equal(server.app.runtime.deliveryWorker?.inFlight, 1);
      const noisyRows = await deliveries.findMany({ where: { siteId: noisy.siteId } });
      assert.equal(noisyRows.filter((row) => row.status === 'SUCCEEDED').length, 0);
    });

    it('keeps a quarter of the running handlers for other sites while one site’s many addons hang', async () => {
      // given: eight addons installed on the noisy site, each hanging on its events (one running
      // delivery per flow, so eight flows could hold all eight handlers), and a ninth on the quiet site
      const developer = (await givenDeveloper(server.admin)).client;
      const noisy = await givenSite(server.admin);
      const quiet = await givenSite(server.admin);
      const handles = { ...HANDLES_ORDERS, limits: { timeoutMs: 60_000 } };
      for (let i = 0; i < 8; i += 1) {
        const m = manifest(handles);
        await givenPublished(developer, m, HANGS_WHEN_ASKED);
        await noisy.client.ok(InstallAddonDocument, { id: m.name as string, config: {} });
      }
      const own = manifest(handles);
      await givenPublished(developer, own, HANGS_WHEN_ASKED);
      await quiet.client.ok(InstallAddonDocument, { id: own.name as string, config: {} });
      const deliveries = server.app.database.prisma.delivery;
      // (A delivery of the previous test may still hang on its own site: counted apart.)
      const inFlight = () => server.app.runtime.deliveryWorker?.inFlight ?? 0;
      const before = inFlight();
      // when: the noisy site emits an event its eight addons hang on, then the quiet site one
      await noisy.client.ok(EmitEventDocument, { name: 'order.created', data: { hang: true } });
      await eventually(
        async () => (inFlight() >= before + 6 ? true : undefined),
        'the noisy site’s deliveries to start',
      );
      await quiet.client.ok(EmitEventDocument, { name: 'order.created', data: { hang: false } });
      // then: the quiet site's delivery runs at once, beside six of the noisy site's
      await succeededOn(server, quiet.siteId);
      assert.equal(inFlight(), before + 6);
      const running = await deliveries.count({ where: { siteId: noisy.siteId, status: 'RUNNING' } });
      assert.equal(running, 8, 'the other two are claimed, waiting for the site’s share');
    });
  });
});
