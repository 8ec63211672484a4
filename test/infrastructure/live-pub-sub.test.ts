import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setImmediate as nextTurn, setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { RawJson } from '../../src/shared/raw-json.js';
import { createRedisPubSub, LiveTopic, type LivePubSub } from '../../src/infrastructure/pub-sub/pub-sub.js';

const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

describe('live pub/sub over Redis (two instances)', () => {
  const opened: LivePubSub[] = [];
  // Run in `after` even when an assertion failed: an open Redis connection would keep the test alive.
  const cleanups: Array<() => void> = [];
  const instance = (prefix: string) => {
    const pubSub = createRedisPubSub(REDIS_URL, prefix);
    opened.push(pubSub);
    return pubSub;
  };
  /** Two instances sharing a fresh key prefix, the second listening to `topic` (ready). */
  const givenListeningPair = async (topic: LiveTopic) => {
    const prefix = `test:${randomUUID()}:`;
    const publisher = instance(prefix);
    const received: unknown[] = [];
    const listening = instance(prefix).listen(topic, (payload) => received.push(payload));
    cleanups.push(listening.stop);
    await listening.ready;
    return { prefix, publisher, received };
  };
  after(async () => {
    for (const cleanup of cleanups) cleanup();
    await Promise.all(opened.map((pubSub) => pubSub.close()));
  });

  it('hands every payload published in one turn to the other instance, in order', async () => {
    // given
    const { publisher, received } = await givenListeningPair(LiveTopic.Events);
    // when: one turn's publishes travel as one Redis message
    const published = [1, 2, 3, 4, 5].map((n) => publisher.publish(LiveTopic.Events, { n }));
    await Promise.all(published);
    // then
    for (let waited = 0; received.length < 5 && waited < 2000; waited += 10) await sleep(10);
    assert.deepEqual(received, [{ n: 1 }, { n: 2 }, { n: 3 }, { n: 4 }, { n: 5 }]);
  });

  it('sends a payload given as JSON text as that text, parsed on the other side like any other', async () => {
    // given
    const { publisher, received } = await givenListeningPair(LiveTopic.Events);
    // when
    await Promise.all([
      publisher.publish(LiveTopic.Events, new RawJson('{"raw":true,"at":"2026-01-02T03:04:05.006Z"}')),
      publisher.publish(LiveTopic.Events, { raw: false }),
    ]);
    // then
    for (let waited = 0; received.length < 2 && waited < 2000; waited += 10) await sleep(10);
    assert.deepEqual(received, [{ raw: true, at: '2026-01-02T03:04:05.006Z' }, { raw: false }]);
  });

  it('holds execution records back briefly, so a burst of them shares one Redis message', async () => {
    // given: a listening instance, and a plain Redis client counting the channel's messages
    const { prefix, publisher, received } = await givenListeningPair(LiveTopic.Executions);
    const raw = new Redis(REDIS_URL);
    cleanups.push(() => raw.disconnect());
    let messages = 0;
    raw.on('message', () => (messages += 1));
    await raw.subscribe(`${prefix}${LiveTopic.Executions}`);
    // when: published over three event-loop turns (without the linger, three messages)
    const first = publisher.publish(LiveTopic.Executions, { n: 1 });
    await nextTurn();
    const second = publisher.publish(LiveTopic.Executions, { n: 2 });
    await nextTurn();
    const third = publisher.publish(LiveTopic.Executions, { n: 3 });
    await Promise.all([first, second, third]);
    // then
    for (let waited = 0; received.length < 3 && waited < 2000; waited += 10) await sleep(10);
    assert.deepEqual(received, [{ n: 1 }, { n: 2 }, { n: 3 }]);
    assert.equal(messages, 1);
  });
});
