import type pg from 'pg';
import { EventRepository, type EventRecord, type NewDelivery, type NewEvent } from './event.repository.js';

interface Pending {
  event: NewEvent;
  deliveries: NewDelivery[];
  resolve: (record: EventRecord) => void;
  reject: (error: unknown) => void;
}

/** Statements in flight at once; emits that arrive meanwhile wait and go together. */
const MAX_IN_FLIGHT = 2;
/** Events per statement at most. */
const MAX_BATCH = 500;

/**
 * Group commit for events emitted outside a transaction (Mutation.emitEvent, ctx.events.emit in
 * a function call). An emit that finds a free slot is written at the end of the current event-loop
 * turn, with the others of that turn: next to no added latency when the platform is quiet. Emits
 * that arrive while the slots are busy are written together in the next statement, one round trip
 * and one WAL flush for all of them. Under load each statement and each commit costs far more than
 * the rows it carries (on this project's 2-core reference machine a statement's round trip costs
 * the API process about 250 microseconds of CPU), so this is what lets one instance take thousands
 * of events a second.
 *
 * Each event still gets its own promise: it resolves once its row is committed. A failing batch is
 * retried one event at a time, so one bad event (e.g. data PostgreSQL's jsonb refuses) fails alone.
 */
export class EventBatchWriter {
  private queue: Pending[] = [];
  private inFlight = 0;
  private scheduled = false;

  constructor(
    private readonly pool: pg.Pool,
    private readonly maxAttempts: number,
  ) {}

  /** Stores an event with its deliveries; resolves with the committed row. */
  insert(event: NewEvent, deliveries: NewDelivery[]): Promise<EventRecord> {
    return new Promise((resolve, reject) => {
      this.queue.push({ event, deliveries, resolve, reject });
      this.schedule();
    });
  }

  /**
   * Writes at the end of this event-loop turn rather than at once: the emits of one turn (the ten
   * `ctx.events.emit` of one addon call arrive in one IPC message; under load one turn reads
   * several HTTP requests) share a statement, for the price of a few microseconds.
   */
  private schedule(): void {
    if (this.scheduled || this.inFlight >= MAX_IN_FLIGHT) return;
    this.scheduled = true;
    setImmediate(() => {
      this.scheduled = false;
      this.drain();
    });
  }

  private drain(): void {
    while (this.inFlight < MAX_IN_FLIGHT && this.queue.length > 0) {
      const batch = this.queue.splice(0, MAX_BATCH);
      this.inFlight += 1;
      void this.write(batch).finally(() => {
        this.inFlight -= 1;
        this.schedule();
      });
    }
  }

  private async write(batch: Pending[]): Promise<void> {
    let records: Map<string, EventRecord>;
    try {
      records = await EventRepository.insertBatch(this.pool, batch, this.maxAttempts);
    } catch (error) {
      if (batch.length === 1) {
        batch[0].reject(error);
        return;
      }
      // Nothing of the batch was written (one statement): find the culprit one event at a time.
      await Promise.all(batch.map((item) => this.write([item])));
      return;
    }
    for (const item of batch) {
      const record = records.get(item.event.id);
      if (record) item.resolve(record);
      else item.reject(new Error(`event ${item.event.id} was not returned by its batch insert`));
    }
  }
}
