import type { FastifyInstance } from 'fastify';
import { WebSocketServer } from 'ws';
import { useServer } from 'graphql-ws/use/ws';
import { GraphQLError, type DocumentNode, type GraphQLSchema } from 'graphql';
import { ErrorCode } from '../errors/index.js';
import type { Services } from '../app/services.js';
import type { Database } from '../infrastructure/database/database.js';
import { actorScope, anonymousActor, callerKey, type Actor } from '../auth/actor.js';
import type { GraphQLContext } from './context.js';
import { createLoaders } from './loaders.js';
import { createFormatError } from './format-error.js';
import type { OperationPipeline } from './operation-pipeline.js';
import { LiveQuota, SharedSubscriptions } from './shared-subscriptions.js';

interface SubscriptionContext extends GraphQLContext {
  /** Subscriptions with equal keys share one execution (see SharedSubscriptions). */
  shareKey: string;
  /** What the caller holds of the live transport on this instance. */
  quota: LiveQuota;
}

/** What graphql-ws keeps per socket for these hooks (set by `onConnect`). */
type ConnectionExtra = {
  actor?: Actor;
  connectionId?: number;
  /** The caller this socket counts against ({@link callerKey}). */
  caller?: string;
};

/** Bounds of the WebSocket transport, per instance (see AppConfig.live). */
interface LiveLimits {
  maxConnectionsPerKey: number;
  maxOperationsPerConnection: number;
  maxBacklogPerKey: number;
  maxSubscriptionsPerKey: number;
}

/** The rate limit every operation counts against: over HTTP, a request; here, a `subscribe`. */
type OperationRateLimit = (
  actor: Actor,
  caller: string,
) => Promise<{ allowed: boolean; limit: number; retryAfterSeconds: number }>;

/** WebSocket close code 1013, "try again later": the caller has its share of sockets already. */
const TRY_AGAIN_LATER = 1013;

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
 * What one caller (a key, or an IP when anonymous) may hold is bounded per instance: sockets,
 * operations per socket, distinct subscriptions, `subscribe` messages by its rate limit, and the
 * results waiting to be written to its sockets (past that its subscriptions end:
 * LIVE_STREAM_INTERRUPTED).
 */
export function attachSubscriptionServer(
  app: FastifyInstance,
  options: {
    schema: GraphQLSchema;
    services: Services;
    database: Database;
    development: boolean;
    pipeline: OperationPipeline;
    limits: LiveLimits;
    rateLimit?: OperationRateLimit;
    /** A socket, operation or subscription refused, or one ended for its caller's backlog (metrics). */
    onLimited?: (limit: 'connections' | 'operations' | 'subscriptions' | 'backlog') => void;
    onUnavailable?: (error: unknown) => void;
  },
): void {
  const { schema, services, database, limits } = options;
  const wss = new WebSocketServer({ noServer: true, maxPayload: 1024 * 1024 });
  app.server.on('upgrade', (request, socket, head) => {
    const path = (request.url ?? '/').split('?')[0];
    if (path !== '/graphql') {
      socket.destroy();
      return;
    }
    wss.handleUpgrade(request, socket, head, (ws) => wss.emit('connection', ws, request));
  });

  const shared = new SharedSubscriptions({
    onFellBehind: () => options.onLimited?.('backlog'),
    onRefused: () => options.onLimited?.('subscriptions'),
  });
  const formatError = createFormatError({
    development: options.development,
    onUnexpected: (error) => app.log.error({ err: error }, 'unexpected GraphQL error (WebSocket)'),
    onUnavailable: options.onUnavailable,
  });
  let connections = 0;
  // Per caller on this instance: open sockets, and what its subscriptions hold.
  const socketsOf = new Map<string, number>();
  const quotas = new Map<string, LiveQuota>();
  const newQuota = () => new LiveQuota(limits.maxBacklogPerKey, limits.maxSubscriptionsPerKey);

  const server = useServer<Record<string, unknown>, ConnectionExtra>(
    {
      schema,
      isProd: !options.development,
      onConnect: async (ctx) => {
        let actor: Actor;
        try {
          actor = await services.apiKeys.authenticateHeader(authorizationOf(ctx.connectionParams));
        } catch {
          return false; // graphql-ws closes with 4403 Forbidden
        }
        const caller = callerKey(actor, ctx.extra.request.socket.remoteAddress ?? '');
        const open = socketsOf.get(caller) ?? 0;
        if (open >= limits.maxConnectionsPerKey) {
          options.onLimited?.('connections');
          ctx.extra.socket.close(
            TRY_AGAIN_LATER,
            `At most ${limits.maxConnectionsPerKey} live connections per key on this server.`,
          );
          return false;
        }
        socketsOf.set(caller, open + 1);
        if (!quotas.has(caller)) quotas.set(caller, newQuota());
        connections += 1;
        Object.assign(ctx.extra, { actor, caller, connectionId: connections });
        return true;
      },
      onClose: (ctx) => {
        const { caller } = ctx.extra;
        if (caller === undefined) return;
        const left = (socketsOf.get(caller) ?? 1) - 1;
        if (left > 0) {
          socketsOf.set(caller, left);
          return;
        }
        socketsOf.delete(caller);
        // The caller's last socket: its subscribers have left and given back what they held.
        quotas.delete(caller);
      },
      onSubscribe: async (ctx, _id, payload) => {
        // graphql-ws lists this operation among the socket's before asking.
        if (Object.keys(ctx.subscriptions).length > limits.maxOperationsPerConnection) {
          options.onLimited?.('operations');
          return [
            new GraphQLError(
              `This connection has ${limits.maxOperationsPerConnection} operations in flight, the most one connection may have; complete one first.`,
              {
                extensions: { code: ErrorCode.TooManyLiveOperations, max: limits.maxOperationsPerConnection },
              },
            ),
          ];
        }
        if (options.rateLimit) {
          const decision = await options.rateLimit(ctx.extra.actor ?? anonymousActor, ctx.extra.caller ?? '');
          if (!decision.allowed) {
            return [
              new GraphQLError(
                `Rate limit of ${decision.limit} requests exceeded; retry in ${decision.retryAfterSeconds} s.`,
                {
                  extensions: {
                    code: ErrorCode.RateLimited,
                    retryAfterSeconds: decision.retryAfterSeconds,
                  },
                },
              ),
            ];
          }
        }
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
        // onConnect ran before any operation and set them.
        const actor = ctx.extra.actor ?? anonymousActor;
        return {
          quota: quotas.get(ctx.extra.caller ?? '') ?? newQuota(),
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
      subscribe: (args) => {
        const context = args.contextValue as SubscriptionContext;
        return shared.subscribe(args, context.shareKey, context.quota);
      },
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
