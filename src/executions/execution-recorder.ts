import { randomUUID } from 'node:crypto';
import type { Database } from '../infrastructure/database/database.js';
import type { PubSub } from '../infrastructure/pub-sub/pub-sub.js';
import { RawJson } from '../shared/raw-json.js';
import { isDataError, storableText, truncateUtf8 } from '../shared/storable-text.js';
import { ExecutionRepository, type NewExecution } from './execution.repository.js';
import type { LogQuota } from './log-quota.js';

/** Characters of an error message kept with a record. */
const MAX_ERROR_CHARS = 1000;

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
  /** Caps the log bytes stored per execution and per site and day; without it logs are kept as given. */
  logQuota?: LogQuota;
  onError?: (error: unknown) => void;
}

/**
 * Keeps execution records off the request path: `record` only buffers, and batches are written
 * with one INSERT each. A record is listable within one flush interval. Each record is also
 * published when buffered, not when stored: dashboards see runs at once, and a record lost with a
 * crash before its batch is written was never promised to anyone.
 *
 * Records carry addon text (logs, error messages): it is made storable when recorded (NUL and
 * unpaired surrogates replaced, cuts on code point boundaries) and logs are capped by the
 * {@link LogQuota}. A batch PostgreSQL still refuses is written again row by row, so one bad row
 * costs only itself, never the other sites' records in its batch.
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
    const { logs, truncated } = this.storableLogs(execution.siteId, execution.addonId, execution.logs);
    const row: NewExecution = {
      ...execution,
      id: execution.id ?? randomUUID(),
      errorMessage:
        execution.errorMessage === null ? null : storableText(execution.errorMessage, MAX_ERROR_CHARS),
      logs,
      logsTruncated: execution.logsTruncated || truncated,
    };
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

  /**
   * Log entries with storable messages, within the per-execution cap and what is left of the
   * site's and the addon's daily budget; later entries are cut first.
   */
  private storableLogs(
    siteId: string | null,
    addonId: string,
    logs: unknown,
  ): { logs: unknown; truncated: boolean } {
    if (!Array.isArray(logs)) return { logs: [], truncated: false };
    const quota = this.options.logQuota;
    const entries = logs.map((entry) => {
      if (typeof entry !== 'object' || entry === null) return { entry, bytes: 0 };
      const message = (entry as { message?: unknown }).message;
      if (typeof message !== 'string') return { entry, bytes: 0 };
      const text = storableText(message);
      return { entry: { ...entry, message: text }, bytes: Buffer.byteLength(text) };
    });
    if (!quota) return { logs: entries.map((e) => e.entry), truncated: false };
    const wanted = entries.reduce((sum, e) => sum + e.bytes, 0);
    let allowed = quota.admit(siteId, wanted, addonId);
    if (allowed >= wanted) return { logs: entries.map((e) => e.entry), truncated: false };
    const kept: unknown[] = [];
    for (const { entry, bytes } of entries) {
      if (bytes <= allowed) {
        kept.push(entry);
        allowed -= bytes;
        continue;
      }
      if (allowed > 0) {
        const message = (entry as { message: string }).message;
        kept.push({ ...(entry as object), message: truncateUtf8(message, allowed) });
      }
      break;
    }
    return { logs: kept, truncated: true };
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
        await this.write(batch.slice(i, i + this.maxBatch));
      }
      await this.options.logQuota?.sync();
    });
    return this.flushing;
  }

  /** Writes a batch; when PostgreSQL refuses its data, each row on its own. */
  private async write(rows: string[]): Promise<void> {
    try {
      await ExecutionRepository.insertJson(this.database.pool, rows);
    } catch (error) {
      if (rows.length === 1 || !isDataError(error)) {
        this.options.onError?.(error);
        return;
      }
      for (const row of rows) {
        try {
          await ExecutionRepository.insertJson(this.database.pool, [row]);
        } catch (rowError) {
          this.options.onError?.(rowError);
        }
      }
    }
  }
}
