import { EventEmitter } from 'node:events';
import { Redis, type RedisOptions } from 'ioredis';
import { FixedBuffer, Repeater } from '@repeaterjs/repeater';
import { PubSub as LocalPubSubEngine, type PubSubEngine } from 'graphql-subscriptions';
import { RedisPubSub } from 'graphql-redis-subscriptions';
import { stringifyWithRawJson, type RawJson } from '../../shared/raw-json.js';
import { LiveStreamInterruptedError, type LiveStreamInterruption } from '../../errors/index.js';

/**
 * Topic name -> the payload its listeners receive (JSON: dates as strings, no shared objects).
 * Each domain declares its own topics; the app's pub/sub carries their union.
 */
export type TopicMap = object;

/** A topic of `T`. */
export type Topic<T extends TopicMap> = keyof T & string;

/** A listener registered with {@link PubSub.listen}. */
export interface Listening {
  /** Resolves once messages published from now on are received (Redis acknowledged the SUBSCRIBE). */
  ready: Promise<void>;
  stop(): void;
}

/** `lost`: messages published elsewhere may not arrive; `regained`: they arrive again. */
export type ConnectionChange = 'lost' | 'regained';

/** Whether this instance hears what the others publish (always, in-process). */
export interface PubSubConnection {
  /** False from a lost Redis connection until both are back and every subscription is renewed. */
  readonly up: boolean;
  /** Calls `listener` on each change (`regained` also when Redis is first reached); returns a stop function. */
  watch(listener: (change: ConnectionChange) => void): () => void;
}

/**
 * Messages to every server instance, this one included: cache invalidations, wake-ups, live feeds.
 * At most once: nothing that must not be lost travels only through here.
 */
export interface PubSub<T extends TopicMap> {
  /**
   * Publishes `payload` (or its JSON text, as a RawJson). Everything published on a topic in one
   * event-loop turn (or within the topic's linger) leaves as one message, unpacked in order.
   */
  publish<K extends Topic<T>>(topic: K, payload: T[K] | RawJson): Promise<void>;
  /** Calls `handler` for every payload of `topic` until stopped. */
  listen<K extends Topic<T>>(topic: K, handler: (payload: T[K]) => void): Listening;
  /**
   * The payloads of `topic` as an async iterator (listening from its first `next`), each turned
   * into an item by `select` (null skips it). It never misses a message silently: it ends with a
   * LiveStreamInterruptedError (after the items it holds) when this instance loses Redis, when any
   * instance failed to publish on the topic, or when its consumer falls more than `maxBuffered`
   * items behind; and at once when started while Redis is away.
   */
  subscribe<K extends Topic<T>, R = T[K]>(
    topic: K,
    select?: (payload: T[K]) => R | null,
    maxBuffered?: number,
  ): AsyncIterableIterator<R>;
  readonly connection: PubSubConnection;
  close(): Promise<void>;
}

export interface PubSubOptions<T extends TopicMap> {
  /** Redis pub/sub across instances; without it, this process only. */
  redisUrl?: string | null;
  /** Redis channel prefix. */
  prefix?: string;
  /** How long a topic's publishes may wait to share one message (default: this turn only). */
  linger?: { [K in Topic<T>]?: number };
  /** A listener that threw (the others still get the message). */
  onListenerError?: (error: unknown) => void;
}

/** The channel (under the prefix) on which instances announce topics they failed to publish on. */
const GAPS_CHANNEL = '__gaps';

/** One message of a topic: every payload published in one batch, in order. */
interface Batch {
  b: unknown[];
}

/** Where batches go: a graphql-subscriptions engine, and how a batch's JSON text is handed to it. */
interface Transport {
  engine: PubSubEngine;
  /** The engine's `subscribe`: the subscription id once messages arrive. */
  subscribe(channel: string, onMessage: (message: unknown) => void): Promise<number>;
  send(channel: string, json: string): Promise<void>;
  connection: PubSubConnection;
  close(): Promise<void>;
}

/** The one pub/sub: graphql-redis-subscriptions with Redis, graphql-subscriptions' in-process engine without. */
export function createPubSub<T extends TopicMap>(options: PubSubOptions<T> = {}): PubSub<T> {
  const transport = options.redisUrl ? redisTransport(options.redisUrl) : localTransport();
  return new BatchingPubSub<T>(transport, options);
}

class BatchingPubSub<T extends TopicMap> implements PubSub<T> {
  private readonly pending = new Map<string, { json: string[]; settle: Array<(error?: unknown) => void> }>();
  private readonly prefix: string;
  /** Topics this instance failed to publish on, not announced yet. */
  private readonly failedTopics = new Set<string>();
  /** Local consumers to interrupt when a gap on their topic is announced. */
  private readonly gapListeners = new Map<string, Set<() => void>>();
  private gapsListening: Listening | null = null;
  private readonly unwatch: () => void;

