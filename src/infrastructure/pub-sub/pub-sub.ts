import { EventEmitter } from 'node:events';
import { Redis } from 'ioredis';
import { RedisPubSub } from 'graphql-redis-subscriptions';
import { createRedis } from '../redis/redis.js';
import { stringifyWithRawJson } from '../../shared/raw-json.js';
import { createPushIterator } from '../../subscriptions/push-iterator.js';

/** Topics of the live feeds (one Redis channel each). */
export const LiveTopic = {
  Events: 'events',
  Executions: 'executions',
  Deliveries: 'deliveries',
} as const;
export type LiveTopic = (typeof LiveTopic)[keyof typeof LiveTopic];

export type LiveHandler = (payload: unknown) => void;

// A RawJson payload (an execution record the recorder serialised for its batch) is published as
// that text, so it is not serialised twice. Listeners receive it parsed.
const toJson = (payload: unknown): string => stringifyWithRawJson(payload) ?? 'null';

/**
 * Live fan-out to GraphQL subscriptions on every instance: at most once, so only for things that are
 * already stored (events, delivery states, execution records). Also satisfies type-graphql's
 * `PubSub` (`publish` + `subscribe` returning an AsyncIterable).
 */
export interface LivePubSub {
  publish(topic: string, payload: unknown): Promise<void>;
  /**
   * Calls `handler` for every message of `topic` until the returned function is called. `ready`
   * resolves once messages published from now on are received (the Redis SUBSCRIBE is acknowledged).
   */
  listen(topic: string, handler: LiveHandler): { ready: Promise<void>; stop: () => void };
  subscribe(topic: string): AsyncIterable<unknown>;
  close(): Promise<void>;
}

function iterableOf(pubSub: Pick<LivePubSub, 'listen'>, topic: string): AsyncIterable<unknown> {
  const iterator = createPushIterator<unknown>({ onEnd: () => listening.stop() });
  const listening = pubSub.listen(topic, (payload) => iterator.push(payload));
  return iterator;
}

/** Single-instance pub/sub (no REDIS_URL). */
export function createLocalPubSub(): LivePubSub {
  const emitter = new EventEmitter();
  emitter.setMaxListeners(0);
  const pubSub: LivePubSub = {
    async publish(topic, payload) {
      if (emitter.listenerCount(topic) === 0) return;
      // Listeners get the same JSON shapes as through Redis (dates as strings, no shared objects).
      const copy: unknown = JSON.parse(toJson(payload));
      queueMicrotask(() => emitter.emit(topic, copy));
    },
    listen(topic, handler) {
      emitter.on(topic, handler);
      return { ready: Promise.resolve(), stop: () => void emitter.off(topic, handler) };
    },
    subscribe: (topic) => iterableOf(pubSub, topic),
    async close() {
      emitter.removeAllListeners();
    },
  };
  return pubSub;
}

/** How long a topic's publishes may wait to share one Redis message (the default: this turn only). */
export const LIVE_LINGER_MS: Partial<Record<LiveTopic, number>> = {
  // Execution records are for dashboards: a 25 ms delay is invisible there, and under load it
  // turns one PUBLISH per addon call into a few per second.
  [LiveTopic.Executions]: 25,
};

/** What one Redis message of a live topic carries: every payload published in one batch, in order. */
interface LiveBatch {
  b: unknown[];
}

/**
 * Pub/sub across instances: graphql-redis-subscriptions' RedisPubSub over two ioredis connections
 * (a subscribed connection can send nothing else). One Redis subscription per topic per instance,
 * shared by every local listener; ioredis re-subscribes by itself after a reconnect.
 *
 * Publishes are batched per topic: everything published in one event-loop turn (or within the
 * topic's {@link LIVE_LINGER_MS}) leaves as one message, unpacked in order on every instance.
 * Each Redis round trip costs the publisher and every subscribing instance far more CPU than the
 * payload itself, so at a thousand events a second this halves the work of a stream's hop.
 */
export function createRedisPubSub(url: string, prefix = 'themepress:live:'): LivePubSub {
  // Named per process, so an operator (or a test) can tell this process's connections apart.
  const publisher = new Redis(url, {
    connectionName: `themepress:live-publisher:${process.pid}`,
    maxRetriesPerRequest: 1,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
    // Publishes of one tick (a batch of delivery outcomes, a burst of events) leave in one write.
    enableAutoPipelining: true,
  });
  publisher.on('error', () => undefined);
  const subscriber = createRedis(url, `live-subscriber:${process.pid}`);
  const redis = new RedisPubSub({ publisher, subscriber });
  const pending = new Map<string, { payloads: unknown[]; settle: Array<(error?: unknown) => void> }>();
  const flush = (topic: string) => {
    const batch = pending.get(topic);
    pending.delete(topic);
    if (!batch) return;
    // The LiveBatch JSON, built here so RawJson payloads go in as they are (a Buffer is
    // published untouched by RedisPubSub).
    let json = '{"b":[';
    for (let i = 0; i < batch.payloads.length; i += 1)
      json += (i === 0 ? '' : ',') + toJson(batch.payloads[i]);
    redis.publish(prefix + topic, Buffer.from(`${json}]}`)).then(
      () => batch.settle.forEach((settle) => settle()),
      (error: unknown) => batch.settle.forEach((settle) => settle(error ?? new Error('publish failed'))),
    );
  };
  const pubSub: LivePubSub = {
    publish(topic, payload) {
      return new Promise<void>((resolve, reject) => {
        let batch = pending.get(topic);
        if (!batch) {
          batch = { payloads: [], settle: [] };
          pending.set(topic, batch);
          const linger = LIVE_LINGER_MS[topic as LiveTopic];
          if (linger) setTimeout(() => flush(topic), linger).unref();
          else setImmediate(() => flush(topic));
        }
        batch.payloads.push(payload);
        batch.settle.push((error) => (error === undefined ? resolve() : reject(error as Error)));
      });
    },
    listen(topic, handler) {
      let id: number | null = null;
      let stopped = false;
      const unpack = (message: unknown) => {
        const payloads = (message as LiveBatch | null)?.b;
        if (Array.isArray(payloads)) for (const payload of payloads) handler(payload);
      };
      const ready = redis.subscribe(prefix + topic, unpack).then(
        (subscriptionId) => {
          if (stopped) redis.unsubscribe(subscriptionId);
          else id = subscriptionId;
        },
        // Redis away: ioredis subscribes when it reconnects only for channels it knew; retry later.
        () => undefined,
      );
      return {
        ready,
        stop() {
          stopped = true;
          if (id !== null) redis.unsubscribe(id);
          id = null;
        },
      };
    },
    subscribe: (topic) => iterableOf(pubSub, topic),
    async close() {
      for (const topic of [...pending.keys()]) flush(topic);
      publisher.disconnect();
      subscriber.disconnect();
    },
  };
  return pubSub;
}
