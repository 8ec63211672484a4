import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { createConnectedTestDatabase, type ConnectedTestDatabase } from '../support/test-database.js';
import type { Database } from '../../src/infrastructure/database/database.js';
import { createMetrics } from '../../src/infrastructure/metrics/metrics.js';
import { VisibilityResolver } from '../../src/auth/visibility.js';
import { ExecutionRepository, type NewExecution } from '../../src/executions/execution.repository.js';
import { DashboardStatsService } from '../../src/dashboard/dashboard-stats.service.js';
import {
  DashboardSeriesService,
  SERIES_STEP_SECONDS,
  SERIES_WINDOW_SECONDS,
} from '../../src/dashboard/dashboard-series.service.js';
import { AppError, ErrorCode } from '../../src/errors/index.js';
import type { Actor } from '../../src/auth/actor.js';

const rejectsWith = (promise: Promise<unknown>, code: ErrorCode) =>
  assert.rejects(promise, (error: unknown) => error instanceof AppError && error.code === code);

describe('dashboard charts and error classification (services over the Execution table)', () => {
  let testDatabase: ConnectedTestDatabase;
  let database: Database;
  let stats: DashboardStatsService;
  let series: DashboardSeriesService;
  const siteA = randomUUID();
  const siteB = randomUUID();
  const developerId = randomUUID();
  let ownedAddonId: string;
  const otherAddonId = randomUUID();
  const admin: Actor = { kind: 'admin', keyId: 'k-admin' };
  const siteKeyB: Actor = { kind: 'site', keyId: 'k-b', siteId: siteB };
  const developer: Actor = { kind: 'developer', keyId: 'k-dev', developerId };
  /** The start of the slot the owned addon's runs fall in: two slots ago, so it is complete. */
  let slotStart: number;

  before(async () => {
    testDatabase = await createConnectedTestDatabase();
    database = testDatabase.database;
    const visibility = new VisibilityResolver(database);
    stats = new DashboardStatsService({ database, metrics: createMetrics(), visibility });
    series = new DashboardSeriesService({ database, visibility });
    await database.prisma.developer.create({ data: { id: developerId, name: `dev-${developerId}` } });
    const addon = await database.prisma.addon.create({
      data: {
        name: `charts-${developerId.slice(0, 8)}`,
        displayName: 'C',
        author: 'T',
        category: 'UTILITIES',
        ownerId: developerId,
      },
    });
    ownedAddonId = addon.id;
    const step = SERIES_STEP_SECONDS * 1000;
    slotStart = (Math.floor(Date.now() / step) - 2) * step;
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
      durationMs: 10,
      cpuTimeMs: 1,
      cold: false,
      logs: [],
      logsTruncated: false,
      requestId: null,
      createdAt: new Date(slotStart + 1000),
      ...overrides,
    });
    await ExecutionRepository.insertMany(database.pool, [
      // owned addon, site A, one slot: 4 successes, 1 error of the addon, 4 caller mistakes
      ...[10, 20, 30, 40].map((durationMs) => row({ durationMs })),
      row({ status: 'ADDON_ERROR', durationMs: 50 }),
      ...[1, 2, 3].map(() => row({ status: 'NOT_FOUND', entry: 'no-such-function', durationMs: 1 })),
      row({ status: 'INPUT_TOO_LARGE', durationMs: 1 }),
      // another addon on site B, ten minutes ago
      row({
        addonId: otherAddonId,
        addonName: 'other-addon',
        siteId: siteB,
        createdAt: new Date(slotStart - 600_000),
      }),
      // outside the window
      row({ createdAt: new Date(Date.now() - SERIES_WINDOW_SECONDS * 1000 - 60_000) }),
    ]);
  });
  after(async () => {
    series?.close();
    await testDatabase?.drop();
  });

  it("counts a caller asking for a function the code does not export apart, not as the addon's error", async () => {
    // when
    const result = await stats.stats(admin, { windowSeconds: 60 });
    // then
    const owned = result.addons.find((a) => a.addonId === ownedAddonId)!;
    assert.equal(owned.executions, 9);
    assert.equal(owned.errors, 1);
    assert.equal(owned.callerErrors, 4);
    assert.equal(owned.errorRate, 1 / 9);
  });

  it('gives per-addon lines over the last 15 minutes in 5 s slots: runs/s, p95, error rate', async () => {
    // when
    const result = await series.series(admin);
    // then
    assert.equal(result.stepSeconds, SERIES_STEP_SECONDS);
    assert.equal(result.timestamps.length, SERIES_WINDOW_SECONDS / SERIES_STEP_SECONDS);
    const index = result.timestamps.findIndex((t) => t.getTime() === slotStart);
    assert.ok(index >= 0, 'the slot of the runs is in the window');
    const owned = result.addons.find((a) => a.addonId === ownedAddonId)!;
    assert.equal(owned.executionsPerSecond[index], 9 / SERIES_STEP_SECONDS);
    assert.equal(owned.errorRate[index], 1 / 9);
    assert.ok(owned.p95Ms[index]! > 40 && owned.p95Ms[index]! <= 50, `p95 ${owned.p95Ms[index]}`);
    assert.equal(owned.p95Ms[index - 1], null);
    assert.equal(
      owned.executionsPerSecond.reduce((a, b) => a + b, 0),
      9 / SERIES_STEP_SECONDS,
    );
    assert.deepEqual(result.addons.map((a) => a.addonId).sort(), [ownedAddonId, otherAddonId].sort());
    // the backlog was sampled once, at the end of the last slot
    assert.equal(owned.deliveryBacklog.at(-1), 0);
    assert.equal(owned.deliveryBacklog[0], null);
  });

  it('scopes the lines like the statistics: a site key its site, a developer its addons', async () => {
    // when
    const forSiteB = await series.series(siteKeyB);
    const forDeveloper = await series.series(developer);
    const adminOnSiteB = await series.series(admin, { siteId: siteB });
    // then
    assert.deepEqual(
      forSiteB.addons.map((a) => a.addonId),
      [otherAddonId],
    );
    assert.deepEqual(
      adminOnSiteB.addons.map((a) => a.addonId),
      [otherAddonId],
    );
    assert.deepEqual(
      forDeveloper.addons.map((a) => a.addonId),
      [ownedAddonId],
    );
    await rejectsWith(series.series(siteKeyB, { siteId: siteA }), ErrorCode.Forbidden);
    await rejectsWith(series.series(admin, { siteId: 'not-a-uuid' }), ErrorCode.BadUserInput);
    await rejectsWith(series.series({ kind: 'anonymous' }), ErrorCode.Unauthenticated);
  });
});
