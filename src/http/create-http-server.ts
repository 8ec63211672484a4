import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import Fastify, { LogController, type FastifyInstance } from 'fastify';
import fastifyApollo, { fastifyApolloDrainPlugin } from '@as-integrations/fastify';
import { GraphQLError, type GraphQLSchema } from 'graphql';
import type { AppConfig } from '../config/app-config.js';
import type { Services } from '../app/services.js';
import type { Database } from '../infrastructure/database/database.js';
import { HeaderMap } from '@apollo/server';
import { AppError, ErrorCode, ServiceUnavailableError } from '../errors/index.js';
import { DatabaseOutage } from './database-outage.js';
import { registerInputGuard } from './input-guard.hook.js';
import { createApolloServer } from '../graphql/apollo.js';
import type { GraphQLContext } from '../graphql/context.js';
import { createLoaders } from '../graphql/loaders.js';
import { registerAddonRoutes } from '../addons/addon-register.route.js';
import { registerExecutionRoutes } from '../executions/execution.route.js';
import { registerEventRoutes } from '../events/event.route.js';
import { registerWidgetRoutes } from '../widgets/widget-render.route.js';
import { RENDER_RESPONSE_FIELDS } from '../widgets/widget.resolver.js';
import { registerDashboardRoutes } from '../dashboard/dashboard.route.js';
import type { Metrics } from '../infrastructure/metrics/metrics.js';
import { createRestErrorHandler } from './error-reply.js';
import { createRequestActorResolver } from './request-actor.js';
import cors from '@fastify/cors';
import type { Redis } from 'ioredis';
import { createOperationPipeline } from '../graphql/operation-pipeline.js';
import { useOperationMetrics } from '../graphql/plugins/operation-metrics.js';
import { RateLimiter } from './rate-limiter.js';
import { shareInFlight } from '../shared/share-in-flight.js';
import { createKeyLookupAdmission, hitRateLimit, registerRateLimit } from './rate-limit.hook.js';
import { actorScope, type Actor } from '../auth/actor.js';
import { useResponseCache } from '../graphql/plugins/response-cache.js';
import { attachSubscriptionServer } from '../graphql/subscription-server.js';
import { compileProxyTrust, createClientAddress, createLimitAddress } from './client-address.js';

const REQUEST_ID = /^[A-Za-z0-9._-]{1,100}$/;

export interface HttpServerOptions {
  config: AppConfig;
  schema: GraphQLSchema;
  services: Services;
  database: Database;
  metrics: Metrics;
  /** Shared rate-limit counters; null counts per instance. */
  redis: Redis | null;
  logStream?: NodeJS.WritableStream;
  /** Readiness probe; resolves to the failing dependency or null when ready. */
  readiness: () => Promise<string | null>;
  /**
   * True while the server drains before it stops: every response then carries `Connection: close`,
   * so a client opens its next request elsewhere instead of reusing a connection about to close.
   */
  draining?: () => boolean;
  /** Logs database outages once per change; made here when not given. */
  outage?: DatabaseOutage;
}

/**
 * One Fastify instance carrying GraphQL (`/graphql`), the REST routes and health endpoints on the
 * same port. WebSocket subscriptions attach to its underlying server.
 */
