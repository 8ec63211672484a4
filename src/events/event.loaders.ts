import DataLoader from 'dataloader';
import type { DbClient } from '../infrastructure/database/database.js';
import { byKey, groupBy } from '../addons/addon.loaders.js';
import { EventRepository, type EventRecord } from './event.repository.js';
import {
  DeliveryRepository,
  type DeliveryAttemptRecord,
  type DeliveryRecord,
} from './delivery.repository.js';

/** Per-request batch loaders for events and deliveries; each batch is one SQL query. */
export function createEventLoaders(db: DbClient) {
  const events = new EventRepository(db);
  const deliveries = new DeliveryRepository(db);
  return {
    eventById: new DataLoader<string, EventRecord | null>(async (ids) =>
      byKey(ids, await events.findByIds(ids), (e) => e.id),
    ),
    deliveriesByEventId: new DataLoader<string, DeliveryRecord[]>(async (ids) =>
      groupBy(ids, await deliveries.findByEventIds(ids), (d) => d.eventId),
    ),
    attemptsByDeliveryId: new DataLoader<string, DeliveryAttemptRecord[]>(async (ids) =>
      groupBy(ids, await deliveries.attemptsByDeliveryIds(ids), (a) => a.deliveryId),
    ),
  };
}
