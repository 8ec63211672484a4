import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { buildSchema, parse, type ExecutionResult } from 'graphql';
import { createPubSub } from '../infrastructure/pub-sub/pub-sub.js';
import { LiveQuota, SharedSubscriptions } from './shared-subscriptions.js';
import type { AppError } from '../errors/index.js';

const TICKS = parse('subscription { tick }');

/** A schema whose `Subscription.tick` counts the executions it started and yields what `publish` sends. */
function givenTicks() {
  const pubSub = createPubSub<{ ticks: number }>();
  const schema = buildSchema('type Query { ok: Boolean } type Subscription { tick: Int }');
  let executions = 0;
  const rootValue = {
    tick: () => {
      executions += 1;
      return (async function* () {
        for await (const n of pubSub.subscribe('ticks')) yield { tick: n };
      })();
    },
  };
  return {
    shared: new SharedSubscriptions(),
    args: { schema, document: TICKS, rootValue },
    publish: async (n: number) => {
      await pubSub.publish('ticks', n);
      await nextTurn();
    },
    executions: () => executions,
  };
}

type Results = AsyncGenerator<ExecutionResult>;

/** The catalogue code of a result's first error (as the transports' error formatting finds it). */
const codeOf = (result: ExecutionResult | undefined) =>
  (result?.errors?.[0]?.originalError as AppError | undefined)?.code;

/** A result as sent (graphql-js builds data objects without a prototype). */
const sent = (result: unknown): unknown => JSON.parse(JSON.stringify(result));

