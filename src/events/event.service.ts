import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Database, DbClient } from '../infrastructure/database/database.js';
import { deleteInBatches } from '../shared/delete-in-batches.js';
import {
  ConflictError,
  ForbiddenError,
  RateLimitedError,
  ValidationError,
  type FieldProblem,
} from '../errors/index.js';
import { actorScope, requireAuthenticated, type Actor } from '../auth/actor.js';
import { validateWithDefaults } from '../shared/json-schema.js';
import { isUuid } from '../shared/ids.js';
import { jsonValueProblem } from '../shared/storable-text.js';
import type { AddonManifest } from '../addons/addon-manifest.js';
import type { PubSub } from '../infrastructure/pub-sub/pub-sub.js';
import type { DailyQuota } from '../infrastructure/redis/daily-quota.js';
import { EventRepository, type EventPosition, type EventRecord, type NewEvent } from './event.repository.js';
import type { SubscriberIndex } from './subscriber-index.js';
import type { EventTopics } from './live-payloads.js';
import { EffectsBatchWriter } from './effects-batch-writer.js';
import {
  EffectsRepository,
  idempotencyScope,
  type CommittedEffects,
  type GenerationBump,
  type PlannedEvent,
  type StorageChange,
  type WidgetScope,
} from './effects.repository.js';
import type { VisibilityResolver } from '../auth/visibility.js';
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

/** An event's cursor: its place in the stream (see EventPosition). */
export const encodeEventCursor = (row: Pick<EventRecord, 'txid' | 'seq'>) =>
  Buffer.from(`tx:${row.txid}:${row.seq}`).toString('base64url');

function decodeCursor(cursor: string): EventPosition {
  const text = Buffer.from(cursor, 'base64url').toString('utf8');
  const current = /^tx:(\d{1,19}):(\d{1,19})$/.exec(text);
  if (current) return { txid: BigInt(current[1]), seq: BigInt(current[2]) };
  // Cursors handed out before positions had a transaction part.
  if (/^seq:\d{1,19}$/.test(text)) return { txid: null, seq: BigInt(text.slice(4)) };
  throw ValidationError.of('arguments', [
    { field: 'after', message: 'is not a cursor returned by this API' },
  ]);
}

/** An idempotency key as emits take it: 1 to 200 printable characters. */
export const IDEMPOTENCY_KEY_MAX_CHARS = 200;

/** The problem with an idempotency key given as `field`, or null. */
export function idempotencyKeyProblem(key: unknown, field: string): FieldProblem | null {
  if (
    typeof key !== 'string' ||
    key.length === 0 ||
    key.length > IDEMPOTENCY_KEY_MAX_CHARS ||
    // eslint-disable-next-line no-control-regex
    /[\u0000-\u001f\u007f]/.test(key)
  ) {
    return {
      field,
      message: `must be 1 to ${IDEMPOTENCY_KEY_MAX_CHARS} characters without control characters`,
    };
  }
  return null;
}

/** One event of a commit, with the idempotency key it was emitted with. */
export interface PendingEvent {
  event: NewEvent;
  idempotencyKey: string | null;
}

