import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import type { AppConfig } from '../config/app-config.js';
import { createDatabase, type Database } from '../infrastructure/database/database.js';
import { startEmbeddedPostgres } from '../infrastructure/database/embedded-postgres.js';
import { applyPendingMigrations, migrationStatus } from '../infrastructure/database/migration-engine.js';
import { createRedis } from '../infrastructure/redis/redis.js';
import { createSchema } from '../graphql/schema.js';
import { createHttpServer } from '../http/create-http-server.js';
import { createLocalBus, createRedisBus, type ClusterBus } from '../infrastructure/bus/cluster-bus.js';
import { createMetrics, type Metrics } from '../infrastructure/metrics/metrics.js';
import { ExecutionRepository } from '../executions/execution.repository.js';
import { createServices, type Runtime, type Services } from './services.js';

/** A running (or ready to run) server process and what it owns. */
export interface App {
  readonly config: AppConfig;
  readonly http: FastifyInstance;
  readonly database: Database;
  readonly services: Services;
  readonly redis: Redis | null;
  readonly bus: ClusterBus;
  readonly metrics: Metrics;
  readonly runtime: Runtime;
  /** Starts listening; resolves to the base URL (e.g. http://127.0.0.1:4000). */
  listen(): Promise<string>;
  /** Stops accepting, finishes in-flight requests, then releases every connection. */
  close(): Promise<void>;
}

/**
 * Builds the whole server from a config: database (embedded when no DATABASE_URL), migrations,
 * Redis, services and the HTTP server. Nothing here is global, so tests run several in one process.
 */
export async function createApp(config: AppConfig): Promise<App> {
  const cleanups: (() => Promise<void>)[] = [];
  try {
    let connectionString: string | null = config.databaseUrl;
    let poolMax = config.databasePoolMax;
    if (!connectionString) {
      const embedded = await startEmbeddedPostgres({ dataDir: path.join(config.dataDir, 'pglite') });
      cleanups.unshift(() => embedded.stop());
      connectionString = embedded.connectionString;
      // PGlite is one session underneath: transactions must not interleave.
      poolMax = 1;
    }
    const dbUrl: string = connectionString;
    if (config.migrateOnStart) await applyPendingMigrations(dbUrl);

    const database = createDatabase({ connectionString: dbUrl, max: poolMax });
    cleanups.unshift(() => database.close());
    const redis = config.redisUrl ? createRedis(config.redisUrl, 'main') : null;
    if (redis) cleanups.unshift(async () => void redis.disconnect());

    const bus = config.redisUrl ? createRedisBus(config.redisUrl) : createLocalBus();
    cleanups.unshift(() => bus.close());
    const metrics = createMetrics();
    let http: FastifyInstance | null = null;
    const { services, runtime } = createServices({
      config,
      database,
      bus,
      metrics,
      onRecorderError: (error) => http?.log.error({ err: error }, 'could not store execution records'),
    });
    cleanups.unshift(async () => {
      runtime.lookup.close();
      await runtime.pool.close();
      await runtime.recorder.flush();
    });
    await runtime.pool.start();
    if (config.adminApiKey) await services.apiKeys.ensureBootstrapAdmin(config.adminApiKey);
    const retention = setInterval(() => {
      const cutoff = new Date(Date.now() - config.executionRetentionDays * 86_400_000);
      new ExecutionRepository(database.prisma).deleteOlderThan(cutoff).catch(() => undefined);
    }, 60 * 60_000);
    retention.unref();
    cleanups.unshift(async () => clearInterval(retention));

    const readiness = async (): Promise<string | null> => {
      try {
        await database.pool.query('SELECT 1');
      } catch {
        return 'postgres';
      }
      if (redis) {
        try {
          await redis.ping();
        } catch {
          return 'redis';
        }
      }
      const status = await migrationStatus(database.pool).catch(() => null);
      if (!status || status.pending.length > 0) return 'migrations';
      return null;
    };

    const schema = await createSchema();
    http = await createHttpServer({ config, schema, services, database, metrics, readiness });
    cleanups.unshift(() => http!.close());
    const server = http;

    let closed = false;
    return {
      config,
      http: server,
      database,
      services,
      redis,
      bus,
      metrics,
      runtime,
      async listen() {
        await server.listen({ host: config.host, port: config.port });
        const address = server.server.address() as AddressInfo;
        const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
        return `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${address.port}`;
      },
      async close() {
        if (closed) return;
        closed = true;
        for (const cleanup of cleanups) await cleanup();
      },
    };
  } catch (error) {
    for (const cleanup of cleanups) await cleanup().catch(() => undefined);
    throw error;
  }
}
