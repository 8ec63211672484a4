import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from './app-config.js';

describe('loadConfig', () => {
  it('defaults to the embedded single-instance shape', () => {
    const config = loadConfig({});
    assert.equal(config.port, 4000);
    assert.equal(config.databaseUrl, null);
    assert.equal(config.redisUrl, null);
    assert.equal(config.migrateOnStart, true);
    assert.equal(config.sandbox.v8PoolSize, 1);
  });

  it('reads the V8 thread pool of the sandbox workers within its bounds', () => {
    assert.equal(loadConfig({ SANDBOX_WORKER_V8_POOL_SIZE: '0' }).sandbox.v8PoolSize, 0);
    assert.equal(loadConfig({ SANDBOX_WORKER_V8_POOL_SIZE: '4' }).sandbox.v8PoolSize, 4);
    assert.throws(
      () => loadConfig({ SANDBOX_WORKER_V8_POOL_SIZE: '-1' }),
      /SANDBOX_WORKER_V8_POOL_SIZE: expected an integer from 0 to 64/,
    );
  });

  it('reads the isolate memory budget of a sandbox worker, derived from the machine unless set', () => {
    assert.equal(loadConfig({}).sandbox.isolateMemoryBudgetMb, null);
    assert.equal(loadConfig({ SANDBOX_ISOLATE_MEMORY_BUDGET_MB: '512' }).sandbox.isolateMemoryBudgetMb, 512);
    assert.throws(
      () => loadConfig({ SANDBOX_ISOLATE_MEMORY_BUDGET_MB: '4' }),
      /SANDBOX_ISOLATE_MEMORY_BUDGET_MB: expected an integer from 8 to/,
    );
    assert.equal(loadConfig({}).sandbox.maxIsolates, 20_000);
  });

  it('keeps events at least as long as their idempotency keys', () => {
    assert.equal(loadConfig({}).eventRetentionDays, 30);
    assert.equal(
      loadConfig({ EVENT_RETENTION_DAYS: '2', EVENT_IDEMPOTENCY_HOURS: '48' }).eventRetentionDays,
      2,
    );
    assert.throws(
      () => loadConfig({ EVENT_RETENTION_DAYS: '1', EVENT_IDEMPOTENCY_HOURS: '48' }),
      /EVENT_RETENTION_DAYS: expected at least EVENT_IDEMPOTENCY_HOURS \(48\) in days, 2, got "1"/,
    );
  });

  it('allows ten look-ups of uncached keys per address for each request of the default limit', () => {
    assert.equal(loadConfig({}).rateLimit.keyLookups, 1000);
    assert.equal(loadConfig({ RATE_LIMIT_DEFAULT: '50' }).rateLimit.keyLookups, 500);
    assert.equal(loadConfig({ RATE_LIMIT_DEFAULT: '0' }).rateLimit.keyLookups, 0);
    assert.equal(loadConfig({ RATE_LIMIT_KEY_LOOKUPS: '7' }).rateLimit.keyLookups, 7);
    assert.equal(loadConfig({}).live.maxHandshakesPerAddress, 16);
  });

  it('gives scans of tenant history half the connection pool, two per caller, unless set', () => {
    assert.deepEqual(loadConfig({}).databaseScans, { perCaller: 2, total: 5 });
    assert.deepEqual(loadConfig({ DATABASE_POOL_MAX: '7' }).databaseScans, { perCaller: 2, total: 4 });
    assert.equal(loadConfig({}).databaseStatementTimeoutMs, 30_000);
    assert.equal(loadConfig({ DATABASE_STATEMENT_TIMEOUT_MS: '0' }).databaseStatementTimeoutMs, 0);
    assert.deepEqual(loadConfig({ DATABASE_SCANS: '8', DATABASE_SCANS_PER_CALLER: '3' }).databaseScans, {
      perCaller: 3,
      total: 8,
    });
    assert.throws(
      () => loadConfig({ DATABASE_SCANS_PER_CALLER: '0' }),
      /DATABASE_SCANS_PER_CALLER: expected an integer from 1 to 200/,
    );
  });

  it('bounds the events a site emits per day, a million unless set, and one addon of it a quarter million', () => {
    assert.deepEqual(loadConfig({}).events, { maxPerSiteDay: 1_000_000, maxPerAddonDay: 250_000 });
    assert.deepEqual(loadConfig({ EVENTS_MAX_PER_SITE_DAY: '5', EVENTS_MAX_PER_ADDON_DAY: '2' }).events, {
      maxPerSiteDay: 5,
      maxPerAddonDay: 2,
    });
    assert.throws(
      () => loadConfig({ EVENTS_MAX_PER_SITE_DAY: '0' }),
      /EVENTS_MAX_PER_SITE_DAY: expected an integer from 1 to/,
    );
    assert.throws(
      () => loadConfig({ EVENTS_MAX_PER_ADDON_DAY: '-1' }),
      /EVENTS_MAX_PER_ADDON_DAY: expected an integer from 1 to/,
    );
  });

  it("keeps 64 MiB of addon logs per site and day, 16 MiB of them one addon's, unless set", () => {
    assert.deepEqual(loadConfig({}).executionLogs, {
      maxBytesPerExecution: 64 * 1024,
      maxBytesPerSiteDay: 64 * 1024 * 1024,
      maxBytesPerAddonDay: 16 * 1024 * 1024,
    });
    assert.equal(
      loadConfig({ EXECUTION_LOG_MAX_BYTES_PER_ADDON_DAY: '100' }).executionLogs.maxBytesPerAddonDay,
      100,
    );
  });

  it('counts IPv6 callers per /56 unless RATE_LIMIT_IPV6_SUBNET says otherwise', () => {
    assert.equal(loadConfig({}).rateLimit.ipv6Subnet, 56);
    assert.equal(loadConfig({ RATE_LIMIT_IPV6_SUBNET: '64' }).rateLimit.ipv6Subnet, 64);
    assert.throws(
      () => loadConfig({ RATE_LIMIT_IPV6_SUBNET: '16' }),
      /RATE_LIMIT_IPV6_SUBNET: expected an integer from 32 to 128/,
    );
  });

  it('trusts no proxy unless TRUST_PROXY names them, and refuses what is not an address', () => {
    assert.deepEqual(loadConfig({}).trustProxy, []);
    assert.deepEqual(loadConfig({ TRUST_PROXY: ' 10.0.0.0/8, loopback ,::1' }).trustProxy, [
      '10.0.0.0/8',
      'loopback',
      '::1',
    ]);
    assert.throws(
      () => loadConfig({ TRUST_PROXY: '10.0.0.0/8,proxy.internal' }),
      /TRUST_PROXY: expected a comma-separated list/,
    );
  });

  it('keeps a gibibyte of versions per developer and a thousand versions per addon, unless set', () => {
    assert.deepEqual(loadConfig({}).registry, {
      maxBytesPerDeveloper: 1024 ** 3,
      maxVersionsPerAddon: 1000,
      maxAddonsPerDeveloper: 100,
    });
    assert.equal(loadConfig({}).installationsMaxPerSite, 200);
    assert.equal(loadConfig({ REGISTRY_MAX_VERSIONS_PER_ADDON: '5' }).registry.maxVersionsPerAddon, 5);
    assert.throws(
      () => loadConfig({ REGISTRY_MAX_BYTES_PER_DEVELOPER: 'lots' }),
      /REGISTRY_MAX_BYTES_PER_DEVELOPER: expected an integer from 1 to/,
    );
  });

  it('names the variable and what was expected', () => {
    assert.throws(
      () => loadConfig({ PORT: 'eighty' }),
      /^ConfigError: PORT: expected an integer from 0 to 65535/,
    );
    assert.throws(
      () => loadConfig({ MIGRATE_ON_START: 'maybe' }),
      /MIGRATE_ON_START: expected true or false/,
    );
    assert.throws(() => loadConfig({ REDIS_URL: 'http://x' }), /REDIS_URL: expected a redis: or rediss: URL/);
  });

  it('takes a METRICS_TOKEN of 16 printable characters or more, and never echoes it', () => {
    assert.equal(loadConfig({}).metricsToken, null);
    assert.equal(loadConfig({ METRICS_TOKEN: 'abcdefghijklmnop' }).metricsToken, 'abcdefghijklmnop');
    assert.throws(
      () => loadConfig({ METRICS_TOKEN: 'short-secret' }),
      (error: Error) =>
        /METRICS_TOKEN: expected from 16 to 512/.test(error.message) &&
        !error.message.includes('short-secret'),
    );
  });

  it('never echoes a connection string, which may hold a password', () => {
    try {
      loadConfig({ DATABASE_URL: 'mysql://admin:s3cret@db/x' });
      assert.fail('expected a ConfigError');
    } catch (error) {
      assert.ok(error instanceof ConfigError);
      assert.doesNotMatch(error.message, /s3cret/);
    }
  });

  it('refuses a bootstrap admin key that is not a ThemePress key', () => {
    assert.throws(() => loadConfig({ ADMIN_API_KEY: 'password' }), /ADMIN_API_KEY/);
  });
});
