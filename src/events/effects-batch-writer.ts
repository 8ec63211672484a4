import type pg from 'pg';
import {
  EffectsRepository,
  type CommittedEffects,
  type EffectsItem,
  type GenerationBump,
} from './effects.repository.js';

interface Pending {
  item: EffectsItem;
  resolve: (committed: CommittedEffects) => void;
  reject: (error: unknown) => void;
}

/** Statements in flight at once; commits that arrive meanwhile wait and go together. */
const MAX_IN_FLIGHT = 2;
/** Items per statement at most, and rows (events and storage changes): one call may bring a thousand. */
const MAX_BATCH = 500;
const MAX_BATCH_ROWS = 2000;

const storageKey = (c: { addonId: string; siteId: string; key: string }) =>
  `${c.addonId}\u0000${c.siteId}\u0000${c.key}`;

/**
 * Group commit for effects committed outside a transaction: the effects of finished executions
 * (storage writes and events) and Mutation.emitEvent. An item that finds a free slot is written at
 * the end of the current event-loop turn, with the others of that turn: next to no added latency
 * when the platform is quiet. Items that arrive while the slots are busy are written together in
 * the next statement, one round trip and one WAL flush for all of them. Under load each statement
 * and each commit costs far more than the rows it carries (on this project's 2-core reference
 * machine a statement's round trip costs the API process about 250 microseconds of CPU), so this
 * is what lets one instance take thousands of events a second.
 *
 * Each item is atomic and gets its own promise: it resolves once its rows are committed. A failing
 * batch is retried one item at a time, so one bad item (e.g. data PostgreSQL's jsonb refuses) fails
 * alone. Two items writing the same storage key never share a statement: the later one waits for
 * the next.
 */
export class EffectsBatchWriter {
  private queue: Pending[] = [];
  private inFlight = 0;
  private scheduled = false;
  /** Storage keys written by the statements in flight: an item writing one of them waits. */
  private readonly writing = new Map<string, number>();

  constructor(
    private readonly pool: pg.Pool,
    private readonly maxAttempts: number,
  ) {}

  /** Commits one item; resolves with its stored events and the generations it bumped. */
  commit(item: EffectsItem): Promise<CommittedEffects> {
    return new Promise((resolve, reject) => {
      this.queue.push({ item, resolve, reject });
      this.schedule();
    });
  }

  /**
   * Writes at the end of this event-loop turn rather than at once: the commits of one turn (under
   * load one turn reads several HTTP requests and worker results) share a statement, for the price
   * of a few microseconds.
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
      const { batch, keys } = this.take();
      if (batch.length === 0) return; // its first item waits for a statement in flight
      this.inFlight += 1;
      for (const key of keys) this.writing.set(key, (this.writing.get(key) ?? 0) + 1);
      void this.write(batch).finally(() => {
        this.inFlight -= 1;
        for (const key of keys) {
          const left = this.writing.get(key)! - 1;
          if (left === 0) this.writing.delete(key);
          else this.writing.set(key, left);
        }
        this.schedule();
      });
    }
  }

  /**
   * The next batch: items in order, up to one that writes a storage key already in the batch or
   * in a statement in flight (so the writes of one key commit in the order they came).
   */
  private take(): { batch: Pending[]; keys: Set<string> } {
    const keys = new Set<string>();
    let count = 0;
    let rows = 0;
    for (; count < this.queue.length && count < MAX_BATCH; count += 1) {
      const { item } = this.queue[count];
      const own = item.storage.map(storageKey);
      if (own.some((key) => keys.has(key) || this.writing.has(key))) break;
      rows += item.events.length + item.storage.length;
      if (count > 0 && rows > MAX_BATCH_ROWS) break;
      for (const key of own) keys.add(key);
    }
    return { batch: this.queue.splice(0, count), keys };
  }

  private async write(batch: Pending[]): Promise<void> {
    let committed: CommittedEffects;
    try {
      committed = await EffectsRepository.commitBatch(
        this.pool,
        batch.map((pending) => pending.item),
        this.maxAttempts,
      );
    } catch (error) {
      if (batch.length === 1) {
        batch[0].reject(error);
        return;
      }
      // Nothing of the batch was written (one statement): find the culprit one item at a time.
      await Promise.all(batch.map((pending) => this.write([pending])));
      return;
    }
    const events = new Map(committed.events.map((event) => [event.id, event]));
    const generations = new Map<string, GenerationBump>(
      committed.generations.map((g) => [`${g.siteId}:${g.addonId}`, g]),
    );
    for (const { item, resolve, reject } of batch) {
      const own = item.events.map(({ event }) => events.get(event.id));
      if (own.some((record) => record === undefined)) {
        reject(new Error('an event was not returned by its batch insert'));
        continue;
      }
      resolve({
        events: own as CommittedEffects['events'],
        generations: item.bumps.flatMap((b) => generations.get(`${b.siteId}:${b.addonId}`) ?? []),
      });
    }
  }
}
