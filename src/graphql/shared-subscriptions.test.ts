import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { buildSchema, parse, type ExecutionResult } from 'graphql';
import { createPubSub } from '../infrastructure/pub-sub/pub-sub.js';
import { SharedSubscriptions } from './shared-subscriptions.js';

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
    // then: the reader kept up to the last result; the stalled one gets what it buffered, then ends
    assert.deepEqual(sent(last), { data: { tick: 10_001 } });
    let buffered = 0;
    for await (const result of stalled) if (result) buffered += 1;
    assert.equal(buffered, 10_000);
    assert.equal(shared.size, 1, 'the reader still subscribes');
    await reader.return(undefined);
    assert.equal(shared.size, 0);
  });
});