  constructor(
    private readonly transport: Transport,
    private readonly options: PubSubOptions<T>,
  ) {
    this.prefix = options.prefix ?? 'themepress:pubsub:';
    this.unwatch = transport.connection.watch((change) => {
      if (change === 'regained') this.announceGaps();
    });
  }

  get connection(): PubSubConnection {
    return this.transport.connection;
  }

  publish<K extends Topic<T>>(topic: K, payload: T[K] | RawJson): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      let batch = this.pending.get(topic);
      if (!batch) {
        batch = { json: [], settle: [] };
        this.pending.set(topic, batch);
        const linger = this.options.linger?.[topic];
        if (linger) setTimeout(() => this.flush(topic), linger).unref();
        else setImmediate(() => this.flush(topic));
      }
      // Serialised now: a RawJson goes in as its text, and later changes to the payload do not.
      batch.json.push(stringifyWithRawJson(payload) ?? 'null');
      batch.settle.push((error) => (error === undefined ? resolve() : reject(error as Error)));
    });
  }

  listen<K extends Topic<T>>(topic: K, handler: (payload: T[K]) => void): Listening {
    let id: number | null = null;
    let stopped = false;
    const unpack = (message: unknown) => {
      const payloads = (message as Batch | null)?.b;
      if (!Array.isArray(payloads)) return;
      for (const payload of payloads) {
        try {
          handler(payload as T[K]);
        } catch (error) {
          this.options.onListenerError?.(error);
        }
      }
    };
    const ready = this.transport.subscribe(this.prefix + topic, unpack).then(
      (subscriptionId) => {
        if (stopped) this.transport.engine.unsubscribe(subscriptionId);
        else id = subscriptionId;
      },
      // Only at shutdown (a SUBSCRIBE waits while Redis is away).
      () => undefined,
    );
    return {
      ready,
      stop: () => {
        stopped = true;
        if (id !== null) this.transport.engine.unsubscribe(id);
        id = null;
      },
    };
  }

  subscribe<K extends Topic<T>, R = T[K]>(
    topic: K,
    select: (payload: T[K]) => R | null = (payload) => payload as unknown as R,
    maxBuffered = 10_000,
  ): AsyncIterableIterator<R> {
    const buffer = new FixedBuffer(maxBuffered);
    return new Repeater<R>(async (push, stop) => {
      const interrupt = (reason: LiveStreamInterruption) => stop(new LiveStreamInterruptedError(reason));
      if (!this.connection.up) {
        interrupt('redis-unavailable');
        return;
      }
      const unwatch = this.connection.watch((change) => {
        if (change === 'lost') interrupt('redis-lost');
      });
      const unGap = this.onGap(topic, () => interrupt('publish-failed'));
      const listening = this.listen(topic, (payload) => {
        const item = select(payload);
        if (item === null) return;
        // Past the bound the consumer is ended: it catches up from the stored records.
        if (buffer.full) interrupt('fell-behind');
        else void push(item);
      });
      await stop;
      unwatch();
      unGap();
      listening.stop();
    }, buffer);
  }

  async close(): Promise<void> {
    for (const topic of [...this.pending.keys()]) this.flush(topic);
    this.unwatch();
    this.gapsListening?.stop();
    await this.transport.close();
  }

  private flush(topic: string): void {
    const batch = this.pending.get(topic);
    this.pending.delete(topic);
    if (!batch) return;
    this.transport.send(this.prefix + topic, `{"b":[${batch.json.join(',')}]}`).then(
      () => {
        batch.settle.forEach((settle) => settle());
        if (this.failedTopics.size > 0) this.announceGaps();
      },
      (error: unknown) => {
        // Consumers on every instance may have missed this batch: they hear of it once Redis
        // takes a message again.
        this.failedTopics.add(topic);
        batch.settle.forEach((settle) => settle(error ?? new Error('publish failed')));
      },
    );
  }

  /** Calls `interrupt` when any instance announces a failed publish on `topic`. */
  private onGap(topic: string, interrupt: () => void): () => void {
    this.gapsListening ??= this.listen(GAPS_CHANNEL as Topic<T>, (payload) => {
      const topics = (payload as { topics?: unknown } | null)?.topics;
      if (!Array.isArray(topics)) return;
      for (const gap of topics) {
        for (const listener of this.gapListeners.get(String(gap)) ?? []) listener();
      }
    });
    let listeners = this.gapListeners.get(topic);
    if (!listeners) this.gapListeners.set(topic, (listeners = new Set()));
    listeners.add(interrupt);
    return () => listeners.delete(interrupt);
  }

  /** Tells every instance (this one included) which topics lost a publish here. */
  private announceGaps(): void {
    if (this.failedTopics.size === 0) return;
    const topics = [...this.failedTopics];
    this.failedTopics.clear();
    this.transport.send(this.prefix + GAPS_CHANNEL, JSON.stringify({ b: [{ topics }] })).catch(() => {
      for (const topic of topics) this.failedTopics.add(topic);
    });
  }
}

/**
 * In-process: listeners get the batch parsed, so they see the shapes Redis would hand them; a
 * batch nobody listens to is not even parsed.
 */
