import { EventEmitter } from 'node:events';
import type { Redis } from 'ioredis';
import { createRedis } from '../redis/redis.js';

export type BusHandler = (message: unknown) => void;

/**
 * Broadcasts small JSON messages to every server instance (this one included): cache
 * invalidations, live events. Redis pub/sub when REDIS_URL is set, an in-process emitter otherwise.
 * Delivery is at most once; nothing that must not be lost travels only through here.
 */
export interface ClusterBus {
  publish(channel: string, message: unknown): Promise<void>;
  /** Returns a function that unsubscribes. */
  subscribe(channel: string, handler: BusHandler): () => void;
  close(): Promise<void>;
}

/** The single-instance bus used without Redis. */
export function createLocalBus(): ClusterBus {
  const emitter = new EventEmitter();
  emitter.setMaxListeners(0);
  return {
    async publish(channel, message) {
      // Round-trip through JSON so local and Redis delivery hand handlers the same shapes.
      const copy: unknown = JSON.parse(JSON.stringify(message));
      queueMicrotask(() => emitter.emit(channel, copy));
    },
    subscribe(channel, handler) {
      emitter.on(channel, handler);
      return () => emitter.off(channel, handler);
    },
    async close() {
      emitter.removeAllListeners();
    },
  };
}

/** The bus over Redis pub/sub: one publisher connection and one subscriber connection. */
export function createRedisBus(url: string, prefix = 'themepress:'): ClusterBus {
  const publisher: Redis = createRedis(url, 'bus-publisher');
  const subscriber: Redis = createRedis(url, 'bus-subscriber');
  const local = new EventEmitter();
  local.setMaxListeners(0);
  subscriber.on('message', (channel: string, text: string) => {
    let message: unknown;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    local.emit(channel.slice(prefix.length), message);
  });
  return {
    async publish(channel, message) {
      await publisher.publish(prefix + channel, JSON.stringify(message));
    },
    subscribe(channel, handler) {
      if (local.listenerCount(channel) === 0)
        void subscriber.subscribe(prefix + channel).catch(() => undefined);
      local.on(channel, handler);
      return () => {
        local.off(channel, handler);
        if (local.listenerCount(channel) === 0)
          void subscriber.unsubscribe(prefix + channel).catch(() => undefined);
      };
    },
    async close() {
      local.removeAllListeners();
      publisher.disconnect();
      subscriber.disconnect();
    },
  };
}
