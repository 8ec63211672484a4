import path from 'node:path';
import { performance } from 'node:perf_hooks';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { Redis } from 'ioredis';
import { pino } from 'pino';
import type { AppConfig } from '../config/app-config.js';
import { createDatabase, type Database } from '../infrastructure/database/database.js';
import { startEmbeddedPostgres } from '../infrastructure/database/embedded-postgres.js';
import { applyPendingMigrations, migrationStatus } from '../infrastructure/database/migration-engine.js';
import { createRedis } from '../infrastructure/redis/redis.js';
import { createSchema } from '../graphql/schema.js';
import { createHttpServer } from '../http/create-http-server.js';
import { createPubSub, type PubSub } from '../infrastructure/pub-sub/pub-sub.js';
import {
  addCounterFromTotal,
  addGauge,
  addLabelledGauge,
  createMetrics,
  type Metrics,
} from '../infrastructure/metrics/metrics.js';
import { forgetOldExecutions } from '../executions/execution-retention.js';
import { withTimeout } from '../shared/with-timeout.js';
import { createServices, type AppTopics, type Runtime, type Services } from './services.js';
import { ensureLocalAdminKey } from '../auth/local-admin-key.js';
import { DatabaseOutage } from '../http/database-outage.js';

/** A running (or ready to run) server process and what it owns. */
export interface App {
  readonly config: AppConfig;
  readonly http: FastifyInstance;
  readonly database: Database;
  readonly services: Services;
  readonly redis: Redis | null;
  readonly pubSub: PubSub<AppTopics>;
  readonly metrics: Metrics;
  readonly runtime: Runtime;
  /**
   * Milliseconds each step of the start took, in order (`listen` once it is listening): logged
   * with the ready line, measured by bench/startup.ts.
   */
  readonly startup: Record<string, number>;
  /** Starts listening; resolves to the base URL (e.g. http://127.0.0.1:4000). */
  listen(): Promise<string>;
  /**
   * The first step of a graceful stop: `/readyz` answers 503 at once and every response carries
   * `Connection: close`, while requests are still served, for `ms`; resolves when that is over.
   */
  drain(ms: number): Promise<void>;
  /** Stops accepting, finishes in-flight requests, then releases every connection. */
  close(): Promise<void>;
}

/**
 * Builds the whole server from a config: database (embedded when no DATABASE_URL), migrations,
 * Redis, services and the HTTP server. Nothing here is global, so tests run several in one process.
 */
