import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { LiveStreamInterruptedError } from '../../src/errors/index.js';
import { randomUUID } from 'node:crypto';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { RawJson } from '../../src/shared/raw-json.js';
import { startOwnRedis, type OwnRedis } from '../support/own-redis.js';
import {
  createPubSub,
  handleDroppedCommands,
  type ConnectionChange,
  type PubSub,
  type PubSubOptions,
} from '../../src/infrastructure/pub-sub/pub-sub.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** The topics of these tests. */
interface TestTopics {
  events: { n?: number; raw?: boolean; at?: string | Date };
  executions: { n: number };
}

/** Waits until `received` holds `count` items (messages arrive asynchronously), at most 2 s. */
async function untilReceived(received: unknown[], count: number): Promise<void> {
  for (let waited = 0; received.length < count && waited < 2000; waited += 10) await sleep(10);
}

describe('the pub/sub over Redis (two instances)', () => {
  const opened: PubSub<TestTopics>[] = [];
  // Run in `after` even when an assertion failed: an open Redis connection would keep the test alive.
  const cleanups: Array<() => void> = [];
  const instance = (prefix: string, options: PubSubOptions<TestTopics> = {}) => {
    const pubSub = createPubSub<TestTopics>({
      redisUrl: REDIS_URL,
      prefix,
      linger: { executions: 25 },
      ...options,
    });
    opened.push(pubSub);
    return pubSub;
  };
  /** Two instances sharing a fresh prefix, the second listening to `topic` (ready). */
  const givenListeningPair = async <K extends keyof TestTopics>(topic: K) => {
    const prefix = `test:${randomUUID()}:`;
    const publisher = instance(prefix);
    const listener = instance(prefix);
    const received: TestTopics[K][] = [];
    const listening = listener.listen(topic, (payload) => received.push(payload));
    cleanups.push(listening.stop);
    await listening.ready;
    return { prefix, publisher, listener, received };
  };
  after(async () => {
    for (const cleanup of cleanups) cleanup();
    await Promise.all(opened.map((pubSub) => pubSub.close()));
  });

  it('hands every payload published in one turn to the other instance, in order', async () => {
    // given
    const { publisher, received } = await givenListeningPair('events');
    // when: one turn's publishes travel as one Redis message
    const published = [1, 2, 3, 4, 5].map((n) => publisher.publish('events', { n }));
    await Promise.all(published);
    // then
    await untilReceived(received, 5);
    assert.deepEqual(received, [{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }, { n: 5 }]);
  });

  it('sends a payload given as JSON text as that text, and dates as JSON strings', async () => {
    // given
    const { publisher, received } = await givenListeningPair('events');
    // when
    await Promise.all([
      publisher.publish('events', new RawJson('{"raw":true,"at":"2026-01-02T03:04:05.006Z"}')),
      publisher.publish('events', { raw: false, at: new Date('2026-01-02T03:04:05.006Z') }),
    ]);
    // then
    await untilReceived(received, 2);
    assert.deepEqual(received, [
      { raw: true, at: '2026-01-02T03:04:05.006Z' },
      { raw: false, at: '2026-01-02T03:04:05.006Z' },
    ]);
  });

  it('holds a lingering topic back briefly, so a burst shares one Redis message', async () => {
    // given: a listening instance, and a plain Redis client counting the channel's messages
    const { prefix, publisher, received } = await givenListeningPair('executions');
    const raw = new Redis(REDIS_URL);
    cleanups.push(() => raw.disconnect());
    let messages = 0;
    raw.on('message', () => (messages += 1));
    await raw.subscribe(`${prefix}executions`);
    // when: published over three event-loop turns (without the linger, three messages)
    const first = publisher.publish('executions', { n: 1 });
    await nextTurn();
    const second = publisher.publish('executions', { n: 2 });
    await nextTurn();
    const third = publisher.publish('executions', { n: 3 });
    await Promise.all([first, second, third]);
    // then
    await untilReceived(received, 3);
    assert.deepEqual(received, [{ n: 1 }, { n: 2 }, { n: 3 }]);
    assert.equal(messages, 1);
  });

  it('tells when its Redis connection is lost and regained, and hears the other instances again once regained', async () => {
    // given: a listening instance that is up, and another that publishes
    const { publisher, listener, received } = await givenListeningPair('events');
    for (let waited = 0; !listener.connection.up && waited < 2000; waited += 10) await sleep(10);
    assert.equal(listener.connection.up, true);
    const changes: ConnectionChange[] = [];
    const regained = new Promise<void>((resolve) => {
      const stop = listener.connection.watch((change) => {
        changes.push(change);
        if (change === 'regained') {
          stop();
          resolve();
        }
      });
    });
    // when: Redis drops this process's pub/sub subscriber connections (both instances', same pid)
    const admin = new Redis(REDIS_URL);
    cleanups.push(() => admin.disconnect());
    const list = (await admin.call('CLIENT', 'LIST', 'TYPE', 'pubsub')) as string;
    const ours = list
      .split('\n')
      .filter((line) => line.includes(`name=themepress:pubsub-subscriber:${process.pid} `))
      .map((line) => /\bid=(\d+)/.exec(line)![1]);
    assert.ok(ours.length >= 1);
    for (const id of ours) await admin.call('CLIENT', 'KILL', 'ID', id);
    await regained;
    await publisher.publish('events', { n: 42 });
    // then
    assert.deepEqual(changes, ['lost', 'regained']);
    assert.equal(listener.connection.up, true);
    await untilReceived(received, 1);
    assert.deepEqual(received, [{ n: 42 }], 'subscribed again before `regained`');
  });
});

