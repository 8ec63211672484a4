import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RUN_TIMEOUT_GRID_MS, runTimeout } from './run-timeout.js';

describe('runTimeout', () => {
  it('gives at least the budget and overruns it by less than the grid', () => {
    for (const now of [0, 3.25, 1000.9, 123456.5]) {
      for (const [deadline, cpuLimit, budget] of [
        [now + 1000, 500, 500],
        [now + 40, 500, 40],
        [now + 0.4, 500, 1],
        [now - 5, 500, 1],
      ]) {
        const timeout = runTimeout(now, deadline, cpuLimit);
        assert.ok(Number.isInteger(timeout), `integer ms: ${timeout}`);
        assert.ok(timeout >= budget, `${timeout} ≥ ${budget} (now ${now})`);
        assert.ok(timeout < budget + RUN_TIMEOUT_GRID_MS + 1, `${timeout} < ${budget} + grid (now ${now})`);
      }
    }
  });

  it('ends the timers of runs started within one grid step on at most two points, to the millisecond', () => {
    const ends = new Set<number>();
    for (let now = 5000; now < 5000 + RUN_TIMEOUT_GRID_MS - 1; now += 0.37) {
      ends.add(Math.floor(now + runTimeout(now, now + 1000, 500)));
    }
    // Without the grid, these 40 runs started 0.37 ms apart would end in 15 distinct milliseconds.
    assert.ok(ends.size <= 2, `timers end at ${[...ends].join(', ')}`);
  });
});