export async function createApp(
  config: AppConfig,
  options: {
    /** Where logs go (default stdout); tests capture them to check what is logged. */
    logStream?: NodeJS.WritableStream;
  } = {},
): Promise<App> {
  const cleanups: (() => Promise<void>)[] = [];
  const startup: Record<string, number> = {};
  let stepStarted = performance.now();
  /** Ends the current start step as `name`. */
  const step = (name: string) => {
    const now = performance.now();
    startup[name] = Math.round((now - stepStarted) * 10) / 10;
    stepStarted = now;
  };
  try {
    let connectionString: string | null = config.databaseUrl;
    let poolMax = config.databasePoolMax;
    if (!connectionString) {
      const embedded = await startEmbeddedPostgres({ dataDir: path.join(config.dataDir, 'pglite') });
      step('embeddedPostgres');
      cleanups.unshift(() => embedded.stop());
      connectionString = embedded.connectionString;
      // PGlite is one session underneath: transactions must not interleave.
      poolMax = 1;
    }
    const dbUrl: string = connectionString;

    const database = createDatabase({
      connectionString: dbUrl,
      max: poolMax,
      scans: {
        perCaller: config.databaseScans.perCaller,
        total: Math.min(config.databaseScans.total, poolMax),
      },
      statementTimeoutMs: config.databaseStatementTimeoutMs,
    });
    cleanups.unshift(() => database.close());
    const redis = config.redisUrl ? createRedis(config.redisUrl, 'main') : null;
    if (redis) cleanups.unshift(async () => void redis.disconnect());

    let http: FastifyInstance | null = null;
    const pubSub = createPubSub<AppTopics>({
      redisUrl: config.redisUrl,
      prefix: `${config.redisKeyPrefix}pubsub:`,
      // Execution records are for dashboards: a 25 ms delay is invisible there, and under load it
      // turns one PUBLISH per addon call into a few per second.
      linger: { executions: 25 },
      onListenerError: (error) => http?.log.error({ err: error }, 'a pub/sub listener failed'),
    });
    cleanups.unshift(() => pubSub.close());
    const metrics = createMetrics();
    // One log line when PostgreSQL becomes unreachable and one when it is back, whoever notices.
    const outage = new DatabaseOutage(
      () => database.pool.query('SELECT 1'),
      () => http?.log,
    );
    cleanups.unshift(async () => outage.close());
    const { services, runtime } = createServices({
      config,
      database,
      pubSub,
      metrics,
      redis,
      onRecorderError: (error) =>
        outage.report(error) || http?.log.error({ err: error }, 'could not store execution records'),
      onEventsError: (error, message) => outage.report(error) || http?.log.error({ err: error }, message),
      // Its own logger: workers start (and may die) before the HTTP server and its logger exist.
      sandboxLogger: pino(
        { level: config.logLevel, base: { component: 'sandbox' } },
        options.logStream ?? pino.destination(1),
      ),
      onQuarantineChange: (change) =>
        http?.log[change.to === 'OPEN' ? 'warn' : 'info'](
          { quarantine: change },
          `addon ${change.addonName} ${change.version} on site ${change.siteId}: circuit breaker ${change.from} -> ${change.to}`,
        ),
    });
    cleanups.unshift(async () => {
      services.widgets.close();
      services.addons.close();
      services.dashboardSeries.close();
      runtime.lookup.close();
      await runtime.pool.close();
      await runtime.recorder.flush();
    });
    step('services');
    // The sandbox workers start (fork, load isolated-vm) while the migrations are checked and the
    // schema and HTTP server are built: nothing before listen needs them.
    const workersStarted = runtime.pool.start();
    workersStarted.catch(() => undefined);
    if (config.migrateOnStart) await applyPendingMigrations(dbUrl);
    step('migrations');
    services.widgets.start();
    // After migrations: it reads the breakers' table.
    await runtime.quarantine.start();
    cleanups.unshift(async () => runtime.quarantine.close());
    // Stopped before the pool closes (cleanups run last-registered first): unfinished claims are
    // handed back instead of failing against a closed pool.
    runtime.deliveryWorker?.start();
    cleanups.unshift(async () => {
      await runtime.deliveryWorker?.stop();
      runtime.subscribers.close();
      runtime.eventTail.close();
    });
    addGauge(
      metrics,
      'sandbox_workers',
      'Sandbox worker processes ready.',
      () => runtime.pool.stats().workersReady,
    );
    addGauge(
      metrics,
      'sandbox_isolates',
      'Live addon isolates across the workers.',
      () => runtime.pool.stats().isolates,
    );
    addGauge(
      metrics,
      'sandbox_isolate_memory_bytes',
      'Measured memory (heap and external) of the live addon isolates, last sample of each.',
      () => runtime.pool.stats().isolateMemoryBytes,
    );
    addGauge(
      metrics,
      'sandbox_isolate_memory_per_isolate_bytes',
      'Measured memory per live addon isolate (the mean).',
      () => runtime.pool.stats().memoryPerIsolateBytes,
    );
    addGauge(
      metrics,
      'sandbox_memory_bytes',
      'Resident memory of the sandbox workers.',
      () => runtime.pool.stats().rssBytes,
    );
    addGauge(
      metrics,
      'database_scans_running',
      'Reads of tenant history (lists with filters, dashboard figures) running now on this instance.',
      () => database.scans.stats().running,
    );
    addGauge(
      metrics,
      'database_scans_waiting',
      'Reads of tenant history waiting for a place (DATABASE_SCANS, DATABASE_SCANS_PER_CALLER).',
      () => database.scans.stats().waiting,
    );
    addCounterFromTotal(
      metrics,
      'database_scans_refused_total',
      'Reads of tenant history refused (RATE_LIMITED) because their caller had too many waiting.',
      () => database.scans.stats().refused,
    );
    addGauge(
      metrics,
      'sandbox_calls_in_flight',
      'Addon calls running now.',
      () => runtime.pool.stats().inFlight,
    );
    addCounterFromTotal(
      metrics,
      'sandbox_worker_crashes_total',
      'Sandbox worker processes that died (and were replaced).',
      () => runtime.pool.stats().crashes,
    );
    addLabelledGauge(
      metrics,
      'event_deliveries_backlog',
      'Event deliveries not succeeded yet, cluster-wide, by status (PENDING, RUNNING, DEAD).',
      'status',
      () => withTimeout(services.deliveries.backlog(), 2_000, 'the delivery backlog count'),
    );
    // A laptop `npm start` has no ADMIN_API_KEY: a development server keeps an admin key in
    // <DATA_DIR>/admin-key (mode 0600, never logged) for the CLI and `npm run seed`. Stored while
    // the schema and HTTP server are built (Prisma's first query loads its query compiler).
    const adminKeyStored = (async () => {
      const bootstrapKey =
        config.adminApiKey ?? (config.isDevelopment ? await ensureLocalAdminKey(config.dataDir) : null);
      if (bootstrapKey) await services.apiKeys.ensureBootstrapAdmin(bootstrapKey);
    })();
    adminKeyStored.catch(() => undefined);
    // Housekeeping every instance runs (each delete is idempotent); a failure waits for the next
    // round, and one cut short by a stop is not reported.
    let housekeepingStopped = false;
    const every = (ms: number, what: string, task: () => Promise<unknown>) => {
      const timer = setInterval(
        () =>
          void task().catch((error: unknown) => {
            if (!housekeepingStopped && !outage.report(error))
              http?.log.warn({ err: error }, `could not ${what}`);
          }),
        ms,
      );
      timer.unref();
      return timer;
    };
    const housekeeping = [
      // Idempotency keys are kept at least eventIdempotencyHours, and at most ten minutes longer.
      every(10 * 60_000, 'forget idempotency keys', () =>
        services.events.forgetIdempotencyKeys(config.eventIdempotencyHours),
      ),
      every(60 * 60_000, 'delete old events', () =>
        services.events.forgetOldEvents(config.eventRetentionDays),
      ),
      every(60 * 60_000, 'delete old execution records', () =>
        forgetOldExecutions(database.prisma, config.executionRetentionDays),
      ),
    ];
    cleanups.unshift(async () => {
      housekeepingStopped = true;
      for (const timer of housekeeping) clearInterval(timer);
    });

    let draining = false;
    const readiness = async (): Promise<string | null> => {
      if (draining) return 'draining';
      try {
        await withTimeout(database.pool.query('SELECT 1'), 2000, 'postgres');
      } catch {
        return 'postgres';
      }
      if (redis) {
        try {
          await withTimeout(redis.ping(), 1000, 'redis');
        } catch {
          return 'redis';
        }
        // Live subscriptions are refused until the pub/sub has its connections and subscriptions.
        if (!pubSub.connection.up) return 'redis';
      }
      const status = await migrationStatus(database.pool).catch(() => null);
      if (!status || status.pending.length > 0) return 'migrations';
      return null;
    };

    const schema = await createSchema({ pubSub });
    step('schema');
    http = await createHttpServer({
      config,
      schema,
      services,
      database,
      metrics,
      redis,
      readiness,
      draining: () => draining,
      logStream: options.logStream,
      outage,
    });
    cleanups.unshift(async () => {
      // close() waits for every connection to end; a keep-alive connection that finishes its
      // last request after close() began stays open until its idle timeout unless closed here.
      const sweeper = setInterval(() => http!.server.closeIdleConnections(), 50);
      try {
        await http!.close();
      } finally {
        clearInterval(sweeper);
      }
    });
    step('httpServer');
    await adminKeyStored;
    step('adminKey');
    await workersStarted;
    step('sandboxWorkers');
    const server = http;

    let closed = false;
    return {
      config,
      http: server,
      database,
      services,
      redis,
      pubSub,
      metrics,
      runtime,
      startup,
      async listen() {
        await server.listen({ host: config.host, port: config.port });
        step('listen');
        const address = server.server.address() as AddressInfo;
        const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
        return `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${address.port}`;
      },
      async drain(ms) {
        draining = true;
        if (ms > 0) await new Promise((resolve) => setTimeout(resolve, ms));
      },
      async close() {
        if (closed) return;
        closed = true;
        // Readiness fails first, so a load balancer stops routing here while requests finish.
        draining = true;
        for (const cleanup of cleanups) await cleanup();
      },
    };
  } catch (error) {
    for (const cleanup of cleanups) await cleanup().catch(() => undefined);
    throw error;
  }
}