/** What one execution (or one platform emit) commits: its events and its storage writes. */
export interface Effects {
  events: PendingEvent[];
  storage: StorageChange[];
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
 * Emitting and reading events. An event, the deliveries it creates, the generation bumps of the
 * widget renders it invalidates and (for events of an addon call) the call's storage writes are
 * stored in one statement (inside the emitter's transaction when it has one: an outbox); only after
 * the commit are live listeners told (through the pub/sub: delivery workers, widget caches, the
 * live event feeds). Telling is at most once; the stored rows are the record, and every listener
 * also reads them (polls) so a lost message only delays it.
 */
export class EventService {
  private readonly writer: EffectsBatchWriter;
  private readonly invalidatedListeners: Array<(bumps: GenerationBump[]) => void> = [];

  constructor(
    private readonly deps: {
      database: Database;
      pubSub: PubSub<EventTopics>;
      subscribers: SubscriberIndex;
      visibility: VisibilityResolver;
      maxAttempts: number;
      /** Events one site, and one addon of it, may emit per day; none: no bound. */
      quota?: DailyQuota;
      /** An emit was refused past the site's day or the addon's share of it (metrics). */
      onRefused?: (limit: 'site_day' | 'addon_day') => void;
      onError?: (error: unknown, message: string) => void;
    },
  ) {
    this.writer = new EffectsBatchWriter(deps.database.pool, deps.maxAttempts);
  }

  /**
   * Charges one event to the site's day (and to the addon's share of it, for an addon's emit), or
   * refuses it with RATE_LIMITED naming `via`. A call may emit a thousand (its SDK calls) and a key
   * make a hundred calls a minute, so without it one site could fill the shared database, and one
   * addon spend what the site's other addons need.
   */
  admitSiteEvent(siteId: string, via: string, addonId?: string): void {
    const quota = this.deps.quota;
    if (!quota) return;
    if (quota.admit(siteId, 1, addonId) === 0) {
      const ofSite = quota.leftToday(siteId) === 0;
      this.deps.onRefused?.(ofSite ? 'site_day' : 'addon_day');
      throw new RateLimitedError(
        ofSite
          ? `${via}: this site emitted ${quota.perDay} events today, the most a site may (EVENTS_MAX_PER_SITE_DAY); more are refused until 00:00 UTC.`
          : `${via}: this addon emitted ${quota.perAddonDay} events on this site today, the most one addon may (EVENTS_MAX_PER_ADDON_DAY); more are refused until 00:00 UTC.`,
        quota.secondsLeftToday(),
      );
    }
    quota.syncSoon();
  }

  /**
   * Registers a listener called on this instance with the widget generations each commit of this
   * instance bumped, after the commit: the render cache learns them at once (and tells the others).
   */
  onInvalidated(listener: (bumps: GenerationBump[]) => void): () => void {
    this.invalidatedListeners.push(listener);
    return () => {
      const index = this.invalidatedListeners.indexOf(listener);
      if (index >= 0) this.invalidatedListeners.splice(index, 1);
    };
  }

  /**
   * An event emitted by addon code, checked and ready to be committed with its call's other
   * effects (nothing is stored yet). The name must be declared under `events.emits` (the sandbox
   * checks that before calling), and the data must match the schema declared for it.
   */
  prepareFromAddon(
    emitter: { addonId: string; addonName: string; manifest: AddonManifest },
    event: { name: string; data: unknown; siteId: string; requestId?: string },
  ): NewEvent {
    // Stored as jsonb: text PostgreSQL refuses fails this emit alone, never a batch of others.
    const unstorable = jsonValueProblem(event.data, 'data');
    if (unstorable) throw ValidationError.of(`data of event ${event.name}`, [unstorable]);
    const declared = emitter.manifest.events.emits.find((e) => e.name === event.name);
    if (declared?.schema) {
      const result = validateWithDefaults(declared.schema, event.data, 'data');
      if (!result.ok) throw ValidationError.of(`data of event ${event.name}`, result.problems);
    }
    return {
      id: randomUUID(),
      name: event.name,
      sourceAddonId: emitter.addonId,
      source: emitter.addonName,
      siteId: event.siteId,
      data: event.data ?? null,
      requestId: event.requestId ?? null,
    };
  }

  /** The event stored with an idempotency key of this site and emitter, while the key is kept. */
  findByIdempotencyKey(
    siteId: string | null,
    source: string,
    key: string,
    db: DbClient = this.deps.database.prisma,
  ): Promise<EventRecord | null> {
    return new EventRepository(db).findByIdempotencyKey(idempotencyScope(siteId, source), key);
  }

  /**
   * Commits effects in `db` (the emitter's transaction when it has one, else group-committed): all
   * or nothing. Resolves with the stored events once committed.
   * @throws ConflictError when another emit stored one of the idempotency keys meanwhile.
   */
  async commit(db: DbClient, effects: Effects): Promise<EventRecord[]> {
    if (effects.events.length === 0 && effects.storage.length === 0) return [];
    // Anything but the root client is an open transaction of the emitter's.
    const inTransaction = db !== this.deps.database.prisma;
    const events: PlannedEvent[] = [];
    const bumps = new Map<string, WidgetScope>();
    for (const { event, idempotencyKey } of effects.events) {
      const fanOut = await this.deps.subscribers.forEvent(
        event.siteId,
        event.name,
        inTransaction ? db : undefined,
      );
      events.push({
        event,
        deliveries: fanOut.deliveries,
        idempotency:
          idempotencyKey === null
            ? null
            : { scope: idempotencyScope(event.siteId, event.source), key: idempotencyKey },
      });
      for (const addonId of fanOut.invalidates) {
        bumps.set(`${event.siteId}:${addonId}`, { siteId: event.siteId!, addonId });
      }
    }
    const item = { events, storage: effects.storage, bumps: [...bumps.values()] };
    const committed = inTransaction
      ? await EffectsRepository.commitIn(db, item, this.deps.maxAttempts)
      : await this.writer.commit(item);
    const deliveries = events.some((e) => e.deliveries.length > 0);
    // Not awaited: everything is stored, the caller need not wait for Redis.
    if (inTransaction) void this.publishAfterCommit(committed, deliveries);
    else void this.publish(committed, deliveries);
    return committed.events;
  }

  /**
   * Mutation.emitEvent: a platform event (source "platform"). A site key emits on its own site; an
   * admin names a site, or none for a platform-wide event (seen by admins; delivered to no addon).
   * With an idempotency key already given on the site, nothing is stored and the first event is
   * returned (`replayed`).
   */
  async emitPlatform(
    actor: Actor,
    input: {
      name: string;
      data: unknown;
      siteId?: string | null;
      requestId?: string;
      idempotencyKey?: string | null;
    },
  ): Promise<{ event: EventRecord; replayed: boolean }> {
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
    const key = input.idempotencyKey ?? null;
    const keyProblem = key === null ? null : idempotencyKeyProblem(key, 'idempotencyKey');
    if (keyProblem) problems.push(keyProblem);
    if (problems.length > 0) throw ValidationError.of('event', problems);
    if (key !== null) {
      const first = await this.findByIdempotencyKey(siteId, PLATFORM_SOURCE, key);
      if (first) return { event: first, replayed: true };
    }
    // An admin is not refused: it is the platform, and may need to reach a site that spent its day.
    if (actor.kind === 'site' && siteId !== null) this.admitSiteEvent(siteId, 'emitEvent');
    const event: NewEvent = {
      id: randomUUID(),
      name: input.name,
      sourceAddonId: null,
      source: PLATFORM_SOURCE,
      siteId,
      data: input.data ?? null,
      requestId: input.requestId ?? null,
    };
    try {
      const [stored] = await this.commit(this.deps.database.prisma, {
        events: [{ event, idempotencyKey: key }],
        storage: [],
      });
      return { event: stored, replayed: false };
    } catch (error) {
      // A concurrent emit with the same key won: its event is the answer.
      const first =
        key !== null && error instanceof ConflictError
          ? await this.findByIdempotencyKey(siteId, PLATFORM_SOURCE, key)
          : null;
      if (first) return { event: first, replayed: true };
      throw error;
    }
  }

  /**
   * Deletes events older than `days` whose deliveries are all finished, with their deliveries,
   * oldest first, in batches (short transactions whatever the backlog) until none is left.
   */
  async forgetOldEvents(days: number): Promise<number> {
    const repository = new EventRepository(this.deps.database.prisma);
    const cutoff = new Date(Date.now() - days * 86_400_000);
    return deleteInBatches((limit) => repository.deleteFinishedBefore(cutoff, limit));
  }

  /** Forgets idempotency keys older than `hours` (keys are kept at least that long). */
  async forgetIdempotencyKeys(hours: number): Promise<number> {
    return new EventRepository(this.deps.database.prisma).deleteIdempotencyKeysBefore(
      new Date(Date.now() - hours * 3_600_000),
    );
  }

  /** Query.events: stored events in stream order, after a cursor, as far as the caller may see. */
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
    const empty = { rows: [], hasNextPage: false, hasPreviousPage: false, encode: encodeEventCursor };
    const after = args.after ? decodeCursor(args.after) : null;
    if ((siteId && !isUuid(siteId)) || sourceAddonIds?.length === 0) return empty;
    const rows = await this.deps.database.scan(actorScope(actor), (db) =>
      new EventRepository(db).list({
        after,
        names,
        source: args.source ?? null,
        siteId,
        sourceAddonIds,
        take: first + 1,
        newest: last !== null,
      }),
    );
    if (last !== null) {
      // The newest `last` (oldest first); the extra row, the oldest, only says more exist.
      const more = rows.length > last;
      return {
        rows: more ? rows.slice(1) : rows,
        hasNextPage: false,
        hasPreviousPage: more,
        encode: encodeEventCursor,
      };
    }
    return {
      rows: rows.slice(0, first),
      hasNextPage: rows.length > first,
      hasPreviousPage: Boolean(args.after),
      encode: encodeEventCursor,
    };
  }

  /** Tells listeners about committed effects. Failures are logged: everything is stored anyway. */
  private async publish(committed: CommittedEffects, deliveries: boolean): Promise<void> {
    const { pubSub } = this.deps;
    if (committed.generations.length > 0) {
      for (const listener of this.invalidatedListeners) {
        try {
          listener(committed.generations);
        } catch (error) {
          this.deps.onError?.(error, 'an invalidation listener failed');
        }
      }
    }
    if (committed.events.length === 0) return;
    const sends = [pubSub.publish('events', { n: committed.events.length })];
    if (deliveries) {
      const sites = new Set(committed.events.map((e) => e.siteId));
      for (const siteId of sites) sends.push(pubSub.publish(DELIVERIES_DUE_CHANNEL, { siteId }));
    }
    const results = await Promise.allSettled(sends);
    for (const result of results) {
      if (result.status === 'rejected')
        this.deps.onError?.(result.reason, 'could not publish a stored event');
    }
  }

  /**
   * Effects committed inside someone else's transaction (a lifecycle hook) may still be rolled
   * back; they are published once visible outside that transaction, i.e. committed. Polled: the
   * transaction is not ours to hook, and lasts 30 s at most. Delivery workers, render caches and
   * live feeds read the stored rows anyway.
   */
  private async publishAfterCommit(committed: CommittedEffects, deliveries: boolean): Promise<void> {
    const probe = committed.events[0]?.id;
    if (!probe) return;
    const repository = new EventRepository(this.deps.database.prisma);
    const deadline = Date.now() + 40_000;
    for (let wait = 10; Date.now() < deadline; wait = Math.min(wait * 2, 500)) {
      await sleep(wait);
      try {
        if (await repository.exists(probe)) return await this.publish(committed, deliveries);
      } catch {
        // Database briefly away: keep trying until the deadline.
      }
    }
  }
}