export async function createHttpServer(options: HttpServerOptions): Promise<FastifyInstance> {
  const { config, services, database } = options;
  const proxyTrust = compileProxyTrust(config.trustProxy);
  const app = Fastify({
    bodyLimit: config.bodyLimitBytes,
    // Behind proxies, the caller's address (rate limits, look-up budgets) comes from X-Forwarded-For.
    trustProxy: proxyTrust,
    logger: {
      level: config.logLevel,
      ...(options.logStream ? { stream: options.logStream } : {}),
      // Keys are bearer tokens; they must never reach a log line.
      redact: {
        paths: ['req.headers.authorization', 'req.headers.cookie', '*.apiKey', '*.key'],
        censor: '[redacted]',
      },
    },
    // Per-request log lines only in development: at thousands of requests a second they would
    // cost more than the requests. Errors are always logged, with the request id.
    logController: new LogController({ disableRequestLogging: config.nodeEnv !== 'development' }),
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
  });
  const draining = options.draining ?? (() => false);
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
    if (draining()) reply.header('connection', 'close');
  });
  const outage =
    options.outage ??
    new DatabaseOutage(
      () => database.pool.query('SELECT 1'),
      () => app.log,
    );
  app.addHook('preClose', async () => outage.close());
  const reportUnavailable = (error: unknown) => void outage.report(error);
  app.setErrorHandler(createRestErrorHandler(config.isDevelopment, reportUnavailable));
  app.setNotFoundHandler((request, reply) =>
    reply
      .status(404)
      .send({ error: { code: 'NOT_FOUND', message: `No route ${request.method} ${request.url}` } }),
  );

  if (config.corsOrigins.length > 0) {
    await app.register(cors, {
      origin: config.corsOrigins.includes('*') ? true : config.corsOrigins,
      allowedHeaders: ['content-type', 'authorization', 'x-request-id', 'apollo-require-preflight'],
      exposedHeaders: [
        'x-request-id',
        'retry-after',
        'ratelimit-limit',
        'ratelimit-remaining',
        'ratelimit-reset',
      ],
      maxAge: 600,
    });
  }
  const limiter = new RateLimiter(
    options.redis,
    config.rateLimit.windowSeconds * 1000,
    config.redisKeyPrefix,
  );
  const limitAddress = createLimitAddress(config.rateLimit.ipv6Subnet);
  const clientAddress = createClientAddress(proxyTrust);
  const rateLimitDeps = { config, limiter, metrics: options.metrics, limitAddress };
  // Unknown keys are never cached: each is a database read, counted per address before it is made.
  const admitKeyLookup = createKeyLookupAdmission(rateLimitDeps);
  // Over HTTP the request's address is reduced here to what limits count (an IPv6 network); the
  // WebSocket server hands over addresses already reduced.
  const actorOf = createRequestActorResolver(
    services.apiKeys,
    admitKeyLookup && ((ip) => admitKeyLookup(limitAddress(ip))),
  );
  registerRateLimit(app, { ...rateLimitDeps, actorOf });
  registerInputGuard(app);

  // One pipeline for both transports: the same limits, rules, checks and error codes.
  const pipeline = createOperationPipeline(
    options.schema,
    { ...config.graphql, maxDirectives: 50 },
    config.isDevelopment,
  );
  const apollo = createApolloServer({
    schema: options.schema,
    development: config.isDevelopment,
    validationRules: pipeline.validationRules,
    parseOptions: pipeline.parseOptions,
    plugins: [
      fastifyApolloDrainPlugin(app),
      ...pipeline.apolloPlugins,
      useOperationMetrics({
        operations: options.metrics.graphqlOperations,
        duration: options.metrics.graphqlDuration,
      }),
      useResponseCache(options.schema, {
        fields: RENDER_RESPONSE_FIELDS,
        scope: (context) => actorScope(context.actor),
        counter: options.metrics.graphqlResponseCache,
      }),
    ],
    onUnexpectedError: (error) => app.log.error({ err: error }, 'unexpected GraphQL error'),
    onUnavailable: reportUnavailable,
  });
  await apollo.start();
  await app.register(fastifyApollo(apollo), {
    path: '/graphql',
    context: async (request): Promise<GraphQLContext> => {
      let actor: Actor;
      try {
        actor = await actorOf(request);
      } catch (error) {
        if (error instanceof AppError) {
          throw new GraphQLError(error.message, { extensions: { code: error.code, http: { status: 401 } } });
        }
        if (outage.report(error)) {
          const unavailable = new ServiceUnavailableError();
          throw new GraphQLError(unavailable.message, {
            extensions: {
              ...unavailable.details,
              code: unavailable.code,
              http: {
                status: 503,
                headers: new HeaderMap([['retry-after', String(unavailable.retryAfterSeconds)]]),
              },
            },
          });
        }
        throw error;
      }
      return { actor, requestId: request.id, services, loaders: createLoaders(database.prisma) };
    },
  });

  registerAddonRoutes(app, services, actorOf);
  registerExecutionRoutes(app, services, actorOf);
  registerEventRoutes(app, services, actorOf);
  // GraphQL subscriptions (graphql-ws) on the same port and path, through the HTTP upgrade.
  attachSubscriptionServer(app, {
    schema: options.schema,
    services,
    database,
    development: config.isDevelopment,
    pipeline,
    limits: config.live,
    admitKeyLookup,
    clientAddress: (request) => limitAddress(clientAddress(request)),
    // Each `subscribe` counts as a request against the caller's rate limit.
    rateLimit: async (actor, caller) => {
      const decision = await hitRateLimit(rateLimitDeps, actor, caller);
      return decision ?? { allowed: true, limit: 0, retryAfterSeconds: 0 };
    },
    onLimited: (limit) => options.metrics.liveLimited.inc({ limit }),
    onUnavailable: reportUnavailable,
  });
  registerWidgetRoutes(app, services, actorOf);
  registerDashboardRoutes(app);
  // Someone opening the server's address in a browser lands on the operations page.
  app.get('/', (_request, reply) => reply.redirect('/dashboard', 302));

  // Scrapes and probes come without a key and are not rate limited (a limited probe would take an
  // instance out of its load balancer): concurrent ones share one render or check, so a flood of
  // them keeps at most one readiness check on the database in flight.
  const renderMetrics = shareInFlight(() => options.metrics.registry.metrics());
  const checkReadiness = shareInFlight(options.readiness);
  const scraperAllowed = bearerCheck(config.metricsToken);
  app.get('/metrics', async (request, reply) => {
    if (!scraperAllowed(request.headers.authorization)) {
      return reply
        .status(401)
        .header('www-authenticate', 'Bearer')
        .send({
          error: {
            code: ErrorCode.Unauthenticated,
            message: 'GET /metrics needs the METRICS_TOKEN as a Bearer token (Authorization header).',
          },
        });
    }
    reply.header('content-type', options.metrics.registry.contentType);
    return renderMetrics();
  });

  app.get('/livez', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const failing = draining() ? 'draining' : await checkReadiness();
    if (failing) return reply.status(503).send({ status: 'unavailable', reason: failing });
    return { status: 'ready' };
  });
  return app;
}

/**
 * Whether an Authorization header bears `token` (always, when there is none). Digests are compared,
 * in constant time, so neither the token's length nor its prefix leaks through timing.
 */
function bearerCheck(token: string | null): (header: string | undefined) => boolean {
  if (token === null) return () => true;
  const expected = createHash('sha256').update(`Bearer ${token}`).digest();
  return (header) =>
    header !== undefined && timingSafeEqual(createHash('sha256').update(header).digest(), expected);
}
