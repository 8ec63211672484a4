import type { FastifyInstance } from 'fastify';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { WebSocketServer, type WebSocket } from 'ws';
import { useServer } from 'graphql-ws/use/ws';
import { GraphQLError, type DocumentNode, type GraphQLSchema } from 'graphql';
import { ErrorCode, RateLimitedError } from '../errors/index.js';
import type { Services } from '../app/services.js';
import type { Database } from '../infrastructure/database/database.js';
import { actorScope, anonymousActor, callerKey, type Actor } from '../auth/actor.js';
import type { GraphQLContext } from './context.js';
import { createLoaders } from './loaders.js';
import { createFormatError } from './format-error.js';
import type { OperationPipeline } from './operation-pipeline.js';
import { LiveQuota, SharedSubscriptions } from './shared-subscriptions.js';
import { MAX_MESSAGE_BYTES, createInboundBudget, type MeteredSocket } from './inbound-budget.js';

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
  maxHandshakesPerAddress: number;
  maxInboundBytesPerSecond: number;
}

/** The rate limit every operation counts against: over HTTP, a request; here, a `subscribe`. */
type OperationRateLimit = (
  actor: Actor,
  caller: string,
) => Promise<{ allowed: boolean; limit: number; retryAfterSeconds: number }>;

/** WebSocket close code 1013, "try again later": the caller has its share of sockets already. */
const TRY_AGAIN_LATER = 1013;

/** What an upgrade refused for its address's handshakes is told to wait. */
const HANDSHAKE_RETRY_SECONDS = 3;

/** Answers an upgrade request with 429 and a JSON body (as the REST routes' errors), and closes it. */
function refuseUpgrade(socket: Duplex, message: string): void {
  const body = JSON.stringify({
    error: { code: ErrorCode.RateLimited, message, retryAfterSeconds: HANDSHAKE_RETRY_SECONDS },
  });
  socket.end(
    [
      'HTTP/1.1 429 Too Many Requests',
      'Content-Type: application/json; charset=utf-8',
      `Content-Length: ${Buffer.byteLength(body)}`,
      `Retry-After: ${HANDSHAKE_RETRY_SECONDS}`,
      'Connection: close',
      '',
      body,
    ].join('\r\n'),
  );
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
    /** Counts a look-up of a key not cached here against the address; throws RateLimitedError to refuse. */
    admitKeyLookup?: (address: string) => Promise<void>;
    /** The caller's address of an upgrade request (the same rule as HTTP's); default: the socket's peer. */
    clientAddress?: (request: IncomingMessage) => string;
    /**
     * A handshake, socket, operation or subscription refused, a socket paused for sending past its
     * budget (inbound), or a subscription ended for its caller's backlog (metrics).
     */
    onLimited?: (
      limit: 'handshakes' | 'inbound' | 'connections' | 'operations' | 'subscriptions' | 'backlog',
    ) => void;
    onUnavailable?: (error: unknown) => void;
  },
): void {
  const { schema, services, database, limits } = options;
  const clientAddress =
    options.clientAddress ?? ((request: IncomingMessage) => request.socket.remoteAddress ?? '');
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_MESSAGE_BYTES });
  // Sockets per address until their `connection_init` is answered: graphql-ws waits for it a
  // while, and an address could otherwise hold any number of them meanwhile.
  const handshakesOf = new Map<string, number>();
  const metered = new WeakMap<WebSocket, MeteredSocket>();
  const inbound = createInboundBudget(limits.maxInboundBytesPerSecond, () => options.onLimited?.('inbound'));
  const handshakeDone = new WeakMap<WebSocket, () => void>();
  app.server.on('upgrade', (request: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (request.url ?? '/').split('?')[0];
    if (path !== '/graphql') {
      socket.destroy();
      return;
    }
    const address = clientAddress(request);
    const pending = handshakesOf.get(address) ?? 0;
    if (pending >= limits.maxHandshakesPerAddress) {
      options.onLimited?.('handshakes');
      refuseUpgrade(
        socket,
        `At most ${limits.maxHandshakesPerAddress} WebSocket connections per address may wait for connection_init; retry in ${HANDSHAKE_RETRY_SECONDS} s.`,
      );
      return;
    }
    handshakesOf.set(address, pending + 1);
    let done = false;
    const release = () => {
      if (done) return;
      done = true;
      const left = (handshakesOf.get(address) ?? 1) - 1;
      if (left > 0) handshakesOf.set(address, left);
      else handshakesOf.delete(address);
    };
    socket.once('close', release);
    wss.handleUpgrade(request, socket, head, (ws) => {
      handshakeDone.set(ws, release);
      metered.set(ws, inbound.attach(ws, callerKey(anonymousActor, address)));
      wss.emit('connection', ws, request);
    });
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
        const address = clientAddress(ctx.extra.request);
        let actor: Actor;
        try {
          actor = await services.apiKeys.authenticateHeader(
            authorizationOf(ctx.connectionParams),
            options.admitKeyLookup && (() => options.admitKeyLookup!(address)),
          );
        } catch (error) {
          if (!(error instanceof RateLimitedError)) return false; // graphql-ws closes with 4403 Forbidden
          ctx.extra.socket.close(
            TRY_AGAIN_LATER,
            `Too many unknown API keys; retry in ${error.retryAfterSeconds} s.`,
          );
          return false;
        } finally {
          handshakeDone.get(ctx.extra.socket)?.();
        }
        const caller = callerKey(actor, address);
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
        metered.get(ctx.extra.socket)?.moveTo(caller);
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
