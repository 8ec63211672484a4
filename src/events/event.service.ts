import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Database, DbClient } from '../infrastructure/database/database.js';
import { ForbiddenError, ValidationError, type FieldProblem } from '../errors/index.js';
import { requireAuthenticated, type Actor } from '../auth/actor.js';
import { validateWithDefaults } from '../shared/json-schema.js';
import { isUuid } from '../shared/ids.js';
import { jsonValueProblem } from '../shared/storable-text.js';
import type { AddonManifest } from '../addons/addon-manifest.js';
import type { PubSub } from '../infrastructure/pub-sub/pub-sub.js';
import { EventRepository, type EventRecord, type NewEvent } from './event.repository.js';
import type { SubscriberIndex } from './subscriber-index.js';
import { toLiveEvent, type EventTopics } from './live-payloads.js';
import { EventBatchWriter } from './event-batch-writer.js';
import type { VisibilityResolver } from './visibility.js';
import { EVENT_MAX_DATA_BYTES, EVENT_MAX_NAME_CHARS, EVENT_NAME, EVENT_PATTERN } from './event-name.js';

export type { EventRecord } from './event.repository.js';

/** The topic that wakes delivery workers when new deliveries were stored. */
export const DELIVERIES_DUE_CHANNEL = 'deliveries.due' satisfies keyof EventTopics;
/** `source` of events emitted through the API rather than by an addon. */
export const PLATFORM_SOURCE = 'platform';

export interface EventListArgs {
  after?: string | null;
  first?: number | null;
  /** The newest events instead (oldest first); not with `after`. */
  last?: number | null;
  names?: string[] | null;
  source?: string | null;
  siteId?: string | null;
}

export interface EventPage {
  rows: EventRecord[];
  hasNextPage: boolean;
  /** Older events exist before the first row (pages from `last`). */
  hasPreviousPage: boolean;
  encode: (row: EventRecord) => string;
}

const encodeCursor = (row: EventRecord) => Buffer.from(`seq:${row.seq}`).toString('base64url');

function decodeCursor(cursor: string): bigint {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!/^seq:\d{1,19}$/.test(text)) {
    throw ValidationError.of('arguments', [
      { field: 'after', message: 'is not a cursor returned by this API' },
    ]);
  }
  return BigInt(text.slice(4));
}

/** Checks names or patterns given as filters; returns them unchanged. */
export function checkEventPatterns(names: string[] | null | undefined, field = 'names'): string[] {
  const list = names ?? [];
  const problems: FieldProblem[] = [];
  list.forEach((n, i) => {
    if (n.length > EVENT_MAX_NAME_CHARS || !EVENT_PATTERN.test(n))
      problems.push({ field: `${field}[${i}]`, message: `"${n}" is not an event name or pattern` });
  });
  if (problems.length > 0) throw ValidationError.of('arguments', problems);
  return list;
}

/**
 * Emitting and reading events. An event and the deliveries it creates are stored in one statement
 * (inside the emitter's transaction when it has one: an outbox); only after the commit are live
 * listeners told (through the pub/sub: widget caches, delivery workers and GraphQL
 * subscriptions). Telling is at most once; the stored rows are the record.
 */
export class EventService {
  constructor(
    private readonly deps: {
      database: Database;
      pubSub: PubSub<EventTopics>;
      subscribers: SubscriberIndex;
      visibility: VisibilityResolver;
      maxAttempts: number;
      onError?: (error: unknown, message: string) => void;
    },
  ) {
    this.writer = new EventBatchWriter(deps.database.pool, deps.maxAttempts);
  }

  private readonly writer: EventBatchWriter;
  private readonly storedListeners: Array<(event: { siteId: string | null; name: string }) => void> = [];

  /**
   * Registers a listener called on this instance, once per event this instance stored, after
   * the commit. Work that must happen once per event cluster-wide (widget invalidation) hooks in
   * here rather than on a pub/sub topic every instance would answer.
   */
  onStored(listener: (event: { siteId: string | null; name: string }) => void): () => void {
    this.storedListeners.push(listener);
    return () => {
      const index = this.storedListeners.indexOf(listener);
      if (index >= 0) this.storedListeners.splice(index, 1);
    };
  }

