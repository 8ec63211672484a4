import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { shareInFlight } from './share-in-flight.js';

describe('shareInFlight', () => {
  it('gives calls made during a run that run’s result, and starts a new run after it settles', async () => {
    // given
    let runs = 0;
    let finish: (value: number) => void = () => undefined;
    const shared = shareInFlight(() => {
      runs += 1;
      return new Promise<number>((resolve) => (finish = resolve));
    });

    // when: three calls while the first run is in flight
    const during = [shared(), shared(), shared()];
    finish(7);

    // then: one run answered all three
    assert.deepEqual(await Promise.all(during), [7, 7, 7]);
    assert.equal(runs, 1);

    // when: a call after it settled
    const after = shared();
    finish(8);

    // then: a second run
    assert.equal(await after, 8);
    assert.equal(runs, 2);
  });

  it('shares a failure with the calls that waited for it, and runs again afterwards', async () => {
    let runs = 0;
    const shared = shareInFlight(async () => {
      runs += 1;
      if (runs === 1) throw new Error('down');
      return 'up';
    });
    const results = await Promise.allSettled([shared(), shared()]);
    assert.deepEqual(
      results.map((r) => r.status),
      ['rejected', 'rejected'],
    );
    assert.equal(await shared(), 'up');
    assert.equal(runs, 2);
  });
});
