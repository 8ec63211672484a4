import { GraphQLError, subscribe, type ExecutionArgs, type ExecutionResult } from 'graphql';
import { FixedBuffer, Repeater, type RepeaterExecutor } from '@repeaterjs/repeater';
import { ErrorCode, LiveStreamInterruptedError } from '../errors/index.js';

type Source = AsyncIterator<ExecutionResult> & { return?: () => Promise<unknown> };

/** How the group hands results to one subscriber that is reading. */
interface Listener {
  push(result: ExecutionResult): void;
  end(): void;
}

interface Group {
  /** Resolves to the shared source, or to a single result (errors) that ends every subscriber. */
  started: Promise<Source | ExecutionResult>;
  /** Subscribers that have not left, whether or not they started reading. */
  members: number;
  listeners: Set<Listener>;
  source: Source | null;
  closed: boolean;
}

/** Results buffered for a subscriber that does not keep up; beyond it the subscriber is ended. */
const MAX_BUFFERED = 10_000;

/**
 * What one caller (a key, or an IP) holds of the live transport on this instance, against caps:
 * results handed to its subscribers and not yet taken by their sockets (a caller that stops reading
 * is ended at the cap, so what it leaves waiting is bounded however many subscriptions it holds),
 * and the distinct subscriptions it runs (each costs an execution per message, however many of its
 * sockets share it). Neither ever counts against another caller.
 */
export class LiveQuota {
  waiting = 0;
  /** Distinct subscriptions (share keys) the caller holds, with how many of its subscribers each. */
  readonly subscriptions = new Map<string, number>();

  constructor(
    readonly maxWaiting: number,
    readonly maxSubscriptions = Infinity,
  ) {}
}

const isAsyncIterable = (value: unknown): value is AsyncIterable<ExecutionResult> =>
  typeof (value as AsyncIterable<unknown>)?.[Symbol.asyncIterator] === 'function';

/**
 * One subscriber's results. A repeater runs its executor only from the first read, so one returned
 * before reading (graphql-ws does that to an operation completed while it started) leaves here.
 */
class Subscriber extends Repeater<ExecutionResult> {
  /** Results pushed to this subscriber and not taken yet (counted in its caller's quota). */
  held = 0;

  constructor(
    executor: RepeaterExecutor<ExecutionResult>,
    buffer: FixedBuffer,
    private readonly leave: () => void,
    private readonly quota: LiveQuota,
  ) {
    super(executor, buffer);
  }

  override async next(value?: unknown): Promise<IteratorResult<ExecutionResult>> {
    const result = await super.next(value as never);
    if (!result.done && this.held > 0) {
      this.held -= 1;
      this.quota.waiting -= 1;
    }
    return result;
  }

  override return(value?: unknown): Promise<IteratorResult<ExecutionResult>> {
    // What it still holds will not be read. An ended subscriber keeps counting what it holds until
    // then, so a caller cannot fill its quota again on other subscriptions.
    this.quota.waiting -= this.held;
    this.held = 0;
    this.leave();
    return super.return(value as never);
  }
}

/**
 * Runs each distinct subscription once per instance and hands every result to all its subscribers.
 * "Distinct" is the caller's `key`: the operation text, variables and everything in the context
 * that changes results (what the key may see). With many dashboards on the same subscription, a
 * message costs one execution instead of one per socket.
 */
export class SharedSubscriptions {
  private readonly groups = new Map<string, Group>();

  /** Called when a subscriber is ended for falling behind, or refused for its caller's share (metrics). */
  constructor(private readonly options: { onFellBehind?: () => void; onRefused?: () => void } = {}) {}

  /** Distinct subscriptions running now (for tests and metrics). */
  get size(): number {
    return this.groups.size;
  }

