import { randomUUID } from 'node:crypto';
import type { Database } from '../infrastructure/database/database.js';
import type { PubSub } from '../infrastructure/pub-sub/pub-sub.js';
import { RawJson } from '../shared/raw-json.js';
import { ExecutionRepository, type NewExecution } from './execution.repository.js';

/** An execution record as the live feed carries it (JSON: the date as a string). */
export type LiveExecution = Omit<NewExecution, 'createdAt'> & { id: string; createdAt: string };

/** The executions' pub/sub topic: each record as it is buffered, for Subscription.executions. */
export interface ExecutionTopics {
  executions: LiveExecution;
}

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
 * with one INSERT each. A record is listable within one flush interval. Each record is also
 * published when buffered, not when stored: dashboards see runs at once, and a record lost with a
 * crash before its batch is written was never promised to anyone.
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
    private readonly pubSub?: PubSub<ExecutionTopics>,
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
    // Published as serialised: dates arrive as the ISO strings of LiveExecution.
    this.pubSub?.publish('executions', new RawJson(json)).catch(() => undefined);
    if (this.buffer.length >= this.maxBuffered) this.buffer.shift();
    this.buffer.push(json);
    if (this.buffer.length >= this.maxBatch) void this.flush();
    else if (!this.timer) {
      this.timer = setTimeout(() => void this.flush(), this.flushIntervalMs);
      this.timer.unref();
    }
    return row.id!;
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
