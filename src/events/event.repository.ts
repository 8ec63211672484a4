import type { DbClient } from '../infrastructure/database/database.js';
import type { Event, Prisma } from '../generated/prisma/client.js';

export type EventRecord = Event;

/** Stored events: the record of what happened, written before anyone is told. */
export class EventRepository {
  constructor(private readonly db: DbClient) {}

  create(data: {
    name: string;
    sourceAddonId: string | null;
    source: string;
    siteId: string | null;
    data: unknown;
    requestId?: string | null;
  }): Promise<EventRecord> {
    return this.db.event.create({ data: { ...data, data: data.data as Prisma.InputJsonValue } });
  }
}
