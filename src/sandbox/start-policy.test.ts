import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCode } from '../errors/index.js';
import {
  FAST_STARTS_TO_SYNC,
  MAX_SLOW_STARTS,
  SLOW_START_MS,
  StartPolicies,
  SYNC_START_BUDGET_MS,
  SyncStartPolicy,
} from './start-policy.js';

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
    assert.equal(policy.onPoolForGood, true);
  });
});

describe('StartPolicies (the parent, per version and site)', () => {
  const quick = { cpuMs: QUICK, overran: false };

  function earnSync(policies: StartPolicies, versionId: string, siteId: string): void {
    for (let i = 0; i < FAST_STARTS_TO_SYNC; i += 1) policies.succeeded(versionId, siteId, quick);
    assert.equal(policies.startSync(versionId, siteId), true);
  }

  it('keeps each site of a version apart', () => {
    const policies = new StartPolicies();
    earnSync(policies, 'v1', 'site-a');
    assert.equal(policies.startSync('v1', 'site-b'), false);
    assert.equal(policies.startSync('v2', 'site-a'), false);
  });

  it('keeps a pair on the pool for good after one start cut at the synchronous slice', () => {
    const policies = new StartPolicies();
    earnSync(policies, 'v1', 'site-a');
    policies.succeeded('v1', 'site-a', { cpuMs: 50, overran: true });
    for (let i = 0; i < 100; i += 1) policies.succeeded('v1', 'site-a', quick);
    assert.equal(policies.startSync('v1', 'site-a'), false);
    assert.equal(policies.onPoolForGood('v1', 'site-a'), true);
    assert.equal(policies.startSync('v1', 'site-b'), false);
    earnSync(policies, 'v1', 'site-b');
  });

  it('keeps a pair on the pool for good after a timeout or a memory kill, not after a crash', () => {
    const policies = new StartPolicies();
    for (const code of [ErrorCode.ExecutionTimeout, ErrorCode.MemoryLimitExceeded]) {
      const site = `site-${code}`;
      earnSync(policies, 'v1', site);
      policies.failed('v1', site, code);
      for (let i = 0; i < 100; i += 1) policies.succeeded('v1', site, quick);
      assert.equal(policies.startSync('v1', site), false, code);
    }
    earnSync(policies, 'v1', 'crashed');
    policies.failed('v1', 'crashed', ErrorCode.SandboxCrashed);
    assert.equal(policies.startSync('v1', 'crashed'), false);
    earnSync(policies, 'v1', 'crashed');
    // an error the addon returned says nothing about how it starts
    policies.failed('v1', 'crashed', ErrorCode.AddonError);
    assert.equal(policies.startSync('v1', 'crashed'), true);
  });
});
