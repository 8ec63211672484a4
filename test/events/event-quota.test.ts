import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { startSecondInstance, type SecondInstance } from '../support/second-instance.js';
import {
  givenDeveloper,
  givenInstalledAddon,
  givenPublished,
  givenSite,
  manifest as fullManifest,
} from '../support/fixtures.js';
import { GraphQLClient } from '../support/graphql-client.js';
import {
  EmitEventDocument,
  EventsDocument,
  ExecuteAddonFunctionDocument,
  InstallAddonDocument,
} from '../generated/graphql.js';
import { inOneRateWindow } from '../support/rate-window.js';

const PER_DAY = 5;

/** Emits `data.count` events, one after another; reports how many were stored and the first refusal. */
const EMITTER = `module.exports = { functions: {
  emit: async (data, ctx) => {
    let emitted = 0;
    try {
      for (let i = 0; i < data.count; i++) {
        await ctx.events.emit('order.placed', { i });
        emitted++;
      }
    } catch (e) {
      return { emitted, code: e.code, message: e.message };
    }
    return { emitted };
  },
  'emit-uncaught': async (data, ctx) => {
    for (let i = 0; i < data.count; i++) await ctx.events.emit('order.placed', { i });
    return 'done';
  },
} };`;

const manifest = {
  permissions: ['events.emit'],
  functions: [{ name: 'emit' }, { name: 'emit-uncaught' }],
  events: { emits: ['order.placed'] },
};

describe('events addon code emits are bounded per site and day', () => {
  let server: TestServer;
  let second: SecondInstance;

  before(async () => {
    server = await startTestServer({ EVENTS_MAX_PER_SITE_DAY: String(PER_DAY) });
    second = await startSecondInstance(server);
  });
  after(async () => {
    await second.close();
    await server.close();
  });

  it("refuses a site's emits past its day with RATE_LIMITED, on every instance, while another site's go on", async () => {
    await inOneRateWindow(86_400, 30_000);
    // given: the same addon installed on sites A and B
    const developer = (await givenDeveloper(server.admin)).client;
    const { site: a, name } = await givenInstalledAddon(server.admin, developer, manifest, EMITTER);
    const b = await givenSite(server.admin);
    await b.client.ok(InstallAddonDocument, { id: name, config: {} });
    const emit = (client: GraphQLClient, count: number) =>
      client.request(ExecuteAddonFunctionDocument, { addonId: name, function: 'emit', data: { count } });

    // when: A's addon emits 3 events, then 3 more
    const first = await emit(a.client, 3);
    const secondCall = await emit(a.client, 3);

    // then: the day's 5 were stored; the sixth emit was refused with a catchable RATE_LIMITED
    assert.deepEqual(first.data?.executeAddonFunction, { emitted: 3 });
    const refused = secondCall.data?.executeAddonFunction as {
      emitted: number;
      code: string;
      message: string;
    };
    assert.equal(refused.emitted, 2);
    assert.equal(refused.code, 'RATE_LIMITED');
    assert.match(refused.message, /emitted 5 events today.*EVENTS_MAX_PER_SITE_DAY/);
    const stored = await a.client.ok(EventsDocument, { names: ['order.placed'], first: 100 });
    assert.equal(stored.events.edges.length, PER_DAY);

    // and an emit that escapes fails the call with RATE_LIMITED and stores nothing more
    const uncaught = await a.client.request(ExecuteAddonFunctionDocument, {
      addonId: name,
      function: 'emit-uncaught',
      data: { count: 1 },
    });
    assert.equal(uncaught.errors?.[0]?.extensions?.code, 'RATE_LIMITED', JSON.stringify(uncaught.errors));

    // and the other instance knows A's day once the count reached Redis
    const elsewhere = new GraphQLClient(second.url, a.key);
    let other = await emit(elsewhere, 1);
    for (let i = 0; i < 20 && (other.data?.executeAddonFunction as { emitted: number }).emitted > 0; i += 1) {
      // Each instance syncs within 200 ms: until then the other may admit what it saw as left.
      await sleep(250);
      other = await emit(elsewhere, 1);
    }
    assert.deepEqual(
      (other.data?.executeAddonFunction as { emitted: number; code: string }).code,
      'RATE_LIMITED',
    );

    // and site B emits its own events meanwhile
    assert.deepEqual((await emit(b.client, 3)).data?.executeAddonFunction, { emitted: 3 });
    const ofB = await b.client.ok(EventsDocument, { names: ['order.placed'], first: 100 });
    assert.equal(ofB.events.edges.length, 3);
  });

  it("counts a site key's emitEvent in the same day: past it RATE_LIMITED, addon emits refused too, an admin still emits", async () => {
    await inOneRateWindow(86_400, 30_000);
    // given: a site with the emitting addon installed
    const developer = (await givenDeveloper(server.admin)).client;
    const { site, name } = await givenInstalledAddon(server.admin, developer, manifest, EMITTER);

    // when: the site's key emits its day's 5 events through the mutation, then a sixth
    for (let i = 0; i < PER_DAY; i++)
      await site.client.ok(EmitEventDocument, { name: 'cart.viewed', data: { i } });
    const sixth = await site.client.request(EmitEventDocument, { name: 'cart.viewed', data: { i: PER_DAY } });

    // then: the sixth is refused naming the setting, and nothing more is stored
    assert.equal(sixth.errors?.[0]?.extensions?.code, 'RATE_LIMITED', JSON.stringify(sixth.errors));
    assert.match(sixth.errors?.[0]?.message ?? '', /^emitEvent: .*EVENTS_MAX_PER_SITE_DAY/);
    const stored = await site.client.ok(EventsDocument, { names: ['cart.viewed'], first: 100 });
    assert.equal(stored.events.edges.length, PER_DAY);

    // and its addons' emits share the spent day
    const fromAddon = await site.client.request(ExecuteAddonFunctionDocument, {
      addonId: name,
      function: 'emit',
      data: { count: 1 },
    });
    assert.equal((fromAddon.data?.executeAddonFunction as { code?: string }).code, 'RATE_LIMITED');

    // and an admin may still emit on the site
    const byAdmin = await server.admin.ok(EmitEventDocument, {
      name: 'cart.viewed',
      data: {},
      siteId: site.siteId,
    });
    assert.equal(byAdmin.emitEvent.siteId, site.siteId);
  });
});

