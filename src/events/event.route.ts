import type { FastifyInstance } from 'fastify';
import type { EventService } from './event.service.js';
import type { RequestActorResolver } from '../http/request-actor.js';
import { ValidationError } from '../errors/index.js';
import { encodeEventCursor, type EventRecord } from './event.service.js';

/** An event as the REST routes answer it. */
function eventJson(event: EventRecord) {
  return {
    id: event.id,
    cursor: encodeEventCursor(event),
    name: event.name,
    source: event.source,
    sourceAddonId: event.sourceAddonId,
    siteId: event.siteId,
    data: event.data,
    requestId: event.requestId,
    createdAt: event.createdAt.toISOString(),
  };
}

/**
 * `POST /api/events` with `{ "name", "data", "siteId"? }`: Mutation.emitEvent over REST. The
 * `Idempotency-Key` header (or `idempotencyKey` in the body) makes a retry safe: the first event
 * comes back (200, `Idempotent-Replayed: true`) instead of a second one (201).
 */
export function registerEventRoutes(
  app: FastifyInstance,
  services: { events: EventService },
  actorOf: RequestActorResolver,
): void {
  app.post('/api/events', async (request, reply) => {
    const actor = await actorOf(request);
    const body = (request.body ?? {}) as Record<string, unknown>;
    const header = request.headers['idempotency-key'];
    const problems = [];
    if (typeof body.name !== 'string') problems.push({ field: 'name', message: 'must be a string' });
    if (body.siteId !== undefined && body.siteId !== null && typeof body.siteId !== 'string') {
      problems.push({ field: 'siteId', message: 'must be a string' });
    }
    if (body.idempotencyKey !== undefined && typeof body.idempotencyKey !== 'string') {
      problems.push({ field: 'idempotencyKey', message: 'must be a string' });
    }
    if (Array.isArray(header)) problems.push({ field: 'Idempotency-Key', message: 'must be given once' });
    if (
      typeof header === 'string' &&
      typeof body.idempotencyKey === 'string' &&
      header !== body.idempotencyKey
    ) {
      problems.push({ field: 'Idempotency-Key', message: 'differs from idempotencyKey in the body' });
    }
    if (problems.length > 0) throw ValidationError.of('request', problems);
    const { event, replayed } = await services.events.emitPlatform(actor, {
      name: body.name as string,
      data: body.data ?? null,
      siteId: (body.siteId as string | null | undefined) ?? null,
      idempotencyKey:
        (typeof header === 'string' ? header : (body.idempotencyKey as string | undefined)) ?? null,
      requestId: request.id,
    });
    if (replayed) reply.header('idempotent-replayed', 'true');
    return reply.status(replayed ? 200 : 201).send({ event: eventJson(event) });
  });
}
