import { randomUUID } from 'node:crypto';
import type { Database } from '../infrastructure/database/database.js';
import { ExecutionRepository, type NewExecution } from './execution.repository.js';

export interface ExecutionRecorderOptions {
  /** Flush at the latest this long after the first buffered record. */
  flushIntervalMs?: number;
  /** Flush as soon as this many records are buffered. */
  maxBatch?: number;
  /** Records kept when the database is unreachable; older ones are dropped beyond it. */
  maxBuffered?: number;
  onError?: (error: unknown) => void;
}

/**
 * Keeps execution records off the request path: `record` only buffers, and batches are written
 * with one INSERT each. A record is listable within one flush interval.
 */
export class ExecutionRecorder {
  /** Records as JSON: each is serialised once, when recorded, for the batch and the live feed. */
  private buffer: string[] = [];
  private timer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();
  private readonly flushIntervalMs: number;
  private readonly maxBatch: number;
  private readonly maxBuffered: number;

  constructor(
    private readonly database: Database,
    private readonly options: ExecutionRecorderOptions = {},
  ) {
    this.flushIntervalMs = options.flushIntervalMs ?? 200;
    this.maxBatch = options.maxBatch ?? 500;
    this.maxBuffered = options.maxBuffered ?? 50_000;
  }

  /** Buffers a record and returns its id. */
  record(execution: NewExecution): string {
    const row = execution.id === undefined ? { ...execution, id: randomUUID() } : execution;
    // Serialised now rather than at flush: a flush of hundreds of records would hold the event
    // loop for milliseconds, and the live feed reuses the same text.
    const json = JSON.stringify(row);
    this.recorded(json);
    if (this.buffer.length >= this.maxBuffered) this.buffer.shift();
    this.buffer.push(json);
    if (this.buffer.length >= this.maxBatch) void this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.flushIntervalMs);
      this.timer.unref();
    }
    return row.id!;
  }

  /** Called with each record's JSON as it is buffered (the live feed publishes it). */
  protected recorded(_json: string): void {
    // Nothing to do here; subclasses publish.
  }

  /** Writes everything buffered; resolves when it is stored. */
  flush(): Promise<void> {
    if (this.timer) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    const batch = this.buffer;
    this.buffer = [];
    this.flushing = this.flushing.then(async () => {
      for (let i = 0; i < batch.length; i += this.maxBatch) {
        const slice = batch.slice(i, i + this.maxBatch);
        try {
          await ExecutionRepository.insertJson(this.database.pool, slice);
        } catch (error) {
          this.options.onError?.(error);
        }
      }
    });
    return this.flushing;
  }
}
