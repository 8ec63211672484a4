import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { SCAN_QUEUE_PER_CALLER } from '../../src/infrastructure/database/scan-gate.js';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenSite } from '../support/fixtures.js';
import { DashboardStatsDocument, ExecutionsDocument, InstallationsDocument } from '../generated/graphql.js';

const POOL = 6;
const PER_CALLER = 2;

interface ScanGauges {
  running: number;
  waiting: number;
  refused: number;
}

/** The server's scan gauges, read from /metrics as an operator would. */
async function scanGauges(url: string): Promise<ScanGauges> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const read = (name: string) => Number(new RegExp(`^${name} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
  return {
    running: read('database_scans_running'),
    waiting: read('database_scans_waiting'),
    refused: read('database_scans_refused_total'),
  };
}

/** The gauges once `ready` holds for them (polled for at most 5 s). */
async function gaugesOnce(url: string, ready: (gauges: ScanGauges) => boolean): Promise<ScanGauges> {
  let gauges = await scanGauges(url);
  for (let i = 0; i < 100 && !ready(gauges); i += 1) {
    await sleep(50);
    gauges = await scanGauges(url);
  }
  return gauges;
}

describe("reads of a tenant's history hold a bounded share of the connection pool", () => {
  let server: TestServer;
  let admin: pg.Client;

  before(async () => {
    server = await startTestServer({
      DATABASE_POOL_MAX: String(POOL),
      DATABASE_SCANS_PER_CALLER: String(PER_CALLER),
    });
    admin = new pg.Client({ connectionString: server.app.config.databaseUrl! });
    await admin.connect();
  });
  after(async () => {
    await admin.end();
    await server.close();
  });

  /** Holds an exclusive lock on the execution records while `work` runs, as a long scan would hold its connection. */
  async function whileExecutionsLocked(work: (release: () => Promise<void>) => Promise<void>): Promise<void> {
    await admin.query('BEGIN');
    await admin.query('LOCK TABLE "Execution" IN ACCESS EXCLUSIVE MODE');
    let locked = true;
    const release = async () => {
      if (!locked) return;
      locked = false;
      await admin.query('COMMIT');
    };
    try {
      await work(release);
    } finally {
      await release();
    }
  }

  it("serves another site at once while one site's scans are stuck in the database, and answers every scan once they can run", async () => {
    // given: sites A and B, and the execution records locked
    const a = await givenSite(server.admin);
    const b = await givenSite(server.admin);
    await whileExecutionsLocked(async (release) => {
      // when: site A asks for its executions and its dashboard figures, twelve times at once
      const scans = Array.from({ length: 12 }, (_, i) =>
        i % 2 === 0
          ? a.client.request(ExecutionsDocument, { entry: 'no-such-entry', first: 5 })
          : a.client.request(DashboardStatsDocument, { windowSeconds: 86_400 }),
      );
      const gauges = await gaugesOnce(server.url, (g) => g.running + g.waiting === 12);

      // then: A's share runs and the rest wait in the server, so B's read of its installations
      // finds a connection (the pool's own wait would end in SERVICE_UNAVAILABLE after 5 s)
      assert.deepEqual(gauges, { running: PER_CALLER, waiting: 12 - PER_CALLER, refused: 0 });
      const started = performance.now();
      const answer = await b.client.request(InstallationsDocument, {});
      assert.equal(answer.errors, undefined, JSON.stringify(answer.errors));
      assert.deepEqual(answer.data?.installations, []);
      assert.ok(performance.now() - started < 4_000, 'B waited for a connection');

      // and once the lock is gone, every one of A's scans is answered
      await release();
      const answers = await Promise.all(scans);
      assert.deepEqual(
        answers.map((r) => r.errors ?? 'ok'),
        Array.from({ length: 12 }, () => 'ok'),
      );
    });
  });

  it('refuses a site its scans past those waiting already with RATE_LIMITED, and only that site', async () => {
    // given: site A's scans stuck, two running and the most it may have waiting
    const a = await givenSite(server.admin);
    const b = await givenSite(server.admin);
    await whileExecutionsLocked(async (release) => {
      const scans = Array.from({ length: PER_CALLER + SCAN_QUEUE_PER_CALLER }, () =>
        a.client.request(ExecutionsDocument, { first: 5 }),
      );
      await gaugesOnce(server.url, (g) => g.running + g.waiting === scans.length);

      // when: A asks once more, and B asks for its own executions
      const refused = await a.client.request(ExecutionsDocument, { first: 5 });
      const other = b.client.request(ExecutionsDocument, { first: 5 });

      // then: A's extra scan is refused at once with a retry hint; B's is answered once the lock is gone
      assert.equal(refused.errors?.[0]?.extensions?.code, 'RATE_LIMITED', JSON.stringify(refused.errors));
      assert.equal(refused.errors?.[0]?.extensions?.retryAfterSeconds, 1);
      assert.match(
        refused.errors?.[0]?.message ?? '',
        /reads of history are already waiting for this site or account/,
      );
      assert.equal((await scanGauges(server.url)).refused, 1);
      await release();
      assert.equal((await other).errors, undefined);
      const answers = await Promise.all(scans);
      assert.equal(answers.filter((r) => r.errors === undefined).length, scans.length);
    });
  });
});

describe('a read of history that runs past DATABASE_STATEMENT_TIMEOUT_MS', () => {
  let server: TestServer;
  let admin: pg.Client;

  before(async () => {
    server = await startTestServer({ DATABASE_STATEMENT_TIMEOUT_MS: '300' });
    admin = new pg.Client({ connectionString: server.app.config.databaseUrl! });
    await admin.connect();
  });
  after(async () => {
    await admin.end();
    await server.close();
  });

  it('is stopped by PostgreSQL and answered QUERY_TOO_COMPLEX naming the setting, freeing its place', async () => {
    // given: a site, and its execution records locked for longer than the timeout
    const a = await givenSite(server.admin);
    await admin.query('BEGIN');
    await admin.query('LOCK TABLE "Execution" IN ACCESS EXCLUSIVE MODE');
    // when: it lists its executions and asks for its dashboard figures (a model query, a raw one)
    const pending = Promise.all([
      a.client.request(ExecutionsDocument, { first: 5 }),
      a.client.request(DashboardStatsDocument, { windowSeconds: 3600 }),
    ]);
    const stoppedInTime = await Promise.race([pending.then(() => true), sleep(3_000).then(() => false)]);
    await admin.query('ROLLBACK');
    const answers = await pending;

    // then: both were stopped, long before the lock went, with the catalogue code, and nothing
    // holds a place afterwards
    assert.ok(stoppedInTime, 'answered while the lock was still held');
    for (const answer of answers) {
      assert.equal(answer.errors?.[0]?.extensions?.code, 'QUERY_TOO_COMPLEX', JSON.stringify(answer.errors));
      assert.match(answer.errors?.[0]?.message ?? '', /ran past 300 ms \(DATABASE_STATEMENT_TIMEOUT_MS\)/);
    }
    assert.deepEqual(await scanGauges(server.url), { running: 0, waiting: 0, refused: 0 });
    // and the next read, with nothing in its way, is answered
    assert.equal((await a.client.request(ExecutionsDocument, { first: 5 })).errors, undefined);
  });
});