describe("one addon may spend only its share of a site's day of events", () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer({ EVENTS_MAX_PER_SITE_DAY: '6', EVENTS_MAX_PER_ADDON_DAY: '4' });
  });
  after(() => server.close());

  it("refuses an addon past its share with RATE_LIMITED while the site's other addons emit the rest", async () => {
    await inOneRateWindow(86_400, 30_000);
    // given: two developers' emitting addons installed on one site
    const noisyDeveloper = (await givenDeveloper(server.admin)).client;
    const { site, name: noisy } = await givenInstalledAddon(server.admin, noisyDeveloper, manifest, EMITTER);
    const quietDeveloper = (await givenDeveloper(server.admin)).client;
    const quiet = (
      await givenPublished(
        quietDeveloper,
        fullManifest({ configSchema: { type: 'object' }, widgets: [], ...manifest }),
        EMITTER,
      )
    ).addon.name;
    await site.client.ok(InstallAddonDocument, { id: quiet, config: {} });
    const emit = (addonId: string, count: number) =>
      site.client.request(ExecuteAddonFunctionDocument, { addonId, function: 'emit', data: { count } });

    // when: the noisy addon tries ten events, then the quiet one three
    const fromNoisy = (await emit(noisy, 10)).data?.executeAddonFunction as Record<string, unknown>;
    const fromQuiet = (await emit(quiet, 3)).data?.executeAddonFunction as Record<string, unknown>;

    // then: the noisy one stored its share of four, refused naming the addon's setting
    assert.equal(fromNoisy.emitted, 4);
    assert.equal(fromNoisy.code, 'RATE_LIMITED');
    assert.match(String(fromNoisy.message), /this addon emitted 4 events.*EVENTS_MAX_PER_ADDON_DAY/);
    // and the quiet one the site's two left, then the site's day refused it
    assert.equal(fromQuiet.emitted, 2);
    assert.match(String(fromQuiet.message), /this site emitted 6 events.*EVENTS_MAX_PER_SITE_DAY/);
    const stored = await site.client.ok(EventsDocument, { names: ['order.placed'], first: 100 });
    assert.equal(stored.events.edges.length, 6);
    // and the operator sees each refusal counted by the budget it hit
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const refused = (limit: string) =>
      Number(new RegExp(`^events_refused_total\\{limit="${limit}"\\} (\\S+)$`, 'm').exec(metrics)?.[1] ?? 0);
    assert.deepEqual([refused('addon_day'), refused('site_day')], [1, 1]);
  });
});
