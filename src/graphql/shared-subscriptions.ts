import { subscribe, type ExecutionArgs, type ExecutionResult } from 'graphql';
import { createPushIterator, type PushIterator } from '../subscriptions/push-iterator.js';

type Source = AsyncIterator<ExecutionResult> & { return?: () => Promise<unknown> };

interface Group {
  /** Resolves to the shared source, or to a single result (errors) that ends every subscriber. */
  started: Promise<Source | ExecutionResult>;
  listeners: Set<PushIterator<ExecutionResult>>;
  source: Source | null;
  closed: boolean;
}

const isAsyncIterable = (value: unknown): value is AsyncIterable<ExecutionResult> =>
  typeof (value as AsyncIterable<unknown>)?.[Symbol.asyncIterator] === 'function';

/**
 * Runs each distinct subscription once per instance and hands every result to all its subscribers.
 * "Distinct" is the caller's `key`: the operation text, variables and everything in the context
 * that changes results (what the key may see). With many dashboards on the same subscription, a
 * message costs one execution instead of one per socket.
 */
export class SharedSubscriptions {
  private readonly groups = new Map<string, Group>();

  /** Distinct subscriptions running now (for tests and metrics). */
  get size(): number {
    return this.groups.size;
  }

  async subscribe(
    args: ExecutionArgs,
    key: string,
  ): Promise<AsyncIterableIterator<ExecutionResult> | ExecutionResult> {
    let group = this.groups.get(key);
    if (!group || group.closed) {
      group = this.start(args, key);
    }
    const current = group;
    const listener = createPushIterator<ExecutionResult>({
      maxBuffered: 10_000,
      onEnd: () => {
        current.listeners.delete(listener);
        if (current.listeners.size === 0) this.close(key, current);
      },
    });
    current.listeners.add(listener);
    const started = await current.started;
    if (!isAsyncIterable(started as unknown)) {
      listener.end();
      return started as ExecutionResult;
    }
    return listener;
  }

  private start(args: ExecutionArgs, key: string): Group {
    const group: Group = { started: Promise.resolve({}), listeners: new Set(), source: null, closed: false };
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
      const message = error instanceof Error ? error.message : String(error);
      for (const listener of group.listeners) listener.push({ errors: [{ message } as never] });
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
