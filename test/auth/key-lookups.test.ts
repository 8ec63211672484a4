import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import { generateApiKey } from '../../src/auth/api-key.js';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenSite } from '../support/fixtures.js';
import { CreateApiKeyDocument, ViewerDocument } from '../generated/graphql.js';
import { inOneRateWindow } from '../support/rate-window.js';

const LOOKUPS = 6;

/** How a WebSocket whose `connection_init` carries `key` ends: acknowledged, or its close code. */
function connectionInit(url: string, key: string): Promise<'acknowledged' | number> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
    socket.once('error', reject);
    socket.once('open', () =>
      socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${key}` } })),
    );
    socket.once('message', () => {
      resolve('acknowledged');
      socket.terminate();
    });
    socket.once('close', (code) => resolve(code));
  });
}

describe('key look-ups per address: unknown keys are counted before the database is read', () => {
  let server: TestServer;

  before(async () => {
    // Anonymous requests unlimited, so only the look-up limit can refuse.
    server = await startTestServer({ RATE_LIMIT_KEY_LOOKUPS: String(LOOKUPS) });
  });
  after(() => server.close());

  it('refuses the address with 429 RATE_LIMITED once it looked up its share, over HTTP, REST and WebSocket, while keys already known here keep working', async () => {
    await inOneRateWindow();
    // given: a site whose key was used (so it is known here), and a key issued but never used
    const site = await givenSite(server.admin);
    assert.equal((await site.client.ok(ViewerDocument)).viewer.role, 'site');
    const { createApiKey: unused } = await server.admin.ok(CreateApiKeyDocument, {
      role: 'SITE',
      siteId: site.siteId,
    });

    // when: the address sends unknown keys until one is refused
    const statuses: number[] = [];
    for (let i = 0; i <= LOOKUPS && !statuses.includes(429); i += 1) {
      statuses.push((await server.anonymous.as(generateApiKey()).request(ViewerDocument)).status);
    }

    // then: unknown keys were 401 until the share was spent (the setup's look-ups count too), then 429
    assert.equal(statuses.at(-1), 429, `statuses: ${statuses.join(', ')}`);
    assert.ok(
      statuses.slice(0, -1).every((status) => status === 401),
      `statuses: ${statuses.join(', ')}`,
    );
    const refused = await fetch(`${server.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${generateApiKey()}` },
      body: JSON.stringify({ query: '{ viewer { role } }' }),
    });
    const body = (await refused.json()) as {
      errors: { message: string; extensions: Record<string, unknown> }[];
    };
    assert.equal(refused.status, 429);
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    assert.equal(body.errors[0].extensions.code, 'RATE_LIMITED');
    assert.match(body.errors[0].message, /look-ups/);

    // and a valid key this server has not looked up yet is refused the same way: no read was made
    assert.equal((await server.anonymous.as(unused.key).request(ViewerDocument)).status, 429);
    const rest = await fetch(`${server.url}/api/events`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${unused.key}` },
      body: JSON.stringify({ name: 'order.created', data: {} }),
    });
    assert.equal(rest.status, 429);
    assert.equal(((await rest.json()) as { error: { code: string } }).error.code, 'RATE_LIMITED');
    assert.equal(await connectionInit(server.url, generateApiKey()), 1013);

    // and keys known here, and callers with no key, are not look-ups
    assert.equal((await site.client.ok(ViewerDocument)).viewer.role, 'site');
    assert.equal((await server.admin.ok(ViewerDocument)).viewer.role, 'admin');
    assert.equal((await server.anonymous.ok(ViewerDocument)).viewer.role, 'anonymous');
    assert.equal(await connectionInit(server.url, site.key), 'acknowledged');

    // and the refusals are counted
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    const count = /^http_rate_limited_total\{caller="key-lookup"\} (\d+)$/m.exec(metrics)?.[1];
    assert.equal(Number(count), 5);
  });
});
