import { FixedBuffer, Repeater } from '@repeaterjs/repeater';
import type { Database } from '../infrastructure/database/database.js';
import type { Listening, PubSub } from '../infrastructure/pub-sub/pub-sub.js';
import { LiveStreamInterruptedError } from '../errors/index.js';
import { EventRepository, type EventPosition, type EventRecord } from './event.repository.js';
import type { EventTopics } from './live-payloads.js';

/** Events read from the outbox per query. */
const PAGE = 500;

interface TailSubscriber {
  deliver(event: EventRecord): void;
}

export interface EventTailOptions {
  /** How often the outbox is read while Redis carries the wake-ups (they may still be lost). */
  pollMs: number;
  /** How often while this instance has no Redis connection (nothing wakes the tail then). */
  pollWithoutRedisMs: number;
}

export const DEFAULT_EVENT_TAIL_OPTIONS: EventTailOptions = { pollMs: 1_000, pollWithoutRedisMs: 250 };

/**
 * The live event feed of one instance, read from the PostgreSQL outbox rather than carried by
 * Redis. While anyone on this instance subscribes, it reads the events stored after the last one
 * it read, in stream order (see EventPosition): woken at once by the `events` topic when any
 * instance stores some, and by its own timer, so an event whose message was lost (Redis away, a
 * publisher killed after its commit) arrives at the next poll instead of never. Every subscriber
 * gets every event stored while it subscribes, once, in order: a Redis outage delays the feed,
 * and never makes it skip. One query per wake-up for the whole instance, whatever the number of
 * subscribers.
 */
export class EventTail {
  private readonly subscribers = new Set<TailSubscriber>();
  private position: EventPosition | null = null;
  private listening: Listening | null = null;
  private unwatch: (() => void) | null = null;
  private timer: NodeJS.Timeout | null = null;
  private reading: Promise<void> | null = null;
  private readAgain = false;
  private readonly options: EventTailOptions;

  constructor(
    private readonly deps: {
      database: Database;
      pubSub: PubSub<EventTopics>;
      onError?: (error: unknown, message: string) => void;
    },
    options: Partial<EventTailOptions> = {},
  ) {
    this.options = { ...DEFAULT_EVENT_TAIL_OPTIONS, ...options };
  }

  /**
   * The events stored from now on, each turned into an item by `select` (null skips it), as an async
   * iterator that starts with its first `next`. A consumer more than `maxBuffered` items behind is
   * ended with a LiveStreamInterruptedError rather than buffered without bound.
   */
  subscribe<R>(select: (event: EventRecord) => R | null, maxBuffered = 10_000): AsyncIterableIterator<R> {
    const buffer = new FixedBuffer(maxBuffered);
    return new Repeater<R>(async (push, stop) => {
      const subscriber: TailSubscriber = {
        deliver: (event) => {
          const item = select(event);
          if (item === null) return;
          if (buffer.full) stop(new LiveStreamInterruptedError('fell-behind'));
          else void push(item);
        },
      };
      this.subscribers.add(subscriber);
      this.start();
      await stop;
      this.subscribers.delete(subscriber);
      if (this.subscribers.size === 0) this.stop();
    }, buffer);
  }

  /** Subscribers on this instance (tests, metrics). */
  get size(): number {
    return this.subscribers.size;
  }

  close(): void {
    this.subscribers.clear();
    this.stop();
  }

  private start(): void {
    if (this.listening) return;
    this.listening = this.deps.pubSub.listen('events', () => this.wake());
    this.unwatch = this.deps.pubSub.connection.watch(() => this.schedule());
    this.wake();
  }

  private stop(): void {
    this.listening?.stop();
    this.listening = null;
    this.unwatch?.();
    this.unwatch = null;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    // The next subscriber starts from the end of the stream as it is then.
    this.position = null;
  }

  private wake(): void {
    if (!this.listening) return;
    if (this.reading) {
      this.readAgain = true;
      return;
    }
    this.reading = this.read().finally(() => {
      this.reading = null;
      if (this.readAgain) {
        this.readAgain = false;
        this.wake();
      } else this.schedule();
    });
  }

  /** The next poll, sooner while Redis is away. */
  private schedule(): void {
    if (!this.listening) return;
    if (this.timer) clearTimeout(this.timer);
    const delay = this.deps.pubSub.connection.up ? this.options.pollMs : this.options.pollWithoutRedisMs;
    this.timer = setTimeout(() => this.wake(), delay);
    this.timer.unref();
  }

  private async read(): Promise<void> {
    const repository = new EventRepository(this.deps.database.prisma);
    try {
      if (this.position === null) {
        const [newest] = await repository.list(everything(null, 1, true));
        this.position = newest ? { txid: newest.txid, seq: newest.seq } : { txid: 0n, seq: 0n };
        if (!this.listening) this.position = null;
        return;
      }
      for (;;) {
        const rows = await repository.list(everything(this.position, PAGE, false));
        // Stopped meanwhile (the last subscriber left): its successor starts afresh.
        if (!this.listening || this.position === null) return;
        for (const event of rows) {
          for (const subscriber of this.subscribers) subscriber.deliver(event);
        }
        if (rows.length > 0) {
          const last = rows[rows.length - 1];
          this.position = { txid: last.txid, seq: last.seq };
        }
        if (rows.length < PAGE) return;
      }
    } catch (error) {
      // PostgreSQL away: the next poll reads from the same position.
      this.deps.onError?.(error, 'could not read stored events for the live feed');
    }
  }
}

const everything = (after: EventPosition | null, take: number, newest: boolean) => ({
  after,
  names: [],
  source: null,
  siteId: null,
  sourceAddonIds: null,
  take,
  newest,
});
