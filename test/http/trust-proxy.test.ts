import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { inOneRateWindow } from '../support/rate-window.js';

/** An anonymous `{ viewer { role } }` whose request says it was forwarded for `address`. */
const viewerFor = (url: string, address: string) =>
  fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-forwarded-for': address },
    body: JSON.stringify({ query: '{ viewer { role } }' }),
  });

/** Opens a WebSocket forwarded for `address` that sends nothing: 'open', or the refused status. */
const openSilentFor = (url: string, address: string, opened: WebSocket[]): Promise<'open' | number> =>
  new Promise((resolve, reject) => {
    const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws', {
      headers: { 'x-forwarded-for': address },
    });
    socket.once('open', () => {
      opened.push(socket);
      resolve('open');
    });
    socket.once('unexpected-response', (_request, response) => resolve(response.statusCode ?? 0));
    socket.once('error', reject);
  });

const LIMITS = {
  RATE_LIMIT_ANONYMOUS: '3',
  RATE_LIMIT_WINDOW_SECONDS: '60',
  LIVE_MAX_HANDSHAKES_PER_ADDRESS: '2',
};

describe('callers behind a trusted proxy (TRUST_PROXY)', () => {
  let server: TestServer;
  const sockets: WebSocket[] = [];

  before(async () => {
    // The tests reach the server over loopback: here that is the proxy.
    server = await startTestServer({
      ...LIMITS,
      TRUST_PROXY: 'loopback',
      REDIS_KEY_PREFIX: `tp-test-${randomUUID().slice(0, 8)}:`,
    });
  });
  after(async () => {
    for (const socket of sockets) socket.terminate();
    await server.close();
  });

  it('counts each forwarded caller under its own address, over HTTP and WebSocket', async () => {
    await inOneRateWindow();
    // given: one caller behind the proxy spends its anonymous limit and its waiting sockets
    const spent: number[] = [];
    for (let i = 0; i < 4; i++) spent.push((await viewerFor(server.url, '203.0.113.7')).status);
    const waiting = [
      await openSilentFor(server.url, '203.0.113.7', sockets),
      await openSilentFor(server.url, '203.0.113.7', sockets),
      await openSilentFor(server.url, '203.0.113.7', sockets),
    ];

    // when: another caller comes through the same proxy
    const other = await viewerFor(server.url, '198.51.100.9');
    const otherSocket = await openSilentFor(server.url, '198.51.100.9', sockets);

    // then: the first was refused past its own limits; the other is served
    assert.deepEqual(spent, [200, 200, 200, 429]);
    assert.deepEqual(waiting, ['open', 'open', 429]);
    assert.equal(other.status, 200);
    assert.equal(otherSocket, 'open');
  });
});

describe('IPv6 callers are counted per network', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer({
      ...LIMITS,
      TRUST_PROXY: 'loopback',
      RATE_LIMIT_IPV6_SUBNET: '56',
      REDIS_KEY_PREFIX: `tp-test-${randomUUID().slice(0, 8)}:`,
    });
  });
  after(() => server.close());

  it('counts fresh addresses of one /56 as one caller, and another network apart', async () => {
    await inOneRateWindow();
    // when: four requests come from four addresses of one /56, then one from another /56
    const statuses: number[] = [];
    for (const address of [
      '2001:db8:7:100::1',
      '2001:db8:7:100::2',
      '2001:db8:7:1ff::3',
      '2001:db8:7:1aa:1::4',
    ])
      statuses.push((await viewerFor(server.url, address)).status);
    const elsewhere = await viewerFor(server.url, '2001:db8:7:200::1');

    // then: the network spent its limit of three; the other network is served
    assert.deepEqual(statuses, [200, 200, 200, 429]);
    assert.equal(elsewhere.status, 200);
  });
});

describe('callers reaching the server directly (no TRUST_PROXY)', () => {
  let server: TestServer;
  const sockets: WebSocket[] = [];

  before(async () => {
    server = await startTestServer({ ...LIMITS, REDIS_KEY_PREFIX: `tp-test-${randomUUID().slice(0, 8)}:` });
  });
  after(async () => {
    for (const socket of sockets) socket.terminate();
    await server.close();
  });

  it('ignores X-Forwarded-For, so a caller cannot name itself a fresh address', async () => {
    await inOneRateWindow();
    // when: one caller sends each request and socket as if forwarded for another address
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) statuses.push((await viewerFor(server.url, `203.0.113.${i}`)).status);
    const waiting: ('open' | number)[] = [];
    for (let i = 0; i < 3; i++) waiting.push(await openSilentFor(server.url, `198.51.100.${i}`, sockets));

    // then: they are counted under its one address
    assert.deepEqual(statuses, [200, 200, 200, 429]);
    assert.deepEqual(waiting, ['open', 'open', 429]);
  });
});
