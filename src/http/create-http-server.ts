import { randomUUID } from 'node:crypto';
import Fastify, { type FastifyInstance } from 'fastify';
import fastifyApollo, { fastifyApolloDrainPlugin } from '@as-integrations/fastify';
import { GraphQLError, type GraphQLSchema } from 'graphql';
import type { AppConfig } from '../config/app-config.js';
import type { Services } from '../app/services.js';
import type { Database } from '../infrastructure/database/database.js';
import { AppError } from '../errors/index.js';
import { createApolloServer } from '../graphql/apollo.js';
import type { GraphQLContext } from '../graphql/context.js';
import { createLoaders } from '../graphql/loaders.js';
import { registerAddonRoutes } from '../addons/addon-register.route.js';
import { registerExecutionRoutes } from '../executions/execution.route.js';
import type { Metrics } from '../infrastructure/metrics/metrics.js';
import { createRestErrorHandler } from './error-reply.js';
import { createRequestActorResolver } from './request-actor.js';
import type { Actor } from '../auth/actor.js';

const REQUEST_ID = /^[A-Za-z0-9._-]{1,100}$/;

export interface HttpServerOptions {
  config: AppConfig;
  schema: GraphQLSchema;
  services: Services;
  database: Database;
  metrics: Metrics;
  /** Readiness probe; resolves to the failing dependency or null when ready. */
  readiness: () => Promise<string | null>;
}

/**
 * One Fastify instance carrying GraphQL (`/graphql`), the REST routes and health endpoints on the
 * same port. WebSocket subscriptions attach to its underlying server.
 */
export async function createHttpServer(options: HttpServerOptions): Promise<FastifyInstance> {
  const { config, services, database } = options;
  const app = Fastify({
    bodyLimit: config.bodyLimitBytes,
    logger: {
      level: config.logLevel,
      // Keys are bearer tokens; they must never reach a log line.
      redact: {
        paths: ['req.headers.authorization', 'req.headers.cookie', '*.apiKey', '*.key'],
        censor: '[redacted]',
      },
    },
    disableRequestLogging: config.nodeEnv !== 'development',
    genReqId: (req) => {
      const given = req.headers['x-request-id'];
      return typeof given === 'string' && REQUEST_ID.test(given) ? given : randomUUID();
    },
  });
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
  });
  app.setErrorHandler(createRestErrorHandler(config.isDevelopment));
  app.setNotFoundHandler((request, reply) =>
    reply
      .status(404)
      .send({ error: { code: 'NOT_FOUND', message: `No route ${request.method} ${request.url}` } }),
  );

  const actorOf = createRequestActorResolver(services.apiKeys);
  const apollo = createApolloServer({
    schema: options.schema,
    development: config.isDevelopment,
    plugins: [fastifyApolloDrainPlugin(app)],
    onUnexpectedError: (error) => app.log.error({ err: error }, 'unexpected GraphQL error'),
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
        throw error;
      }
      return { actor, requestId: request.id, services, loaders: createLoaders(database.prisma) };
    },
  });

  registerAddonRoutes(app, services, actorOf);
  registerExecutionRoutes(app, services, actorOf);

  app.get('/metrics', async (_request, reply) => {
    reply.header('content-type', options.metrics.registry.contentType);
    return options.metrics.registry.metrics();
  });

  app.get('/livez', async () => ({ status: 'ok' }));
  app.get('/readyz', async (_request, reply) => {
    const failing = await options.readiness();
    if (failing) return reply.status(503).send({ status: 'unavailable', reason: failing });
    return { status: 'ready' };
  });
  return app;
}
