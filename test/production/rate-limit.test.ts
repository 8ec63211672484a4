import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenSite } from '../support/fixtures.js';
import { inOneRateWindow } from '../support/rate-window.js';

const viewer = (url: string, key?: string) =>
  fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify({ query: '{ viewer { role } }' }),
  });

describe('rate limiting', () => {
  // A prefix of its own keeps these counters apart from any other run sharing Redis.
  const shared = {
    REDIS_KEY_PREFIX: `tp-test-${randomUUID().slice(0, 8)}:`,
    RATE_LIMIT_WINDOW_SECONDS: '60',
  };
  let first: TestServer;
  let second: TestServer;

  before(async () => {
    first = await startTestServer({
      ...shared,
      RATE_LIMIT_ANONYMOUS: '5',
      RATE_LIMIT_SITE: '3',
      RATE_LIMIT_ADMIN: '0',
    });
    second = await startTestServer({
      ...shared,
      RATE_LIMIT_ANONYMOUS: '5',
      RATE_LIMIT_SITE: '3',
      RATE_LIMIT_ADMIN: '0',
    });
  });
  after(async () => {
    await first.close();
    await second.close();
  });

  it('counts anonymous callers per IP across instances and answers 429 with Retry-After', async () => {
    await inOneRateWindow();
    // given: 3 requests on one instance and 2 on the other use up the shared limit of 5
    const statuses: number[] = [];
    for (const url of [first.url, first.url, first.url, second.url, second.url])
      statuses.push((await viewer(url)).status);
    // when
    const refused = await viewer(second.url);
    const refusedRest = await fetch(`${first.url}/api/addons/x/execute`, { method: 'POST' });
    // then
    assert.deepEqual(statuses, [200, 200, 200, 200, 200]);
    assert.equal(refused.status, 429);
    const retryAfter = Number(refused.headers.get('retry-after'));
    assert.ok(retryAfter >= 1 && retryAfter <= 60, `Retry-After ${retryAfter}`);
    const body = (await refused.json()) as { errors: { extensions: { code: string } }[] };
    assert.equal(body.errors[0].extensions.code, 'RATE_LIMITED');
    assert.equal(refusedRest.status, 429);
    assert.equal(((await refusedRest.json()) as { error: { code: string } }).error.code, 'RATE_LIMITED');
    // health endpoints are never limited
    assert.equal((await fetch(`${first.url}/livez`)).status, 200);
  });

  it('limits each key by its role, separately from the IP', async () => {
    await inOneRateWindow();
    const site = await givenSite(first.admin);
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await viewer(first.url, site.key)).status);
    assert.deepEqual(statuses, [200, 200, 200, 429]);
    // The admin role has no limit here.
    for (let i = 0; i < 5; i++) assert.equal((await viewer(first.url, first.adminKey)).status, 200);
  });
});

describe('rate limiting without Redis', () => {
  let server: TestServer;

  before(async () => {
    // Nothing listens on port 1: every Redis call fails.
    server = await startTestServer({ REDIS_URL: 'redis://127.0.0.1:1', RATE_LIMIT_ANONYMOUS: '3' });
  });
  after(() => server.close());

  it('degrades to a per-instance limit instead of allowing or refusing everything', async () => {
    await inOneRateWindow();
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await viewer(server.url)).status);
    assert.deepEqual(statuses, [200, 200, 200, 429, 429]);
  });
});
