import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import type { Client } from 'graphql-ws';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenSite } from '../support/fixtures.js';
import { CreateApiKeyDocument, EmitEventDocument, OnEventsDocument } from '../generated/graphql.js';
import { eventually, liveClient, subscribe } from '../events/helpers.js';
import { inOneRateWindow } from '../support/rate-window.js';

const FLOOD_EVENTS = 'subscription { events(names: ["flood.*"]) { id name data } }';
const FLOOD_NAMES = 'subscription { names: events(names: ["flood.*"]) { id name } }';
const PING_EVENTS = 'subscription { events(names: ["ping.*"]) { id name } }';

/** Waits until `condition` holds (polled every 25 ms), or fails naming `what`. */
const until = (condition: () => unknown, what: string, timeoutMs = 10_000) =>
  eventually(async () => ((await condition()) ? true : undefined), what, timeoutMs);

/** A `live_limited_total` count from the server's /metrics (0 before the first). */
async function liveLimited(url: string, limit: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(new RegExp(`^live_limited_total\\{limit="${limit}"\\} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
}

interface Message {
  id?: string;
  type: string;
  payload?: unknown;
}

/** A graphql-ws socket spoken to by hand, so a test can stop reading from it. */
class RawLiveSocket {
  readonly messages: Message[] = [];
  closeCode: number | null = null;
  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => this.messages.push(JSON.parse(String(data)) as Message));
    socket.on('close', (code) => (this.closeCode = code));
  }

  /** Opens a socket and sends `connection_init` with `key`; resolves once it is acknowledged or closed. */
  static async open(url: string, key: string | null): Promise<RawLiveSocket> {
    const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
    const live = new RawLiveSocket(socket);
    await new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    socket.send(
      JSON.stringify({ type: 'connection_init', payload: key ? { authorization: `Bearer ${key}` } : {} }),
    );
    await until(() => live.acked || live.closeCode !== null, 'connection_ack or close');
    return live;
  }

  get acked(): boolean {
    return this.messages.some((m) => m.type === 'connection_ack');
  }

  subscribe(id: string, query: string): void {
    this.socket.send(JSON.stringify({ id, type: 'subscribe', payload: { query } }));
  }

  complete(id: string): void {
    this.socket.send(JSON.stringify({ id, type: 'complete' }));
  }

  of(id: string, type: string): Message[] {
    return this.messages.filter((m) => m.id === id && m.type === type);
  }

  /**
   * The `extensions.code` of the error that ended operation `id`, once it came: an `error` message,
   * or a last `next` with errors before `complete`.
   */
  errorCode(id: string): string | undefined {
    type Errors = { extensions?: { code?: string } }[] | undefined;
    const [error] = this.of(id, 'error');
    if (error) return (error.payload as Errors)?.[0]?.extensions?.code;
    if (this.of(id, 'complete').length === 0) return undefined;
    const last = this.of(id, 'next').at(-1)?.payload as { errors?: Errors } | undefined;
    return last?.errors?.[0]?.extensions?.code;
  }

  close(): void {
    this.socket.terminate();
  }
}

describe('live limits: what one caller may hold of the WebSocket transport', () => {
  let server: TestServer;
  const sockets: RawLiveSocket[] = [];
  const clients: Client[] = [];
  const open = async (key: string | null) => {
    const socket = await RawLiveSocket.open(server.url, key);
    sockets.push(socket);
    return socket;
  };

  before(async () => {
    server = await startTestServer({
      LIVE_MAX_CONNECTIONS_PER_KEY: '2',
      LIVE_MAX_OPERATIONS_PER_CONNECTION: '2',
      LIVE_MAX_BACKLOG_PER_KEY: '100',
      LIVE_MAX_SUBSCRIPTIONS_PER_KEY: '2',
    });
  });
  after(async () => {
    for (const socket of sockets) socket.close();
    for (const client of clients) await client.dispose();
    await server.close();
  });

  it('closes a key’s socket past its share with 1013 (try again later), while other keys connect; a closed socket frees its place', async () => {
    // given: a site whose key holds its two sockets
    const site = await givenSite(server.admin);
    const first = await open(site.key);
    const second = await open(site.key);

    // when: it opens a third, and another key opens one
    const third = await open(site.key);
    const other = await open(server.adminKey);

    // then
    assert.equal(first.acked && second.acked, true);
    assert.equal(third.acked, false);
    assert.equal(third.closeCode, 1013);
    assert.equal(other.acked, true);
    assert.equal(await liveLimited(server.url, 'connections'), 1);

    // when: one of its sockets closes
    first.close();
    await until(() => first.closeCode !== null, 'the first socket to close');
    const again = await eventually(async () => {
      const socket = await open(site.key);
      return socket.acked ? socket : undefined;
    }, 'a socket accepted again');

    // then
    assert.equal(again.acked, true);
  });

  it('answers an operation past the socket’s share with TOO_MANY_LIVE_OPERATIONS; the others keep running, and completing one frees a place', async () => {
    // given: a socket with two subscriptions in flight
    const site = await givenSite(server.admin);
    const socket = await open(site.key);
    socket.subscribe('a', PING_EVENTS);
    socket.subscribe('b', `subscription { other: events(names: ["ping.*"]) { id } }`);

    // when: it starts a third
    socket.subscribe('c', PING_EVENTS);

    // then: the third is refused, naming the limit
    await until(() => socket.errorCode('c'), 'the third operation to be refused');
    assert.equal(socket.errorCode('c'), 'TOO_MANY_LIVE_OPERATIONS');
    assert.equal(await liveLimited(server.url, 'operations'), 1);

    // when: it completes one and starts another, then an event comes
    socket.complete('a');
    socket.subscribe('d', PING_EVENTS);
    await until(async () => {
      await site.client.ok(EmitEventDocument, { name: 'ping.one', data: {} });
      return socket.of('d', 'next').length > 0 && socket.of('b', 'next').length > 0;
    }, 'an event on both subscriptions');

    // then: the one in flight and the new one both received it, and nothing was refused again
    assert.equal(socket.errorCode('d'), undefined);
    assert.equal(socket.errorCode('b'), undefined);
  });

  it('refuses a key a third distinct subscription across its sockets, while an equal one is shared and another key subscribes', async () => {
    // given: a key with two distinct subscriptions on one socket
    const site = await givenSite(server.admin);
    const first = await open(site.key);
    first.subscribe('x', PING_EVENTS);
    first.subscribe('y', `subscription { y: events(names: ["ping.*"]) { id } }`);
    const second = await open(site.key);
    const other = await open(server.adminKey);

    // when: its second socket asks for an equal one and a third distinct one; another key asks for
    // that one too
    const third = `subscription { z: events(names: ["ping.*"]) { id } }`;
    second.subscribe('x', PING_EVENTS);
    second.subscribe('z', third);
    other.subscribe('z', third);

    // then: the third distinct one is refused, naming the limit; the rest receive
    await until(() => second.errorCode('z'), 'the third distinct subscription to be refused');
    assert.equal(second.errorCode('z'), 'TOO_MANY_LIVE_OPERATIONS');
    assert.equal(await liveLimited(server.url, 'subscriptions'), 1);
    await until(async () => {
      await site.client.ok(EmitEventDocument, { name: 'ping.distinct', data: {} });
      return [
        first.of('x', 'next'),
        first.of('y', 'next'),
        second.of('x', 'next'),
        other.of('z', 'next'),
      ].every((received) => received.length > 0);
    }, 'an event on the four subscriptions in flight');
    first.close();
    second.close();
  });

  it('ends the subscriptions of a caller that stops reading once its backlog is full (LIVE_STREAM_INTERRUPTED), while another key’s subscriber gets every event', async () => {
    // given: a site's socket with two subscriptions to its own events, which stops reading, and a
    // dashboard with another key of the same site subscribed to the same events
    const site = await givenSite(server.admin);
    const hostile = await open(site.key);
    hostile.subscribe('1', FLOOD_EVENTS);
    hostile.subscribe('2', FLOOD_NAMES);
    const { createApiKey: watcher } = await server.admin.ok(CreateApiKeyDocument, {
      role: 'SITE',
      siteId: site.siteId,
    });
    const dashboard = liveClient(server.url, watcher.key);
    clients.push(dashboard);
    const feed = subscribe(dashboard, OnEventsDocument, { names: ['flood.*'] });
    await until(async () => {
      await site.client.ok(EmitEventDocument, { name: 'flood.probe', data: {} });
      return (
        hostile.of('1', 'next').length > 0 &&
        hostile.of('2', 'next').length > 0 &&
        feed.received.some((item) => item.events.name === 'flood.probe')
      );
    }, 'all three subscriptions listening');
    hostile.socket.pause();

    // when: the site emits more than the socket and the backlog can hold (60 KB an event)
    const count = 300;
    const pad = 'x'.repeat(60_000);
    for (let i = 0; i < count; i += 1) {
      await site.client.ok(EmitEventDocument, { name: 'flood.item', data: { i, pad } });
    }

    // then: the dashboard got every event
    await until(
      () => feed.received.filter((item) => item.events.name === 'flood.item').length === count,
      'every event on the dashboard',
      20_000,
    );
    assert.deepEqual(feed.errors, []);

    // and when the site reads again, its subscriptions had fallen behind and ended
    hostile.socket.resume();
    await until(
      () => hostile.errorCode('1') !== undefined && hostile.errorCode('2') !== undefined,
      'both paused subscriptions to end',
      20_000,
    );
    assert.equal(hostile.errorCode('1'), 'LIVE_STREAM_INTERRUPTED');
    assert.equal(hostile.errorCode('2'), 'LIVE_STREAM_INTERRUPTED');
    assert.equal(await liveLimited(server.url, 'backlog'), 2);
    const received = hostile.of('1', 'next').length + hostile.of('2', 'next').length - 2;
    assert.ok(received < 2 * count, `the paused socket received ${received} of ${2 * count}`);

    // and its backlog was given back: a new subscription on the same socket works
    hostile.subscribe('3', PING_EVENTS);
    await until(async () => {
      await site.client.ok(EmitEventDocument, { name: 'ping.after', data: {} });
      return hostile.of('3', 'next').length > 0;
    }, 'a new subscription to receive');
  });
});

describe('live limits: subscribing counts against the rate limit', () => {
  let server: TestServer;
  const sockets: RawLiveSocket[] = [];

  before(async () => {
    server = await startTestServer({ RATE_LIMIT_SITE: '3' });
  });
  after(async () => {
    for (const socket of sockets) socket.close();
    await server.close();
  });

  it('refuses a subscribe past the key’s requests per window with RATE_LIMITED and when to retry', async () => {
    await inOneRateWindow();
    // given: a site key allowed 3 requests a window, on a socket of its own
    const site = await givenSite(server.admin);
    const socket = await RawLiveSocket.open(server.url, site.key);
    sockets.push(socket);

    // when: it subscribes four times
    for (const id of ['1', '2', '3', '4']) socket.subscribe(id, PING_EVENTS);

    // then: the fourth is refused; the first three were not
    await until(() => socket.errorCode('4'), 'the fourth subscribe to be refused');
    assert.equal(socket.errorCode('4'), 'RATE_LIMITED');
    const [refusal] = socket.of('4', 'error');
    const extensions = (refusal.payload as { extensions: { retryAfterSeconds: number } }[])[0].extensions;
    assert.ok(extensions.retryAfterSeconds >= 1);
    assert.deepEqual(
      ['1', '2', '3'].map((id) => socket.errorCode(id)),
      [undefined, undefined, undefined],
    );
    // and an HTTP request of the same key shares the window
    const http = await site.client.raw('{ __typename }');
    assert.equal(http.status, 429);
  });
});

describe('live limits: sockets waiting for connection_init, per address', () => {
  let server: TestServer;
  const waiting: WebSocket[] = [];

  before(async () => {
    server = await startTestServer({ LIVE_MAX_HANDSHAKES_PER_ADDRESS: '2' });
  });
  after(async () => {
    for (const socket of waiting) socket.terminate();
    await server.close();
  });

  /** Opens a socket that sends nothing; resolves once open, or to the status an upgrade was refused with. */
  const openSilent = (): Promise<
    { socket: WebSocket } | { status: number; body: string; retryAfter: string }
  > =>
    new Promise((resolve, reject) => {
      const socket = new WebSocket(`${server.url.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
      socket.once('open', () => {
        waiting.push(socket);
        resolve({ socket });
      });
      socket.once('unexpected-response', (_request, response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk.toString()));
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            body,
            retryAfter: String(response.headers['retry-after']),
          }),
        );
      });
      socket.once('error', reject);
    });

  it('answers an address’s upgrade past its sockets waiting for connection_init with 429 and a JSON body; one that initialises frees a place', async () => {
    // given: two sockets from this address that have not sent connection_init
    const first = await openSilent();
    const second = await openSilent();
    assert.ok('socket' in first && 'socket' in second);

    // when: a third is opened
    const third = await openSilent();

    // then: its upgrade is refused, saying why and when to retry
    assert.ok('status' in third, 'the third upgrade is refused');
    assert.equal(third.status, 429);
    assert.equal(third.retryAfter, '3');
    const { error } = JSON.parse(third.body) as { error: { code: string; message: string } };
    assert.equal(error.code, 'RATE_LIMITED');
    assert.match(error.message, /connection_init/);
    assert.equal(await liveLimited(server.url, 'handshakes'), 1);

    // when: the first initialises with a key
    first.socket.send(
      JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${server.adminKey}` } }),
    );
    await new Promise((resolve) => first.socket.once('message', resolve));

    // then: its place is free: another socket opens, and the acknowledged one stays open
    const fourth = await openSilent();
    assert.ok('socket' in fourth, 'a socket opens again');
    assert.equal(first.socket.readyState, WebSocket.OPEN);
  });
});

describe('live limits: what the sockets of one address may send', () => {
  /** Bytes a second one address's sockets may send here, past a burst of 1 MiB. */
  const RATE = 400_000;
  /** A `subscribe` message of about 400 KB (a comment pads the document), answered with an error. */
  const large = (id: string) =>
    JSON.stringify({
      id,
      type: 'subscribe',
      payload: { query: `subscription { nope } #${'x'.repeat(RATE - 100)}` },
    });
  let server: TestServer;
  const opened: WebSocket[] = [];

  before(async () => {
    server = await startTestServer({ LIVE_MAX_INBOUND_BYTES_PER_SECOND: String(RATE) });
  });
  after(async () => {
    for (const socket of opened) socket.terminate();
    await server.close();
  });

  /** An acknowledged socket from `localAddress` (with `key`, or none), and when each operation was answered. */
  const openFrom = async (localAddress: string, key?: string) => {
    const socket = new WebSocket(`${server.url.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws', {
      localAddress,
    });
    opened.push(socket);
    const answeredAt = new Map<string, number>();
    socket.on('message', (data) => {
      const message = JSON.parse(String(data)) as Message;
      if (message.id && !answeredAt.has(message.id)) answeredAt.set(message.id, performance.now());
    });
    await new Promise((resolve, reject) => {
      socket.once('open', resolve);
      socket.once('error', reject);
    });
    const acked = new Promise((resolve) => socket.once('message', resolve));
    socket.send(
      JSON.stringify({ type: 'connection_init', payload: key ? { authorization: `Bearer ${key}` } : {} }),
    );
    await acked;
    return { socket, answeredAt };
  };

  it('reads a caller’s messages past its burst only as its budget refills, losing none, while another address, and a key from the same address, are read at once', async () => {
    // given: a socket with no key from 127.0.0.1, one from 127.0.0.2, and one with a key from 127.0.0.1
    const busy = await openFrom('127.0.0.1');
    const other = await openFrom('127.0.0.2');
    const keyed = await openFrom('127.0.0.1', server.adminKey);

    // when: the first sends six messages of 400 KB at once (2.4 MB against a burst of 1 MiB),
    // and the other one small message right after
    const sentAt = performance.now();
    for (const id of ['1', '2', '3', '4', '5', '6']) busy.socket.send(large(id));
    other.socket.send(JSON.stringify({ id: 'o', type: 'subscribe', payload: { query: '{ __typename }' } }));
    // and, once the address has spent its burst, the key from the same address sends three of them
    await until(() => busy.answeredAt.has('3'), 'the third message answered');
    for (const id of ['k1', 'k2', 'k3']) keyed.socket.send(large(id));

    // then: every message is answered in the end
    await until(
      () => busy.answeredAt.size === 6 && other.answeredAt.has('o') && keyed.answeredAt.size === 3,
      'all ten answers',
      20_000,
    );
    // and none was read before its address's budget allowed it: a message is read once the budget
    // is not negative, so message k no earlier than ((k - 1) x its size - 1 MiB) / 400 KB/s after
    // they were sent (5 ms for timer granularity)
    const size = Buffer.byteLength(large('4'));
    for (let k = 4; k <= 6; k += 1) {
      const earliestMs = (((k - 1) * size - 1024 * 1024) / RATE) * 1000 - 5;
      const tookMs = busy.answeredAt.get(String(k))! - sentAt;
      assert.ok(
        tookMs >= earliestMs,
        `message ${k} answered after ${tookMs.toFixed(0)} ms, before ${earliestMs.toFixed(0)} ms`,
      );
    }
    // and neither the other address nor the key from the same address was held back by it
    assert.ok(other.answeredAt.get('o')! < busy.answeredAt.get('4')!, 'the other address answered first');
    assert.ok(keyed.answeredAt.get('k3')! < busy.answeredAt.get('4')!, 'the key’s three answered first');
    assert.ok((await liveLimited(server.url, 'inbound')) >= 1);
  });
});
