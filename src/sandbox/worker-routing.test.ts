import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  BUSY_LOAD,
  BUSY_QUEUE,
  PACK_LIMIT,
  SPILL_AFTER_MS,
  pickWorker,
  type RoutableWorker,
} from './worker-supervisor.js';

interface FakeWorker extends RoutableWorker {
  name: string;
}

/** A worker in the given state; its oldest call in flight was sent `oldestAgeMs` ago. */
function worker(
  name: string,
  state: { inFlight?: number; load?: number; oldestAgeMs?: number; ready?: boolean } = {},
) {
  const inFlight = state.inFlight ?? 0;
  const fake: FakeWorker = {
    name,
    ready: state.ready ?? true,
    inFlight: { size: inFlight },
    load: state.load ?? 0,
    oldestCallAge: () => (inFlight === 0 ? 0 : (state.oldestAgeMs ?? 0)),
  };
  return fake;
}

const NOW = 1000;
const pick = (slots: (FakeWorker | null)[], home = 0) =>
  pickWorker(slots, home, NOW, SPILL_AFTER_MS)?.name ?? null;

describe('sandbox call routing (pickWorker)', () => {
  it('sends a call to its home worker when that worker is idle or has room', () => {
    assert.equal(pick([worker('a'), worker('b')]), 'a');
    assert.equal(pick([worker('a'), worker('b')], 1), 'b');
    assert.equal(pick([worker('a', { inFlight: PACK_LIMIT - 1 }), worker('b')]), 'a');
  });

  it(`passes over a home with ${PACK_LIMIT} calls in flight`, () => {
    assert.equal(pick([worker('a', { inFlight: PACK_LIMIT }), worker('b', { inFlight: 1 })]), 'b');
  });

  it(`passes over a home whose oldest call is ${SPILL_AFTER_MS} ms old`, () => {
    assert.equal(
      pick([worker('a', { inFlight: 1, oldestAgeMs: SPILL_AFTER_MS }), worker('b', { inFlight: 1 })]),
      'b',
    );
    assert.equal(
      pick([worker('a', { inFlight: 1, oldestAgeMs: SPILL_AFTER_MS - 0.5 }), worker('b')]),
      'a',
      'a younger oldest call keeps the call home',
    );
  });

  it(`passes over a saturated home: ${BUSY_QUEUE} calls in flight and an event loop busy ${BUSY_LOAD} of the time`, () => {
    const saturated = worker('a', { inFlight: BUSY_QUEUE, load: BUSY_LOAD });
    assert.equal(pick([saturated, worker('b', { inFlight: 2 })]), 'b');
    // Either condition alone keeps the call home.
    assert.equal(pick([worker('a', { inFlight: BUSY_QUEUE - 1, load: 1 }), worker('b')]), 'a');
    assert.equal(pick([worker('a', { inFlight: BUSY_QUEUE, load: BUSY_LOAD - 0.01 }), worker('b')]), 'a');
  });

  it('takes the next worker in line from the home, not the first slot', () => {
    const full = { inFlight: PACK_LIMIT };
    assert.equal(pick([worker('a'), worker('b', full), worker('c', { inFlight: 1 })], 1), 'c');
    assert.equal(pick([worker('a', { inFlight: 1 }), worker('b'), worker('c', full)], 2), 'a');
  });

  it('falls back to the least busy worker when none has room, skipping workers not ready', () => {
    const slots = [
      worker('a', { inFlight: PACK_LIMIT + 4 }),
      worker('b', { inFlight: PACK_LIMIT + 1 }),
      worker('c', { inFlight: 0, ready: false }),
      null,
    ];
    assert.equal(pick(slots), 'b');
    assert.equal(pick([worker('a', { ready: false }), null]), null);
  });
});
