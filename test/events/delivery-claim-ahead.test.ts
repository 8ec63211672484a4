import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenDeveloper, givenSite } from '../support/fixtures.js';
import { EmitEventDocument } from '../generated/graphql.js';
import { eventually, givenAddonOnSite } from './helpers.js';

/** Never finishes (the sandbox would time it out after 60 s, the longest limit). */
const HANGING = `module.exports = { handlers: { onEvent: () => new Promise(() => {}) } };`;
const QUICK = `module.exports = { handlers: { onEvent: () => true } };`;

describe('the delivery worker claims ahead', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer({
      DELIVERY_CONCURRENCY: '2',
      DELIVERY_POLL_MS: '100',
      DELIVERY_BACKOFF_BASE_MS: '60000',
    });
  });
  after(() => server.close());

  const statuses = async (addonName: string) => {
    const rows = await server.app.database.prisma.delivery.findMany({ where: { addonName } });
    return {
      running: rows.filter((r) => r.status === 'RUNNING').length,
      pending: rows.filter((r) => r.status === 'PENDING').length,
      succeeded: rows.filter((r) => r.status === 'SUCCEEDED').length,
      attempts: rows.map((r) => r.attempts),
    };
  };

  it('holds a waiting row behind a running one, never more than its share, and hands both back on stop', async () => {
    // given: with 2 slots, an addon whose handler never returns and one that returns at once
    const developer = (await givenDeveloper(server.admin)).client;
    const site = await givenSite(server.admin);
    const handles = { events: { handles: { 'job.queued': 'onEvent' } } };
    const hanging = await givenAddonOnSite(
      developer,
      site,
      { ...handles, limits: { timeoutMs: 60_000 } },
      HANGING,
    );
    const quick = await givenAddonOnSite(developer, site, handles, QUICK);
    // when: five events, each delivered to both
    for (let i = 0; i < 5; i += 1)
      await site.client.ok(EmitEventDocument, { name: 'job.queued', data: { i } });
    // then: the quick addon gets every one through the other slot
    await eventually(
      async () => ((await statuses(quick)).succeeded === 5 ? true : undefined),
      'the quick deliveries',
    );
    // and the hanging addon holds two rows (its share of the 2 slots: one running, one waiting
    // behind it), the other three left for any instance to claim
    const held = await eventually(async () => {
      const now = await statuses(hanging);
      return now.running === 2 ? now : undefined;
    }, 'two claimed rows of the hanging addon');
    assert.equal(held.pending, 3);
    await sleep(300);
    assert.deepEqual(await statuses(hanging), held, 'no more rows claimed');
    assert.equal(server.app.runtime.deliveryWorker?.inFlight, 1);
    // when: the worker stops without waiting for the handler
    await server.app.runtime.deliveryWorker?.stop(0);
    // then: the running and the waiting row are both due again, their attempts not counted
    const released = await statuses(hanging);
    assert.equal(released.running, 0);
    assert.equal(released.pending, 5);
    assert.deepEqual(released.attempts, [0, 0, 0, 0, 0]);
  });
});
