import type { DeliveryRecord } from './delivery.repository.js';

/**
 * What the delivery feed carries between instances: JSON-safe copies of stored rows (dates as ISO
 * strings), turned back into records with {@link reviveDelivery}.
 */
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
  /**
   * Events were stored (`n` of them): the live event feeds read them from the outbox at once
   * instead of at their next poll.
   */
  events: { n: number };
  /** Delivery state changes (Subscription.deliveries). */
  deliveries: LiveDelivery;
  /** Deliveries were stored or made due again: delivery workers wake. */
  'deliveries.due': { siteId: string | null };
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
