import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ErrorCode, RateLimitedError } from '../../errors/index.js';
import { createScanGate, SCAN_QUEUE_PER_CALLER } from './scan-gate.js';

/** A scan that runs until `finish()`; `started` says whether the gate let it in. */
function givenScan() {
  let finish!: () => void;
  let fail!: (error: Error) => void;
  const done = new Promise<string>((resolve, reject) => {
    finish = () => resolve('done');
    fail = reject;
  });
  const scan = {
    started: false,
    finish: () => finish(),
    fail: (error: Error) => fail(error),
    work: () => {
      scan.started = true;
      return done;
    },
  };
  return scan;
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

describe('createScanGate', () => {
  it("lets one caller's scans wait beyond perCaller while another caller's run at once", async () => {
    // given: two scans per caller, four in all
    const gate = createScanGate({ perCaller: 2, total: 4 });
    const a = [givenScan(), givenScan(), givenScan()];
    const b = givenScan();
    // when: A starts three and B one
    const running = a.map((scan) => gate.run('site:A', scan.work));
    const other = gate.run('site:B', b.work);
    await turn();
    // then: A's third waits, B's runs; A's third starts once one of A's ends
    assert.deepEqual(
      a.map((scan) => scan.started),
      [true, true, false],
    );
    assert.equal(b.started, true);
    assert.deepEqual(gate.stats(), { running: 3, waiting: 1, refused: 0 });
    a[0].finish();
    await turn();
    assert.equal(a[2].started, true);
    for (const scan of [...a, b]) scan.finish();
    assert.deepEqual(await Promise.all([...running, other]), ['done', 'done', 'done', 'done']);
    assert.deepEqual(gate.stats(), { running: 0, waiting: 0, refused: 0 });
  });

  it('gives places freed in a full gate to waiting callers in turn, not to the one that queued most', async () => {
    // given: room for two scans in all, held by A; A queues three more, then B and C one each
    const gate = createScanGate({ perCaller: 2, total: 2 });
    const held = [givenScan(), givenScan()];
    const queuedA = [givenScan(), givenScan(), givenScan()];
    const b = givenScan();
    const c = givenScan();
    const all = [...held, ...queuedA].map((scan) => gate.run('site:A', scan.work));
    all.push(gate.run('site:B', b.work), gate.run('site:C', c.work));
    await turn();
    assert.deepEqual(gate.stats(), { running: 2, waiting: 5, refused: 0 });
    // when: A's two running scans end, one after the other
    held[0].finish();
    await turn();
    held[1].finish();
    await turn();
    // then: A's first waiting scan got the first place (A was first in line), B the second; C is next
    assert.deepEqual(
      [queuedA[0].started, b.started, c.started, queuedA[1].started],
      [true, true, false, false],
    );
    queuedA[0].finish();
    await turn();
    assert.equal(c.started, true);
    assert.equal(queuedA[1].started, false);
    for (const scan of [...queuedA, b, c]) scan.finish();
    await Promise.all(all);
  });

  it("refuses a caller's scan past SCAN_QUEUE_PER_CALLER waiting, and frees the place of a scan that failed", async () => {
    // given: one place, held by a scan of A, and A's queue full
    const gate = createScanGate({ perCaller: 1, total: 1 });
    const first = givenScan();
    const running = gate.run('site:A', first.work);
    const queued = Array.from({ length: SCAN_QUEUE_PER_CALLER }, () => givenScan());
    const waiting = queued.map((scan) => gate.run('site:A', scan.work));
    // when: A asks once more
    const refusal = await gate.run('site:A', async () => 'ran').catch((error: unknown) => error);
    // then: it is refused as rate limited, with a retry hint, and counted
    assert.ok(refusal instanceof RateLimitedError);
    assert.equal(refusal.code, ErrorCode.RateLimited);
    assert.equal(refusal.retryAfterSeconds, 1);
    assert.deepEqual(gate.stats(), { running: 1, waiting: SCAN_QUEUE_PER_CALLER, refused: 1 });
    // and a scan that fails frees its place for the next
    first.fail(new Error('statement failed'));
    await assert.rejects(running, /statement failed/);
    await turn();
    assert.equal(queued[0].started, true);
    for (const scan of queued) {
      scan.finish();
      await turn();
    }
    await Promise.all(waiting);
    assert.deepEqual(gate.stats(), { running: 0, waiting: 0, refused: 1 });
  });
});
