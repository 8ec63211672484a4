import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import {
  FAST_STARTS_TO_SYNC,
  MAX_SLOW_STARTS,
  SLOW_START_MS,
  SYNC_START_BUDGET_MS,
  SyncStartPolicy,
} from './sync-start-policy.js';

const QUICK = 0.02;
const OVERRUN = SYNC_START_BUDGET_MS + 1;
const SLOW = SLOW_START_MS + 1;

function givenSyncVersion(): SyncStartPolicy {
  const policy = new SyncStartPolicy();
  for (let i = 0; i < FAST_STARTS_TO_SYNC; i += 1) policy.note(QUICK);
  assert.equal(policy.startSync, true);
  return policy;
}

describe('SyncStartPolicy', () => {
  it('starts a new version on the pool until it has made enough quick starts in a row', () => {
    const policy = new SyncStartPolicy();
    for (let i = 0; i < FAST_STARTS_TO_SYNC - 1; i += 1) {
      policy.note(QUICK);
      assert.equal(policy.startSync, false);
    }
    policy.note(OVERRUN);
    policy.note(QUICK);
    assert.equal(policy.startSync, false, 'the streak starts over after an overrun');
    for (let i = 0; i < FAST_STARTS_TO_SYNC - 1; i += 1) policy.note(QUICK);
    assert.equal(policy.startSync, true);
  });

  it('sends a version back to the pool for a short overrun, and takes it back after quick starts', () => {
    const policy = givenSyncVersion();
    // Many more short overruns than MAX_SLOW_STARTS: a loaded machine's hiccups never add up.
    for (let round = 0; round < MAX_SLOW_STARTS * 5; round += 1) {
      policy.note(OVERRUN);
      assert.equal(policy.startSync, false);
      for (let i = 0; i < FAST_STARTS_TO_SYNC; i += 1) policy.note(QUICK);
      assert.equal(policy.startSync, true);
    }
  });

  it('keeps a version on the pool for good after repeated slow starts', () => {
    const policy = givenSyncVersion();
    for (let round = 0; round < MAX_SLOW_STARTS; round += 1) {
      policy.note(SLOW);
      assert.equal(policy.startSync, false);
      for (let i = 0; i < FAST_STARTS_TO_SYNC; i += 1) policy.note(QUICK);
    }
    for (let i = 0; i < 1000; i += 1) policy.note(QUICK);
    assert.equal(policy.startSync, false);
  });
});
