import { setTimeout as sleep } from 'node:timers/promises';
import { print } from 'graphql';
import WebSocket from 'ws';
import { createClient, type Client } from 'graphql-ws';
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { InstallAddonDocument } from '../generated/graphql.js';
import type { GraphQLClient } from '../support/graphql-client.js';
import { givenPublished, manifest, type givenSite } from '../support/fixtures.js';

/** Polls `probe` until it returns something other than undefined, or fails after `timeoutMs`. */
export async function eventually<T>(
  probe: () => Promise<T | undefined>,
  what: string,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline)
      throw new Error(`timed out waiting for ${what}${last ? `: ${String(last)}` : ''}`);
    await sleep(25);
  }
}

/** Publishes an addon with `source` and installs it on an existing site. */
export async function givenAddonOnSite(
  developer: GraphQLClient,
  site: Awaited<ReturnType<typeof givenSite>>,
  overrides: Record<string, unknown>,
  source: string,
  config: Record<string, unknown> = {},
) {
  const m = manifest({ configSchema: { type: 'object' }, widgets: [], functions: [], ...overrides });
  await givenPublished(developer, m, source);
  await site.client.ok(InstallAddonDocument, { id: m.name as string, config });
  return m.name as string;
}

/** A graphql-ws client as a dashboard would open it, with the key in `connection_init`. */
export function liveClient(httpUrl: string, key: string | null, options: { retry?: boolean } = {}): Client {
  return createClient({
    url: `${httpUrl.replace(/^http/, 'ws')}/graphql`,
    webSocketImpl: WebSocket,
    connectionParams: key ? { authorization: `Bearer ${key}` } : {},
    lazy: false,
    retryAttempts: options.retry ? 50 : 0,
    retryWait: async () => sleep(100),
    shouldRetry: () => options.retry === true,
    onNonLazyError: () => undefined,
  });
}

/** A running subscription: what it received so far, and a way to wait for more. */
export interface LiveSubscription<R> {
  received: R[];
  errors: unknown[];
  /** Resolves with the first received item (past or future) that satisfies `predicate`. */
  next(predicate?: (item: R) => boolean, timeoutMs?: number): Promise<R>;
  stop(): void;
}

export function subscribe<R, V>(
  client: Client,
  document: TypedDocumentNode<R, V>,
  variables?: V,
): LiveSubscription<R> {
  const received: R[] = [];
  const errors: unknown[] = [];
  const waiters: { predicate: (item: R) => boolean; resolve: (item: R) => void }[] = [];
  const stop = client.subscribe<R>(
    { query: print(document), variables: (variables ?? {}) as Record<string, unknown> },
    {
      next: (result) => {
        if (result.errors) errors.push(...result.errors);
        if (!result.data) return;
        const item = result.data as R;
        received.push(item);
        for (const waiter of [...waiters]) {
          if (waiter.predicate(item)) {
            waiters.splice(waiters.indexOf(waiter), 1);
            waiter.resolve(item);
          }
        }
      },
      error: (error) => errors.push(error),
      complete: () => undefined,
    },
  );
  return {
    received,
    errors,
    next(predicate = () => true, timeoutMs = 10_000) {
      const found = received.find(predicate);
      if (found) return Promise.resolve(found);
      return new Promise<R>((resolve, reject) => {
        const timer = setTimeout(() => {
          reject(
            new Error(
              `no matching message in ${timeoutMs} ms (got ${JSON.stringify(received)}, errors ${JSON.stringify(errors)})`,
            ),
          );
        }, timeoutMs);
        waiters.push({
          predicate,
          resolve: (item) => {
            clearTimeout(timer);
            resolve(item);
          },
        });
      });
    },
    stop,
  };
}

/**
 * graphql-ws has no "subscribed" acknowledgement: emits `probe()` until `subscription` sees an item
 * matching `isProbe`, so what the test emits next is known to be listened for.
 */
export async function untilListening<R>(
  subscription: LiveSubscription<R>,
  probe: () => Promise<unknown>,
  isProbe: (item: R) => boolean,
): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!subscription.received.some(isProbe)) {
    if (Date.now() > deadline)
      throw new Error(`subscription never received a probe: ${JSON.stringify(subscription.errors)}`);
    await probe();
    await subscription.next(isProbe, 200).catch(() => undefined);
  }
}
