import { Redis } from 'ioredis';

/**
 * Opens a Redis connection that never throws on its own: commands fail fast while Redis is away
 * (so callers can degrade), and it reconnects in the background.
 */
export function createRedis(url: string, name: string): Redis {
  const redis = new Redis(url, {
    connectionName: `themepress:${name}`,
    maxRetriesPerRequest: 1,
    enableOfflineQueue: true,
    lazyConnect: false,
    retryStrategy: (attempt) => Math.min(attempt * 200, 2000),
  });
  // Connection errors are reported through readiness and the callers' own failures.
  redis.on('error', () => undefined);
  return redis;
}