describe('the pub/sub while Redis is unreachable', () => {
  it('fails publishes, is down, and closes without leaving a failure behind', async () => {
    // given
    const pubSub = createPubSub<TestTopics>({
      redisUrl: 'redis://127.0.0.1:1',
      prefix: `test:${randomUUID()}:`,
    });
    const listening = pubSub.listen('events', () => undefined);
    // when
    const published = await pubSub.publish('events', { n: 1 }).then(
      () => 'published',
      () => 'failed',
    );
    // then
    assert.equal(published, 'failed');
    assert.equal(pubSub.connection.up, false);
    listening.stop();
    // The SUBSCRIBE waiting for Redis fails at close; nothing may be left unhandled (the runner
    // fails a file with an unhandled rejection).
    await pubSub.close();
    await sleep(50);
  });
});

describe('the pub/sub in one process (no Redis)', () => {
  it('hands listeners JSON copies, keeps calling the others when one throws, and is always up', async () => {
    // given
    const failures: unknown[] = [];
    const pubSub = createPubSub<TestTopics>({ onListenerError: (error) => failures.push(error) });
    const received: unknown[] = [];
    pubSub.listen('events', () => {
      throw new Error('listener bug');
    });
    const listening = pubSub.listen('events', (payload) => received.push(payload));
    await listening.ready;
    const at = new Date('2026-05-06T07:08:09.010Z');
    // when
    await pubSub.publish('events', { n: 1, at });
    // then
    assert.deepEqual(received, [{ n: 1, at: '2026-05-06T07:08:09.010Z' }]);
    assert.equal(failures.length, 1);
    assert.equal(pubSub.connection.up, true);
    listening.stop();
    await pubSub.publish('events', { n: 2 });
    assert.equal(received.length, 1, 'a stopped listener hears nothing more');
    await pubSub.close();
  });

  it('iterates the items a selector keeps, from the first read, and ends a consumer that falls too far behind with an error', async () => {
    // given
    const pubSub = createPubSub<TestTopics>();
    const odd = pubSub.subscribe('events', ({ n }) => (n! % 2 === 1 ? n : null), 3);
    const first = odd.next();
    await nextTurn();
    // when: six published at once (three kept), then eight more while nobody reads
    await Promise.all([1, 2, 3, 4, 5, 6].map((n) => pubSub.publish('events', { n })));
    const kept = [(await first).value, (await odd.next()).value, (await odd.next()).value];
    await Promise.all([7, 8, 9, 10, 11, 12, 13, 14, 15].map((n) => pubSub.publish('events', { n })));
    const rest: unknown[] = [];
    const ended = await (async () => {
      for await (const n of odd) rest.push(n);
    })().catch((error: unknown) => error);
    // then: the buffered items, then an error saying it may have missed some
    assert.deepEqual(kept, [1, 3, 5]);
    assert.deepEqual(rest, [7, 9, 11]);
    assert.ok(ended instanceof LiveStreamInterruptedError);
    assert.equal(ended.code, 'LIVE_STREAM_INTERRUPTED');
    assert.equal(ended.reason, 'fell-behind');
    await pubSub.close();
  });
});

