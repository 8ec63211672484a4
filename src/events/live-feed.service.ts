import { ForbiddenError } from '../errors/index.js';
import type { Actor } from '../auth/actor.js';
import { checkEventPatterns } from './event.service.js';
import type { EventRecord } from './event.repository.js';
import type { DeliveryRecord, DeliveryStatusName } from './delivery.repository.js';
import { eventNameFilter } from './event-name.js';
import { reviveDelivery, type EventTopics } from './live-payloads.js';
import type { EventTail } from './event-tail.js';
import { isVisible, type VisibilityResolver } from '../auth/visibility.js';
import type { ExecutionTopics, LiveExecution } from '../executions/execution-recorder.js';
import type { PubSub } from '../infrastructure/pub-sub/pub-sub.js';

/** A live execution record, dates revived. */
export type ExecutionFeedItem = Omit<LiveExecution, 'createdAt'> & { createdAt: Date };

/**
 * The live feeds behind GraphQL subscriptions: stored things as they happen, filtered to what the
 * caller may see and asked for. A feed listens from its consumer's first read.
 *
 * Events come from the outbox ({@link EventTail}): every event stored while a subscriber listens,
 * once, in stream order, even across a Redis outage. Deliveries and executions have no outbox to
 * replay: their feeds end with LIVE_STREAM_INTERRUPTED whenever a message may have been missed
 * (see PubSub.subscribe), and the client reloads them.
 */
export class LiveFeedService {
  constructor(
    private readonly deps: {
      pubSub: PubSub<EventTopics & ExecutionTopics>;
      visibility: VisibilityResolver;
      tail: EventTail;
    },
  ) {}

  async events(
    actor: Actor,
    args: { names?: string[] | null; source?: string | null; siteId?: string | null },
  ): Promise<AsyncIterable<EventRecord>> {
    const visibility = await this.deps.visibility.of(actor);
    if (visibility.kind === 'site' && args.siteId && args.siteId !== visibility.siteId) {
      throw new ForbiddenError('A site key sees its own events only.');
    }
    const matches = eventNameFilter(checkEventPatterns(args.names));
    const { source, siteId } = args;
    return this.deps.tail.subscribe((event) => {
      if (!isVisible(visibility, { siteId: event.siteId, addonId: event.sourceAddonId })) return null;
      if (
        !matches(event.name) ||
        (source && event.source !== source) ||
        (siteId && event.siteId !== siteId)
      ) {
        return null;
      }
      return event;
    });
  }

  async deliveries(
    actor: Actor,
    args: { addon?: string | null; eventId?: string | null; status?: DeliveryStatusName | null },
  ): Promise<AsyncIterable<DeliveryRecord>> {
    const visibility = await this.deps.visibility.of(actor);
    const { addon, eventId, status } = args;
    return this.deps.pubSub.subscribe('deliveries', (delivery) => {
      if (!isVisible(visibility, delivery)) return null;
      if (addon && delivery.addonId !== addon && delivery.addonName !== addon) return null;
      if ((eventId && delivery.eventId !== eventId) || (status && delivery.status !== status)) return null;
      return reviveDelivery(delivery);
    });
  }

  async executions(
    actor: Actor,
    args: { addon?: string | null; status?: string | null; kind?: string | null },
  ): Promise<AsyncIterable<ExecutionFeedItem>> {
    const visibility = await this.deps.visibility.of(actor);
    const { addon, status, kind } = args;
    return this.deps.pubSub.subscribe('executions', (execution) => {
      if (!isVisible(visibility, execution)) return null;
      if (addon && execution.addonId !== addon && execution.addonName !== addon) return null;
      if ((status && execution.status !== status) || (kind && execution.kind !== kind)) return null;
      return { ...execution, createdAt: new Date(execution.createdAt) };
    });
  }
}