  /**
   * Stores an event emitted by addon code, in `db` (the emitter's transaction when it has one).
   * The name must be declared under `events.emits` (the sandbox checks that before calling), and
   * the data must match the schema declared for it.
   */
  async emitFromAddon(
    db: DbClient,
    emitter: { addonId: string; addonName: string; manifest: AddonManifest },
    event: { name: string; data: unknown; siteId: string; requestId?: string },
  ): Promise<EventRecord> {
    // Stored as jsonb: text PostgreSQL refuses fails this emit alone, never a batch of others.
    const unstorable = jsonValueProblem(event.data, 'data');
    if (unstorable) throw ValidationError.of(`data of event ${event.name}`, [unstorable]);
    const declared = emitter.manifest.events.emits.find((e) => e.name === event.name);
    if (declared?.schema) {
      const result = validateWithDefaults(declared.schema, event.data, 'data');
      if (!result.ok) throw ValidationError.of(`data of event ${event.name}`, result.problems);
    }
    return this.store(db, {
      id: randomUUID(),
      name: event.name,
      sourceAddonId: emitter.addonId,
      source: emitter.addonName,
      siteId: event.siteId,
      data: event.data ?? null,
      requestId: event.requestId ?? null,
    });
  }

  /**
   * Mutation.emitEvent: a platform event (source "platform"). A site key emits on its own site; an
   * admin names a site, or none for a platform-wide event (seen by admins; delivered to no addon).
   */
  async emitPlatform(
    actor: Actor,
    input: { name: string; data: unknown; siteId?: string | null; requestId?: string },
  ): Promise<EventRecord> {
    requireAuthenticated(actor);
    let siteId: string | null = input.siteId ?? null;
    if (actor.kind === 'developer') {
      throw new ForbiddenError(
        'Developer keys cannot emit platform events; addons emit with ctx.events.emit.',
      );
    }
    if (actor.kind === 'site') {
      if (siteId && siteId !== actor.siteId)
        throw new ForbiddenError('A site key can only act on its own site.');
      siteId = actor.siteId;
    }
    const problems: FieldProblem[] = [];
    if (input.name.length > EVENT_MAX_NAME_CHARS || !EVENT_NAME.test(input.name)) {
      problems.push({
        field: 'name',
        message: 'must be dotted lowercase segments, e.g. "order.created"',
      });
    }
    if (siteId !== null && !isUuid(siteId)) problems.push({ field: 'siteId', message: 'is not a site id' });
    const unstorable = jsonValueProblem(input.data, 'data');
    if (unstorable) problems.push(unstorable);
    const size = Buffer.byteLength(JSON.stringify(input.data ?? null));
    if (size > EVENT_MAX_DATA_BYTES) {
      problems.push({
        field: 'data',
        message: `takes ${size} bytes; at most ${EVENT_MAX_DATA_BYTES} are allowed`,
      });
    }
    if (problems.length > 0) throw ValidationError.of('event', problems);
    return this.store(this.deps.database.prisma, {
      id: randomUUID(),
      name: input.name,
      sourceAddonId: null,
      source: PLATFORM_SOURCE,
      siteId,
      data: input.data ?? null,
      requestId: input.requestId ?? null,
    });
  }

