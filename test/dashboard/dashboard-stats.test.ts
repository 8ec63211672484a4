import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createConnectedTestDatabase, type ConnectedTestDatabase } from '../support/test-database.js';
import type { Database } from '../../src/infrastructure/database/database.js';
import { createMetrics, type Metrics } from '../../src/infrastructure/metrics/metrics.js';
import { VisibilityResolver } from '../../src/auth/visibility.js';
import { ExecutionRepository, type NewExecution } from '../../src/executions/execution.repository.js';
import { DashboardStatsService } from '../../src/dashboard/dashboard-stats.service.js';
import { AppError, ErrorCode } from '../../src/errors/index.js';
import type { Actor } from '../../src/auth/actor.js';

/** PostgreSQL's percentile_cont: linear interpolation between the closest ranks. */
function percentileCont(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const position = p * (sorted.length - 1);
  const lower = Math.floor(position);
  const upper = Math.ceil(position);
  return sorted[lower] + (sorted[upper] - sorted[lower]) * (position - lower);
}

const close = (actual: number | null, expected: number, what: string) => {
  assert.ok(actual !== null && Math.abs(actual - expected) < 1e-9, `${what}: ${actual} != ${expected}`);
};

const rejectsWith = (promise: Promise<unknown>, code: ErrorCode) =>
  assert.rejects(promise, (error: unknown) => error instanceof AppError && error.code === code);