function localTransport(): Transport {
  const emitter = new EventEmitter();
  emitter.setMaxListeners(0);
  const engine = new LocalPubSubEngine({ eventEmitter: emitter });
  return {
    engine,
    subscribe: (channel, onMessage) => engine.subscribe(channel, onMessage),
    send: async (channel, json) => {
      if (emitter.listenerCount(channel) > 0) await engine.publish(channel, JSON.parse(json));
    },
    connection: { up: true, watch: () => () => undefined },
    close: async () => undefined,
  };
}

/**
 * graphql-redis-subscriptions' RedisPubSub over two ioredis connections (a subscribed connection
 * can send nothing else), named per process so an operator can tell them apart. One Redis
 * subscription per topic per instance, shared by every local listener; ioredis subscribes again by
 * itself after a reconnect, and a SUBSCRIBE asked while Redis is away waits for it.
 */
function redisTransport(url: string): Transport {
  const connection = (role: string, options: RedisOptions) => {
    const redis = new Redis(url, {
      connectionName: `themepress:pubsub-${role}:${process.pid}`,
      retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
      ...options,
    });
    // Connection errors show in `connection` and in the callers' own failures.
    redis.on('error', () => undefined);
    return redis;
  };
  // Publishes of one turn (a burst of events, a batch of delivery outcomes) leave in one write.
  const publisher = connection('publisher', { maxRetriesPerRequest: 1, enableAutoPipelining: true });
  const subscriber = connection('subscriber', { maxRetriesPerRequest: null });
  handleDroppedCommands(subscriber);
  // Batches are built as JSON text and published as they are; RedisPubSub parses them on arrival.
  const engine = new RedisPubSub({ publisher, subscriber, serializer: (json: string) => json });
  return {
    engine,
    subscribe: (channel, onMessage) => {
      const subscribed = engine.subscribe(channel, onMessage);
      // A failed SUBSCRIBE (at shutdown, while it waits for Redis) also rejects a promise
      // RedisPubSub keeps for concurrent subscribers and never handles: handled here.
      (engine as unknown as PendingSubscriptions).subsPendingRefsMap
        ?.get(channel)
        ?.pending.catch(() => undefined);
      return subscribed;
    },
    send: (channel, json) => engine.publish(channel, json),
    connection: watchConnections(publisher, subscriber),
    close: async () => {
      publisher.disconnect();
      subscriber.disconnect();
    },
  };
}

/**
 * Marks the promises of a subscriber connection's (un)subscribe commands handled, and still hands
 * them to the caller. RedisPubSub drops those of its (P)UNSUBSCRIBEs, and ioredis those of the
 * SUBSCRIBEs it sends again after a reconnect: one left waiting when the connection closes (Redis
 * lost again at once, or shutdown) rejects "Connection is closed.", and an unhandled rejection
 * would end the process.
 */
export function handleDroppedCommands(subscriber: Redis): void {
  for (const name of ['subscribe', 'psubscribe', 'unsubscribe', 'punsubscribe'] as const) {
    const command = subscriber[name].bind(subscriber) as (...args: unknown[]) => Promise<unknown>;
    Object.assign(subscriber, {
      [name]: (...args: unknown[]) => {
        const sent = command(...args);
        sent.catch(() => undefined);
        return sent;
      },
    });
  }
}

/** The part of RedisPubSub (2.7) holding a first SUBSCRIBE per channel while it is in flight. */
interface PendingSubscriptions {
  subsPendingRefsMap?: Map<string, { pending: Promise<unknown> }>;
}

/**
 * Up while both connections are ready and the subscriber's subscriptions are renewed: ioredis
 * sends the SUBSCRIBEs after 'ready', so a PING sent after them answers once they are in place.
 */
function watchConnections(publisher: Redis, subscriber: Redis): PubSubConnection {
  const changes = new EventEmitter();
  changes.setMaxListeners(0);
  let publisherReady = publisher.status === 'ready';
  let subscribed = false;
  let up = false;
  const update = () => {
    const now = publisherReady && subscribed;
    if (now === up) return;
    up = now;
    changes.emit('change', now ? 'regained' : 'lost');
  };
  publisher.on('ready', () => {
    publisherReady = true;
    update();
  });
  publisher.on('close', () => {
    publisherReady = false;
    update();
  });
  const confirmSubscribed = () => {
    setImmediate(() => {
      subscriber.ping().then(
        () => {
          subscribed = subscriber.status === 'ready';
          update();
        },
        () => undefined,
      );
    });
  };
  subscriber.on('ready', confirmSubscribed);
  // Already connected before this watch began: its 'ready' has passed and will not come again.
  if (subscriber.status === 'ready') confirmSubscribed();
  subscriber.on('close', () => {
    subscribed = false;
    update();
  });
  return {
    get up() {
      return up;
    },
    watch(listener) {
      changes.on('change', listener);
      return () => changes.off('change', listener);
    },
  };
}