describe('SharedSubscriptions', () => {
  it('runs equal subscriptions once and hands every result to each subscriber', async () => {
    // given
    const { shared, args, publish, executions } = givenTicks();
    const first = (await shared.subscribe(args, 'same')) as Results;
    const second = (await shared.subscribe(args, 'same')) as Results;
    const [a, b] = [first.next(), second.next()];
    await nextTurn();
    // when
    await publish(1);
    // then
    assert.deepEqual(sent((await a).value), { data: { tick: 1 } });
    assert.deepEqual(sent((await b).value), { data: { tick: 1 } });
    assert.equal(executions(), 1);
    assert.equal(shared.size, 1);
    await first.return(undefined);
    assert.equal(shared.size, 1, 'the other subscriber still reads');
    await second.return(undefined);
    assert.equal(shared.size, 0);
  });

  it('stops the shared execution when its only subscriber is returned before it read anything', async () => {
    // given: graphql-ws returns an operation completed while it was starting, without reading it
    const { shared, args } = givenTicks();
    const subscriber = (await shared.subscribe(args, 'early')) as Results;
    assert.equal(shared.size, 1);
    // when
    await subscriber.return(undefined);
    // then
    assert.equal(shared.size, 0);
  });

  it('ends a subscriber that falls too far behind without holding up the others', async () => {
    // given: two subscribers that read the first result, then one of them stops reading
    const { shared, args, publish } = givenTicks();
    const reader = (await shared.subscribe(args, 'key')) as Results;
    const stalled = (await shared.subscribe(args, 'key')) as Results;
    const firsts = [reader.next(), stalled.next()];
    await nextTurn();
    await publish(0);
    await Promise.all(firsts);
    // when: more results than a subscriber may have buffered
    let last: unknown;
    for (let n = 1; n <= 10_001; n += 1) {
      const next = reader.next();
      await publish(n);
      last = (await next).value;
    }
    // then: the reader kept up to the last result; the stalled one gets what it buffered, then a
    // last result saying why it ends
    assert.deepEqual(sent(last), { data: { tick: 10_001 } });
    const results: ExecutionResult[] = [];
    for await (const result of stalled) results.push(result);
    assert.equal(results.length, 10_001);
    assert.equal(results.filter((result) => result.data).length, 10_000);
    assert.equal(codeOf(results.at(-1)), 'LIVE_STREAM_INTERRUPTED');
    assert.equal(shared.size, 1, 'the reader still subscribes');
    await reader.return(undefined);
    assert.equal(shared.size, 0);
  });

  it('counts what one caller’s subscribers hold against its quota, and gives it back as they read or leave', async () => {
    // given: one caller's two subscriptions sharing a quota of 3 waiting results, and another caller's reader
    const { shared, args, publish } = givenTicks();
    const quota = new LiveQuota(3);
    const a = (await shared.subscribe(args, 'a', quota)) as Results;
    const b = (await shared.subscribe(args, 'b', quota)) as Results;
    const other = (await shared.subscribe(args, 'a', new LiveQuota(3))) as Results;
    const firsts = [a.next(), b.next(), other.next()];
    await nextTurn();
    await publish(0);
    await Promise.all(firsts);
    assert.equal(quota.waiting, 0);

    // when: two results come while the caller reads nothing (two subscriptions: 4 held, cap 3)
    for (const n of [1, 2]) {
      const next = other.next();
      await publish(n);
      await next;
    }

    // then: the fourth result the caller would hold ended subscription b: after what it holds, a
    // last result saying why; a keeps running; the other caller read everything
    const values = async (results: Results, count: number) => {
      const out: unknown[] = [];
      for (let i = 0; i < count; i += 1) {
        const { value } = await results.next();
        out.push(codeOf(value) ?? sent(value.data));
      }
      return out;
    };
    assert.deepEqual(await values(a, 2), [{ tick: 1 }, { tick: 2 }]);
    assert.deepEqual(await values(b, 2), [{ tick: 1 }, 'LIVE_STREAM_INTERRUPTED']);
    assert.equal((await b.next()).done, true);
    assert.equal(quota.waiting, 0, 'every held result was read');
    // and a subscription returned with results held gives them back
    const c = (await shared.subscribe(args, 'c', quota)) as Results;
    const first = c.next();
    await nextTurn();
    await publish(3);
    await first;
    await publish(4);
    assert.equal(quota.waiting, 3, 'a holds ticks 3 and 4, c holds tick 4');
    await a.return(undefined);
    await c.return(undefined);
    await other.return(undefined);
    assert.equal(quota.waiting, 0);
  });

  it('refuses a caller one distinct subscription too many, shares equal ones, and takes one again once one ends', async () => {
    // given: a caller allowed 2 distinct subscriptions, holding 'x' and 'y'
    const { shared, args, executions } = givenTicks();
    const quota = new LiveQuota(100, 2);
    const x = (await shared.subscribe(args, 'x', quota)) as Results;
    const y = (await shared.subscribe(args, 'y', quota)) as Results;

    // when: it asks for 'x' again, then for 'z'
    const again = (await shared.subscribe(args, 'x', quota)) as Results;
    const refused = (await shared.subscribe(args, 'z', quota)) as ExecutionResult;

    // then: 'x' is shared (no third execution), 'z' refused; another caller still gets 'z'
    assert.equal(typeof again.next, 'function');
    assert.equal(refused.errors?.[0].extensions.code, 'TOO_MANY_LIVE_OPERATIONS');
    const other = (await shared.subscribe(args, 'z', new LiveQuota(100, 2))) as Results;
    assert.equal(typeof other.next, 'function');
    assert.deepEqual(
      [...quota.subscriptions.entries()],
      [
        ['x', 2],
        ['y', 1],
      ],
    );

    // when: 'y' ends, 'z' is taken
    await y.return(undefined);
    const z = (await shared.subscribe(args, 'z', quota)) as Results;
    assert.equal(typeof z.next, 'function');
    assert.deepEqual([...quota.subscriptions.keys()].sort(), ['x', 'z']);
    for (const results of [x, again, other, z]) await results.return(undefined);
    assert.equal(quota.subscriptions.size, 0);
    assert.equal(shared.size, 0);
    assert.equal(executions(), 3, 'x, y and z: the second x and the caller’s z joined running ones');
  });
});