describe('dashboard statistics (service over the Execution table)', () => {
  let testDatabase: ConnectedTestDatabase;
  let database: Database;
  let metrics: Metrics;
  let service: DashboardStatsService;
  const siteA = randomUUID();
  const siteB = randomUUID();
  const developerId = randomUUID();
  const loneDeveloperId = randomUUID();
  let ownedAddonId: string;
  const otherAddonId = randomUUID();
  // Owned addon, site A, within the minute: 1..100 ms, the 10 slowest failed.
  const ownedDurations = Array.from({ length: 100 }, (_, i) => i + 1);
  // Other addon, site B, within the minute: 20 runs of 7.5 ms, 4 timed out.
  const otherDurations = Array.from({ length: 20 }, () => 7.5);

  const admin: Actor = { kind: 'admin', keyId: 'k-admin' };
  const siteKeyA: Actor = { kind: 'site', keyId: 'k-a', siteId: siteA };
  const siteKeyB: Actor = { kind: 'site', keyId: 'k-b', siteId: siteB };
  const developer: Actor = { kind: 'developer', keyId: 'k-dev', developerId };
  const loneDeveloper: Actor = { kind: 'developer', keyId: 'k-lone', developerId: loneDeveloperId };

  before(async () => {
    testDatabase = await createConnectedTestDatabase();
    database = testDatabase.database;
    metrics = createMetrics();
    service = new DashboardStatsService({ database, metrics, visibility: new VisibilityResolver(database) });
    await database.prisma.developer.createMany({
      data: [
        { id: developerId, name: `dev-${developerId}` },
        { id: loneDeveloperId, name: `dev-${loneDeveloperId}` },
      ],
    });
    const addon = await database.prisma.addon.create({
      data: {
        name: `stats-${developerId.slice(0, 8)}`,
        displayName: 'Stats',
        author: 'Test',
        category: 'UTILITIES',
        ownerId: developerId,
      },
    });
    ownedAddonId = addon.id;

    const now = Date.now();
    const row = (overrides: Partial<NewExecution>): NewExecution => ({
      addonId: ownedAddonId,
      addonName: addon.name,
      addonVersionId: randomUUID(),
      version: '1.0.0',
      siteId: siteA,
      kind: 'function',
      entry: 'run',
      status: 'SUCCESS',
      errorMessage: null,
      durationMs: 1,
      cpuTimeMs: 0.5,
      cold: false,
      logs: [],
      logsTruncated: false,
      requestId: null,
      createdAt: new Date(now - 5_000),
      ...overrides,
    });
    await ExecutionRepository.insertMany(database.pool, [
      ...ownedDurations.map((durationMs, i) =>
        row({
          durationMs,
          status: durationMs > 90 ? 'ADDON_ERROR' : 'SUCCESS',
          createdAt: new Date(now - 1_000 - i * 100),
        }),
      ),
      ...otherDurations.map((durationMs, i) =>
        row({
          addonId: otherAddonId,
          addonName: 'other-addon',
          siteId: siteB,
          durationMs,
          status: i < 4 ? 'EXECUTION_TIMEOUT' : 'SUCCESS',
        }),
      ),
      // Two hours old: outside a one-minute window, inside a three-hour one.
      ...Array.from({ length: 50 }, () => row({ durationMs: 10_000, createdAt: new Date(now - 7_200_000) })),
    ]);
  });
  after(async () => {
    await testDatabase?.drop();
  });

  it('counts the executions of the window, per second, with the p50 and p95 of their durations (admin: everything)', async () => {
    // when
    const stats = await service.stats(admin, { windowSeconds: 60 });
    // then
    const all = [...ownedDurations, ...otherDurations];
    assert.equal(stats.windowSeconds, 60);
    assert.equal(stats.executions, 120);
    close(stats.executionsPerSecond, 120 / 60, 'executionsPerSecond');
    assert.equal(stats.errors, 14);
    close(stats.errorRate, 14 / 120, 'errorRate');
    close(stats.p95Ms, percentileCont(all, 0.95), 'p95');
    close(stats.p50Ms, percentileCont(all, 0.5), 'p50');
    assert.equal(stats.maxMs, 100);
    assert.ok(Math.abs(stats.since.getTime() - (Date.now() - 60_000)) < 5_000);
  });

  it('lists errors per addon, the most errors first, each with its own p95', async () => {
    // when
    const { addons } = await service.stats(admin, { windowSeconds: 60 });
    // then
    assert.deepEqual(
      addons.map((a) => [a.addonId, a.executions, a.errors]),
      [
        [ownedAddonId, 100, 10],
        [otherAddonId, 20, 4],
      ],
    );
    close(addons[0].p95Ms, 95.05, 'p95 of 1..100');
    close(addons[0].errorRate, 0.1, 'error rate');
    close(addons[1].p95Ms, 7.5, 'p95 of equal durations');
    close(addons[1].errorRate, 0.2, 'error rate');
  });

  it('widens with the window: older runs count in a three-hour window', async () => {
    // when
    const stats = await service.stats(admin, { windowSeconds: 3 * 3600 });
    // then
    assert.equal(stats.executions, 170);
    close(stats.executionsPerSecond, 170 / 10_800, 'executionsPerSecond');
    assert.equal(stats.maxMs, 10_000);
  });

  it('gives a site key its own site only, and refuses another site', async () => {
    // when
    const stats = await service.stats(siteKeyA, { windowSeconds: 60 });
    // then
    assert.equal(stats.executions, 100);
    assert.equal(stats.errors, 10);
    close(stats.p95Ms, 95.05, 'p95');
    close(stats.p50Ms, 50.5, 'p50');
    assert.deepEqual(
      stats.addons.map((a) => a.addonId),
      [ownedAddonId],
    );
    await rejectsWith(service.stats(siteKeyB, { siteId: siteA }), ErrorCode.Forbidden);
  });

  it('gives a developer its own addons on every site, and nothing to a developer without addons', async () => {
    // when
    const own = await service.stats(developer, { windowSeconds: 60 });
    const none = await service.stats(loneDeveloper, { windowSeconds: 60 });
    // then
    assert.equal(own.executions, 100);
    assert.deepEqual(
      own.addons.map((a) => a.addonId),
      [ownedAddonId],
    );
    assert.equal(none.executions, 0);
    assert.equal(none.executionsPerSecond, 0);
    assert.equal(none.errorRate, 0);
    assert.equal(none.p95Ms, null);
    assert.deepEqual(none.addons, []);
  });

  it('lets an admin narrow to one site', async () => {
    // when
    const stats = await service.stats(admin, { windowSeconds: 60, siteId: siteB });
    // then
    assert.equal(stats.executions, 20);
    assert.equal(stats.errors, 4);
  });

  it("reports this instance's widget cache hit rate to admins only", async () => {
    // given: no lookup yet
    assert.equal((await service.stats(admin, {})).widgetCache?.hitRate, null);
    metrics.widgetCacheHits.inc({ level: 'l1' }, 6);
    metrics.widgetCacheHits.inc({ level: 'l2' }, 2);
    metrics.widgetCacheMisses.inc(2);
    // when
    const forAdmin = await service.stats(admin, {});
    const forSite = await service.stats(siteKeyA, {});
    // then
    assert.deepEqual(forAdmin.widgetCache, { l1Hits: 6, l2Hits: 2, misses: 2, hitRate: 0.8 });
    assert.equal(forSite.widgetCache, null);
  });

  it('refuses anonymous callers, odd windows and malformed site ids with catalogue codes', async () => {
    await rejectsWith(service.stats({ kind: 'anonymous' }, {}), ErrorCode.Unauthenticated);
    for (const windowSeconds of [0, 5, 86_401, 1.5]) {
      await rejectsWith(service.stats(admin, { windowSeconds }), ErrorCode.BadUserInput);
    }
    await rejectsWith(service.stats(admin, { siteId: 'not-a-uuid' }), ErrorCode.BadUserInput);
  });
});
