import type { FastifyInstance } from 'fastify';
import { WebSocketServer } from 'ws';
import { useServer } from 'graphql-ws/use/ws';
import { GraphQLError, type DocumentNode, type GraphQLSchema } from 'graphql';
import { ErrorCode } from '../errors/index.js';
import type { Services } from '../app/services.js';
import type { Database } from '../infrastructure/database/database.js';
import { actorScope, anonymousActor, type Actor } from '../auth/actor.js';
import type { GraphQLContext } from './context.js';
import { createLoaders } from './loaders.js';
import { createFormatError } from './format-error.js';
import type { OperationPipeline } from './operation-pipeline.js';
import { SharedSubscriptions } from './shared-subscriptions.js';

interface SubscriptionContext extends GraphQLContext {
  /** Subscriptions with equal keys share one execution (see SharedSubscriptions). */
  shareKey: string;
}

/** The key of `connection_init`'s payload: `{ authorization: 'Bearer tp_...' }` or `{ apiKey }`. */
function authorizationOf(params: Readonly<Record<string, unknown>> | undefined): string | undefined {
  if (typeof params?.authorization === 'string') return params.authorization;
  if (typeof params?.Authorization === 'string') return params.Authorization;
  if (typeof params?.apiKey === 'string') return `Bearer ${params.apiKey}`;
  return undefined;
}

/**
 * GraphQL over WebSocket (graphql-ws protocol) on the HTTP server's own port and `/graphql` path.
 * The key is checked once, on `connection_init` (bad key: close 4403); each operation gets a
 * context like an HTTP request's. Every operation goes through the HTTP transport's
 * {@link OperationPipeline} (token limit, validation rules with depth and alias limits, input and
 * cost checks, the same error codes); documents are parsed and validated once per distinct text,
 * and equal subscriptions share one execution. On close, sockets are closed with 1001 (going away).
 */
export function attachSubscriptionServer(
  app: FastifyInstance,
  options: {
    schema: GraphQLSchema;
    services: Services;
    database: Database;
    development: boolean;
    pipeline: OperationPipeline;
    onUnavailable?: (error: unknown) => void;
  },
): void {
  const { schema, services, database } = options;
  const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
  app.server.on('upgrade', (request, socket, head) => {
    const path = (request.url ?? '/').split('?')[0];
    if (path !== '/graphql') {
      socket.destroy();
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request));
  });

  const shared = new SharedSubscriptions();
  const formatError = createFormatError({
    development: options.development,
    onUnexpected: (error) => app.log.error({ err: error }, 'unexpected GraphQL error (WebSocket)'),
    onUnavailable: options.onUnavailable,
  });
  let connections = 0;

  const server = useServer<Record<string, unknown>, { actor: Actor; connectionId: number }>(
    {
      schema,
      isProd: !options.development,
      onConnect: async (ctx) => {
        try {
          ctx.extra.actor = await services.apiKeys.authenticateHeader(authorizationOf(ctx.connectionParams));
        } catch {
          return false; // graphql-ws closes with 4403 Forbidden
        }
        connections += 1;
        ctx.extra.connectionId = connections;
        return true;
      },
      onSubscribe: (_ctx, _id, payload) => {
        const document = options.pipeline.prepare(payload.query);
        if (Array.isArray(document)) return document as readonly GraphQLError[];
        const variables =
          payload.variables === undefined || payload.variables === null ? null : payload.variables;
        if (variables !== null && (typeof variables !== 'object' || Array.isArray(variables))) {
          return [
            new GraphQLError('`variables` must be an object.', {
              extensions: { code: ErrorCode.BadRequest },
            }),
          ];
        }
        const problem = options.pipeline.check({
          document: document as DocumentNode,
          operationName: payload.operationName,
          variables,
          transport: 'ws',
        });
        if (problem) return [problem];
        return {
          schema,
          document: document as DocumentNode,
          operationName: payload.operationName,
          variableValues: variables ?? undefined,
        };
      },
      context: (ctx, id, payload): SubscriptionContext => {
        // onConnect ran before any operation and set it.
        const actor = ctx.extra.actor ?? anonymousActor;
        return {
          actor,
          requestId: `ws-${ctx.extra.connectionId}-${id}`,
          services,
          // A subscription context lives as long as the subscription: fresh loaders per use, so
          // relation fields of later messages never come from an earlier message's cache.
          get loaders() {
            return createLoaders(database.prisma);
          },
          shareKey: [
            actorScope(actor),
            payload.operationName ?? '',
            JSON.stringify(payload.variables ?? {}),
            payload.query,
          ].join('\u0000'),
        };
      },
      subscribe: (args) => shared.subscribe(args, (args.contextValue as SubscriptionContext).shareKey),
      onNext: (_ctx, _id, _payload, _args, result) => {
        if (!result.errors) return;
        return { ...result, errors: result.errors.map((error) => formatError(error.toJSON(), error)) };
      },
      onError: (_ctx, _id, _payload, errors) => errors.map((error) => formatError(error.toJSON(), error)),
    },
    wss,
  );

  app.addHook('preClose', async () => {
    await server.dispose();
  });
}