describe('a subscription that may have missed messages ends with LIVE_STREAM_INTERRUPTED (a Redis of its own)', () => {
  let redis: OwnRedis;
  const opened: PubSub<TestTopics>[] = [];
  const instance = () => {
    const pubSub = createPubSub<TestTopics>({ redisUrl: redis.url, prefix: 'gap-test:' });
    opened.push(pubSub);
    return pubSub;
  };
  const untilUp = async (pubSub: PubSub<TestTopics>) => {
    for (let waited = 0; !pubSub.connection.up; waited += 10) {
      assert.ok(waited < 5000, 'the pub/sub connects');
      await sleep(10);
    }
  };
  /** Reads `iterator` until it ends; what it delivered and the error it ended with. */
  const drain = async (iterator: AsyncIterableIterator<unknown>) => {
    const items: unknown[] = [];
    try {
      for await (const item of iterator) items.push(item);
      return { items, error: null };
    } catch (error) {
      return { items, error: error as LiveStreamInterruptedError };
    }
  };

  before(async () => {
    redis = await startOwnRedis();
  });
  after(async () => {
    await Promise.all(opened.map((pubSub) => pubSub.close()));
    await redis.stop();
  });

  it('when another instance failed to publish on its topic: told once that instance publishes again', async () => {
    // given: a subscriber on one instance, a publisher on another, and Redis refusing PUBLISH
    const subscriber = instance();
    const publisher = instance();
    await Promise.all([untilUp(subscriber), untilUp(publisher)]);
    const iterator = subscriber.subscribe('executions');
    const first = iterator.next();
    await sleep(100);
    await publisher.publish('executions', { n: 1 });
    assert.deepEqual((await first).value, { n: 1 });
    const admin = new Redis(redis.url);
    await admin.call('ACL', 'SETUSER', 'default', '-publish');
    // when: a publish fails (the connection stays up), then PUBLISH works again
    const failed = await publisher.publish('executions', { n: 2 }).then(
      () => 'published',
      () => 'failed',
    );
    await admin.call('ACL', 'SETUSER', 'default', '+publish');
    await publisher.publish('executions', { n: 3 });
    // then: the subscriber is told it may have missed a message (n: 3 may arrive before the notice)
    const { items, error } = await drain(iterator);
    admin.disconnect();
    assert.equal(failed, 'failed');
    assert.ok(items.every((item) => (item as { n: number }).n === 3));
    assert.ok(error instanceof LiveStreamInterruptedError, String(error));
    assert.equal(error.reason, 'publish-failed');
  });

  it('when this instance loses Redis, and at once when started without it', async () => {
    // given
    const subscriber = instance();
    await untilUp(subscriber);
    const iterator = subscriber.subscribe('executions');
    const ended = drain(iterator);
    await sleep(100);
    // when
    await redis.kill();
    // then
    const { error } = await ended;
    assert.equal(error?.reason, 'redis-lost');
    const refused = await drain(subscriber.subscribe('executions'));
    assert.equal(refused.error?.reason, 'redis-unavailable');
    assert.equal(refused.error?.code, 'LIVE_STREAM_INTERRUPTED');
    await redis.restart();
    await untilUp(subscriber);
  });
});

describe('a subscriber connection closing with a SUBSCRIBE unanswered (a Redis of its own)', () => {
  it('leaves no unhandled rejection, though ioredis drops the promise of the SUBSCRIBEs it sends again after a reconnect', async () => {
    // given: a subscriber connection as the pub/sub makes it, and a Redis that stops answering
    const own = await startOwnRedis();
    const subscriber = new Redis(own.url, { maxRetriesPerRequest: null });
    subscriber.on('error', () => undefined);
    await subscriber.ping();
    handleDroppedCommands(subscriber);
    const unhandled: unknown[] = [];
    const record = (reason: unknown) => void unhandled.push(reason);
    process.on('unhandledRejection', record);
    try {
      own.pause();
      // when: one SUBSCRIBE's promise is kept by its caller, another's dropped (as ioredis does),
      // and the connection closes before Redis answers either
      const kept = subscriber.subscribe('kept');
      void subscriber.subscribe('dropped');
      subscriber.disconnect();
      // then: the caller still sees its failure, and nothing fails unhandled
      await assert.rejects(kept, /Connection is closed/);
      await sleep(50);
      assert.deepEqual(unhandled, []);
    } finally {
      process.off('unhandledRejection', record);
      await own.stop();
    }
  });
});
