import type { EventRecord } from './event.repository.js';
import type { DeliveryRecord } from './delivery.repository.js';

/**
 * What the live feeds carry between instances: JSON-safe copies of stored rows (seq as a string,
 * dates as ISO strings), turned back into records with {@link reviveEvent} / {@link reviveDelivery}.
 */
export interface LiveEvent extends Omit<EventRecord, 'seq' | 'createdAt'> {
  seq: string;
  createdAt: string;
}

export type LiveDelivery = Omit<
  DeliveryRecord,
  'nextAttemptAt' | 'lockedUntil' | 'createdAt' | 'updatedAt' | 'completedAt'
> & {
  nextAttemptAt: string;
  lockedUntil: string | null;
  createdAt: string;
  updatedAt: string;
  completedAt: string | null;
};

/** The event domain's pub/sub topics and what their listeners receive. */
export interface EventTopics {
  /** Stored events (Subscription.events). */
  events: LiveEvent;
  /** Delivery state changes (Subscription.deliveries). */
  deliveries: LiveDelivery;
  /** Deliveries were stored or made due again: delivery workers wake. */
  'deliveries.due': { siteId: string | null };
}

export function toLiveEvent(event: EventRecord): LiveEvent {
  return { ...event, seq: event.seq.toString(), createdAt: event.createdAt.toISOString() };
}

export function reviveEvent(live: LiveEvent): EventRecord {
  return { ...live, seq: BigInt(live.seq), createdAt: new Date(live.createdAt) };
}

const iso = (d: Date | null) => (d ? d.toISOString() : null);
const date = (s: string | null) => (s ? new Date(s) : null);

export function toLiveDelivery(d: DeliveryRecord): LiveDelivery {
  return {
    ...d,
    nextAttemptAt: d.nextAttemptAt.toISOString(),
    lockedUntil: iso(d.lockedUntil),
    createdAt: d.createdAt.toISOString(),
    updatedAt: d.updatedAt.toISOString(),
    completedAt: iso(d.completedAt),
  };
}

export function reviveDelivery(d: LiveDelivery): DeliveryRecord {
  return {
    ...d,
    nextAttemptAt: new Date(d.nextAttemptAt),
    lockedUntil: date(d.lockedUntil),
    createdAt: new Date(d.createdAt),
    updatedAt: new Date(d.updatedAt),
    completedAt: date(d.completedAt),
  };
}