  /**
   * Joins (or starts) the execution of `key` for a caller with `quota`: refused (a result with
   * TOO_MANY_LIVE_OPERATIONS) when `key` would be one distinct subscription too many for it.
   * Results waiting for this subscriber count in the quota, and past its cap (or
   * {@link MAX_BUFFERED} of its own) the subscriber is ended: once it has read what it holds, a
   * last result with LIVE_STREAM_INTERRUPTED, then completion.
   */
  async subscribe(
    args: ExecutionArgs,
    key: string,
    quota: LiveQuota = new LiveQuota(MAX_BUFFERED),
  ): Promise<AsyncIterableIterator<ExecutionResult> | ExecutionResult> {
    const sameHeld = quota.subscriptions.get(key) ?? 0;
    if (sameHeld === 0 && quota.subscriptions.size >= quota.maxSubscriptions) {
      this.options.onRefused?.();
      const max = quota.maxSubscriptions;
      return {
        errors: [
          new GraphQLError(
            `This key runs ${max} distinct subscriptions on this server, the most one key may; complete one first (equal subscriptions, the same document and variables, count once).`,
            { extensions: { code: ErrorCode.TooManyLiveOperations, max } },
          ),
        ],
      };
    }
    quota.subscriptions.set(key, sameHeld + 1);
    let group = this.groups.get(key);
    if (!group || group.closed) {
      group = this.start(args, key);
    }
    const current = group;
    current.members += 1;
    let left = false;
    const leave = () => {
      if (left) return;
      left = true;
      const held = quota.subscriptions.get(key)! - 1;
      if (held === 0) quota.subscriptions.delete(key);
      else quota.subscriptions.set(key, held);
      current.members -= 1;
      if (current.members === 0) this.close(key, current);
    };
    const buffer = new FixedBuffer(MAX_BUFFERED);
    const subscriber: Subscriber = new Subscriber(
      async (push, stop) => {
        const listener: Listener = {
          // A subscriber this far behind is ended (it catches up from the stored records).
          push: (result) => {
            if (buffer.full || quota.waiting >= quota.maxWaiting) {
              // Its last message says why, as when the source fails (see pump), then it completes.
              const behind = new LiveStreamInterruptedError('fell-behind');
              void push({ errors: [new GraphQLError(behind.message, { originalError: behind })] });
              stop();
              this.options.onFellBehind?.();
              return;
            }
            subscriber.held += 1;
            quota.waiting += 1;
            void push(result);
          },
          end: () => stop(),
        };
        current.listeners.add(listener);
        if (current.closed) stop();
        await stop;
        current.listeners.delete(listener);
        leave();
      },
      buffer,
      leave,
      quota,
    );
    const started = await current.started;
    if (!isAsyncIterable(started as unknown)) {
      leave();
      return started as ExecutionResult;
    }
    return subscriber;
  }

  private start(args: ExecutionArgs, key: string): Group {
    const group: Group = {
      started: Promise.resolve({}),
      members: 0,
      listeners: new Set(),
      source: null,
      closed: false,
    };
    group.started = (async () => {
      const result = await subscribe(args);
      if (!isAsyncIterable(result)) {
        this.close(key, group);
        return result;
      }
      const source = result[Symbol.asyncIterator]() as Source;
      group.source = source;
      if (group.closed) {
        void source.return?.();
        return source;
      }
      void this.pump(key, group, source);
      return source;
    })();
    this.groups.set(key, group);
    return group;
  }

  private async pump(key: string, group: Group, source: Source): Promise<void> {
    try {
      for (;;) {
        const { value, done } = await source.next();
        if (done || group.closed) break;
        for (const listener of group.listeners) listener.push(value);
      }
    } catch (error) {
      // Formatted like any resolver error: a catalogue error (LIVE_STREAM_INTERRUPTED) keeps its code.
      const failure =
        error instanceof GraphQLError
          ? error
          : new GraphQLError(error instanceof Error ? error.message : String(error), {
              originalError: error instanceof Error ? error : undefined,
            });
      for (const listener of group.listeners) listener.push({ errors: [failure] });
    } finally {
      for (const listener of [...group.listeners]) listener.end();
      this.close(key, group);
    }
  }

  private close(key: string, group: Group): void {
    if (group.closed) return;
    group.closed = true;
    if (this.groups.get(key) === group) this.groups.delete(key);
    void group.source?.return?.();
  }
}