  /** Query.events: stored events in order (seq), after a cursor, as far as the caller may see. */
  async list(actor: Actor, args: EventListArgs): Promise<EventPage> {
    const visibility = await this.deps.visibility.of(actor);
    const last = args.last ?? null;
    const first = last ?? args.first ?? 100;
    if (last !== null && args.after) {
      throw ValidationError.of('arguments', [
        { field: 'last', message: 'pages back from the newest event; it cannot follow a cursor (after)' },
      ]);
    }
    if (!Number.isInteger(first) || first < 1 || first > 500) {
      const field = last !== null ? 'last' : 'first';
      throw ValidationError.of('arguments', [{ field, message: 'must be from 1 to 500' }]);
    }
    const names = checkEventPatterns(args.names);
    let siteId = args.siteId ?? null;
    let sourceAddonIds: string[] | null = null;
    if (visibility.kind === 'site') {
      if (siteId && siteId !== visibility.siteId)
        throw new ForbiddenError('A site key sees its own events only.');
      siteId = visibility.siteId;
    } else if (visibility.kind === 'addons') {
      sourceAddonIds = [...visibility.addonIds];
    }
    const empty = { rows: [], hasNextPage: false, hasPreviousPage: false, encode: encodeCursor };
    if ((siteId && !isUuid(siteId)) || sourceAddonIds?.length === 0) return empty;
    const rows = await new EventRepository(this.deps.database.prisma).list({
      afterSeq: args.after ? decodeCursor(args.after) : null,
      names,
      source: args.source ?? null,
      siteId,
      sourceAddonIds,
      take: first + 1,
      newest: last !== null,
    });
    if (last !== null) {
      // The newest `last` (oldest first); the extra row, the oldest, only says more exist.
      const more = rows.length > last;
      return {
        rows: more ? rows.slice(1) : rows,
        hasNextPage: false,
        hasPreviousPage: more,
        encode: encodeCursor,
      };
    }
    return {
      rows: rows.slice(0, first),
      hasNextPage: rows.length > first,
      hasPreviousPage: Boolean(args.after),
      encode: encodeCursor,
    };
  }

  private async store(db: DbClient, event: NewEvent): Promise<EventRecord> {
    // Anything but the root client is an open transaction of the emitter's.
    const inTransaction = db !== this.deps.database.prisma;
    const deliveries = await this.deps.subscribers.forEvent(
      event.siteId,
      event.name,
      inTransaction ? db : undefined,
    );
    const { maxAttempts } = this.deps;
    const record = inTransaction
      ? await new EventRepository(db).insertWithDeliveries(event, deliveries, maxAttempts)
      : await this.writer.insert(event, deliveries);
    // Not awaited: the event is stored, the caller need not wait for Redis. Publishes leave in
    // order on one connection, so live listeners still see events in the order they were stored.
    if (inTransaction) void this.publishAfterCommit(record, deliveries.length);
    else void this.publish(record, deliveries.length);
    return record;
  }

  /** Tells listeners about a committed event. Failures are logged: the event is stored anyway. */
  private async publish(record: EventRecord, deliveries: number): Promise<void> {
    const { pubSub } = this.deps;
    for (const listener of this.storedListeners) {
      try {
        listener({ siteId: record.siteId, name: record.name });
      } catch (error) {
        this.deps.onError?.(error, 'an event listener failed');
      }
    }
    const sends = [pubSub.publish('events', toLiveEvent(record))];
    if (deliveries > 0) sends.push(pubSub.publish(DELIVERIES_DUE_CHANNEL, { siteId: record.siteId }));
    const results = await Promise.allSettled(sends);
    for (const result of results) {
      if (result.status === 'rejected')
        this.deps.onError?.(result.reason, 'could not publish a stored event');
    }
  }

  /**
   * An event stored inside someone else's transaction (a lifecycle hook) may still be rolled back;
   * it is published once it is visible outside that transaction, i.e. committed. Polled: the
   * transaction is not ours to hook, and lasts 30 s at most. Delivery workers find its deliveries
   * by polling anyway.
   */
  private async publishAfterCommit(record: EventRecord, deliveries: number): Promise<void> {
    const repository = new EventRepository(this.deps.database.prisma);
    const deadline = Date.now() + 40_000;
    for (let wait = 10; Date.now() < deadline; wait = Math.min(wait * 2, 500)) {
      await sleep(wait);
      try {
        if (await repository.exists(record.id)) return await this.publish(record, deliveries);
      } catch {
        // Database briefly away: keep trying until the deadline.
      }
    }
  }
}
