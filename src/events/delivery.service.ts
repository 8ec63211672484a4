import type { Database } from '../infrastructure/database/database.js';
import { decodeTimeCursor, encodeTimeCursor } from '../shared/time-cursor.js';
import { ConflictError, ForbiddenError, NotFoundError, ValidationError } from '../errors/index.js';
import { actorScope, type Actor } from '../auth/actor.js';
import { isUuid } from '../shared/ids.js';
import { AddonRepository } from '../addons/addon.repository.js';
import type { PubSub } from '../infrastructure/pub-sub/pub-sub.js';
import { DeliveryRepository, type DeliveryRecord, type DeliveryStatusName } from './delivery.repository.js';
import { DELIVERIES_DUE_CHANNEL } from './event.service.js';
import { toLiveDelivery, type EventTopics } from './live-payloads.js';
import { isVisible, type VisibilityResolver } from '../auth/visibility.js';

export interface DeliveryListArgs {
  siteId?: string | null;
  addon?: string | null;
  eventId?: string | null;
  status?: DeliveryStatusName | null;
  first?: number | null;
  after?: string | null;
}

/**
 * Reading and retrying deliveries: an admin sees all, a site key its own site's, a developer key the
 * deliveries to its own addons. Retrying a DEAD delivery is for admins and the owning site.
 */
export class DeliveryService {
  constructor(
    private readonly deps: {
      database: Database;
      pubSub: PubSub<EventTopics>;
      visibility: VisibilityResolver;
    },
  ) {}

  /** The cluster-wide delivery backlog by status, for the metrics endpoint (no actor: operators). */
  backlog(): Promise<Record<'PENDING' | 'RUNNING' | 'DEAD', number>> {
    return new DeliveryRepository(this.deps.database.prisma).countBacklog();
  }

  async list(actor: Actor, args: DeliveryListArgs) {
    const visibility = await this.deps.visibility.of(actor);
    const first = args.first ?? 20;
    if (!Number.isInteger(first) || first < 1 || first > 100) {
      throw ValidationError.of('arguments', [{ field: 'first', message: 'must be from 1 to 100' }]);
    }
    const empty = { rows: [] as DeliveryRecord[], hasNextPage: false, encode: encodeTimeCursor };
    let siteId = args.siteId ?? null;
    let addonIds: string[] | null = null;
    if (args.addon) {
      const addon = await new AddonRepository(this.deps.database.prisma).findByIdOrName(args.addon);
      if (!addon) return empty;
      addonIds = [addon.id];
    }
    if (visibility.kind === 'site') {
      if (siteId && siteId !== visibility.siteId)
        throw new ForbiddenError('A site key sees its own deliveries only.');
      siteId = visibility.siteId;
    } else if (visibility.kind === 'addons') {
      addonIds = (addonIds ?? [...visibility.addonIds]).filter((id) => visibility.addonIds.has(id));
      if (addonIds.length === 0) return empty;
    }
    if ((siteId && !isUuid(siteId)) || (args.eventId && !isUuid(args.eventId))) return empty;
    const rows = await this.deps.database.scan(actorScope(actor), (db) =>
      new DeliveryRepository(db).list({
        siteId,
        addonIds,
        eventId: args.eventId ?? null,
        status: args.status ?? null,
        before: args.after ? decodeTimeCursor(args.after) : null,
        take: first + 1,
      }),
    );
    return { rows: rows.slice(0, first), hasNextPage: rows.length > first, encode: encodeTimeCursor };
  }

  async get(actor: Actor, id: string): Promise<DeliveryRecord> {
    const visibility = await this.deps.visibility.of(actor);
    const row = await new DeliveryRepository(this.deps.database.prisma).findById(id);
    if (!row || !isVisible(visibility, row)) throw new NotFoundError('Delivery', id);
    return row;
  }

  /** The deliveries among `rows` the caller may see (relation fields go through loaders first). */
  async visible(actor: Actor, rows: DeliveryRecord[]): Promise<DeliveryRecord[]> {
    const visibility = await this.deps.visibility.of(actor);
    return rows.filter((row) => isVisible(visibility, row));
  }

  /** Mutation.retryDelivery: a DEAD delivery becomes PENDING, due now, with a fresh budget of attempts. */
  async retry(actor: Actor, id: string): Promise<DeliveryRecord> {
    const existing = await this.get(actor, id);
    if (actor.kind !== 'admin' && actor.kind !== 'site') {
      throw new ForbiddenError('Only admin keys and the owning site may retry a delivery.');
    }
    const row = await new DeliveryRepository(this.deps.database.prisma).retryDead(existing.id);
    if (!row)
      throw new ConflictError(`Delivery "${id}" is ${existing.status}; only DEAD deliveries can be retried.`);
    await Promise.allSettled([
      this.deps.pubSub.publish(DELIVERIES_DUE_CHANNEL, { siteId: row.siteId }),
      this.deps.pubSub.publish('deliveries', toLiveDelivery(row)),
    ]);
    return row;
  }
}
