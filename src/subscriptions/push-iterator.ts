/**
 * An async iterator fed by `push`, for turning callbacks (pub/sub messages) into the
 * AsyncIterables GraphQL subscriptions consume.
 */
export interface PushIterator<T> extends AsyncIterableIterator<T> {
  push(value: T): void;
  /** Ends the iteration; pending values are still yielded first. */
  end(): void;
  readonly done: boolean;
}

export interface PushIteratorOptions {
  /**
   * Values buffered for a consumer that does not keep up; beyond it the iterator ends (the client
   * sees the subscription complete and catches up with Query.events) instead of growing forever.
   */
  maxBuffered?: number;
  /** Called once when the iteration ends, whoever ends it. */
  onEnd?: () => void;
}

/** Creates a {@link PushIterator}. */
export function createPushIterator<T>(options: PushIteratorOptions = {}): PushIterator<T> {
  const maxBuffered = options.maxBuffered ?? 10_000;
  const queue: T[] = [];
  let waiting: ((result: IteratorResult<T>) => void) | null = null;
  let finished = false;

  const finish = () => {
    if (finished) return;
    finished = true;
    options.onEnd?.();
    if (waiting && queue.length === 0) {
      const resolve = waiting;
      waiting = null;
      resolve({ value: undefined, done: true });
    }
  };

  const iterator: PushIterator<T> = {
    get done() {
      return finished;
    },
    push(value) {
      if (finished) return;
      if (waiting) {
        const resolve = waiting;
        waiting = null;
        resolve({ value, done: false });
        return;
      }
      queue.push(value);
      if (queue.length > maxBuffered) {
        queue.length = 0;
        finish();
      }
    },
    end: finish,
    next() {
      if (queue.length > 0) return Promise.resolve({ value: queue.shift() as T, done: false });
      if (finished) return Promise.resolve({ value: undefined, done: true });
      return new Promise((resolve) => {
        waiting = resolve;
      });
    },
    return() {
      queue.length = 0;
      finish();
      return Promise.resolve({ value: undefined, done: true });
    },
    throw(error?: unknown) {
      queue.length = 0;
      finish();
      return Promise.reject(error instanceof Error ? error : new Error(String(error)));
    },
    [Symbol.asyncIterator]() {
      return iterator;
    },
  };
  return iterator;
}
