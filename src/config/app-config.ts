import path from 'node:path';
import proxyAddr from '@fastify/proxy-addr';

/** Every setting of the server, read once from environment variables at start. */
export interface AppConfig {
  nodeEnv: 'development' | 'production' | 'test';
  /** Development mode shows stack traces and unmasked errors; never on in production. */
  isDevelopment: boolean;
  host: string;
  port: number;
  /** Unset: an embedded PostgreSQL (PGlite) keeps data in `dataDir`. */
  databaseUrl: string | null;
  databasePoolMax: number;
  /**
   * Reads whose cost grows with a tenant's own data (see scan-gate.ts) running at once on an
   * instance: per caller (its key's site, developer, or the admins), and in all.
   */
  databaseScans: { perCaller: number; total: number };
  /** PostgreSQL's statement_timeout for the API's connections (0: none). */
  databaseStatementTimeoutMs: number;
  dataDir: string;
  /** Unset: in-process pub/sub and caches, which serve a single instance only. */
  redisUrl: string | null;
  /** A first admin key, so a fresh installation can create the others. Stored hashed. */
  adminApiKey: string | null;
  /** When set, `GET /metrics` answers only requests bearing it (`Authorization: Bearer ...`). */
  metricsToken: string | null;
  migrateOnStart: boolean;
  logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  bodyLimitBytes: number;
  /** Seconds a verified API key stays cached in memory before it is looked up again. */
  apiKeyCacheSeconds: number;
  /** Base URL of this server as clients reach it, used to build widget render endpoints. */
  publicUrl: string;
  sandbox: {
    /** Sandbox worker processes (isolates never run in the API process). */
    workers: number;
    /** `--v8-pool-size` of the worker processes (0: one thread per core). */
    v8PoolSize: number;
    /** Test-only hook that lets addon code kill its worker; refused outside NODE_ENV=test. */
    allowCrashTest: boolean;
    /** Lets ctx.http.fetch reach private, loopback and link-local addresses (off: refused after DNS). */
    fetchPrivateNetworks: boolean;
    /**
     * A worker whose resident memory passes this many MB is replaced (0: never); null: twice the
     * worker's isolate memory budget (heap, and as much again of WebAssembly memory) plus 256.
     */
    workerMaxRssMb: number | null;
    /**
     * Circuit breaker per addon version and site (src/executions/addon-quarantine.ts): `threshold`
     * limit failures within `windowMs` refuse the version there for `baseBackoffMs`, doubled per
     * trip up to `maxBackoffMs`, then one probe call decides.
     */
    quarantine: {
      enabled: boolean;
      threshold: number;
      windowMs: number;
      baseBackoffMs: number;
      maxBackoffMs: number;
      pollMs: number;
    };
    /** Measured isolate memory one worker keeps, in MB; null: derived from the machine's memory. */
    isolateMemoryBudgetMb: number | null;
    /** Isolates kept across the workers at most (a count cap beside the memory budget). */
    maxIsolates: number;
  };
  /** Execution records older than this are deleted. */
  executionRetentionDays: number;
  /** Events older than this are deleted with their deliveries, once every delivery is finished. */
  eventRetentionDays: number;
  /**
   * Events one site may emit per UTC day (its addon code and its keys' emitEvent), and one addon of
   * a site, across the cluster (counted in Redis).
   */
  events: { maxPerSiteDay: number; maxPerAddonDay: number };
  /** What the registry keeps per developer (bytes of versions) and per addon (versions). */
  registry: { maxBytesPerDeveloper: number; maxVersionsPerAddon: number; maxAddonsPerDeveloper: number };
  /** Addons one site may have installed. */
  installationsMaxPerSite: number;
  /** Addon log text stored with execution records (UTF-8 bytes). */
  executionLogs: { maxBytesPerExecution: number; maxBytesPerSiteDay: number; maxBytesPerAddonDay: number };
  /** Renders larger than this (UTF-8 bytes of JSON) are served but not stored in Redis (L2). */
  widgetL2MaxEntryBytes: number;
  /** Requests per window by caller kind; 0 turns that limit off. Anonymous callers count per IP. */
  rateLimit: {
    windowSeconds: number;
    admin: number;
    developer: number;
    site: number;
    anonymous: number;
    /**
     * Look-ups of keys this instance has not cached, per address: an unknown key costs a database
     * read, so they are counted before it.
     */
    keyLookups: number;
    /**
     * IPv6 callers are counted per network of this prefix length, not per address: one host
     * commonly holds a whole /64 (or more) and could take a fresh address for every request.
     */
    ipv6Subnet: number;
  };
  /** Browser origins allowed by CORS; empty means same-origin only. `*` allows any. */
  corsOrigins: string[];
  /**
   * Addresses of the proxies in front of the server (IPs, CIDRs, `loopback`, `uniquelocal`,
   * `linklocal`) whose X-Forwarded-For names the caller; empty: the socket's peer is the caller.
   */
  trustProxy: string[];
  /** GraphQL operation limits checked before execution. */
  graphql: { maxDepth: number; maxAliases: number; maxTokens: number; maxCost: number };
  /**
   * Bounds of the WebSocket transport, per instance: sockets per key (per IP when anonymous),
   * operations in flight per socket, distinct subscriptions per key, and results waiting to be
   * written to one key's sockets.
   */
  live: {
    maxConnectionsPerKey: number;
    maxOperationsPerConnection: number;
    maxSubscriptionsPerKey: number;
    maxBacklogPerKey: number;
    /** Sockets from one address that have not finished `connection_init` yet. */
    maxHandshakesPerAddress: number;
    /**
     * Bytes the sockets of one caller (the key; the address when anonymous or not yet initialised)
     * may send per second on average, past a burst of one largest message.
     */
    maxInboundBytesPerSecond: number;
  };
  /** Longest a graceful shutdown waits for in-flight work before exiting. */
  shutdownTimeoutMs: number;
  /**
   * After SIGTERM: how long the server keeps serving (answering `Connection: close`, `/readyz`
   * 503) before it stops accepting connections, so load balancers route elsewhere first.
   */
  shutdownDrainMs: number;
  /** How long an idempotency key given to an emit is kept (a retry within it gets the first event). */
  eventIdempotencyHours: number;
  /** Prefix of every key and channel this server uses in Redis. */
  redisKeyPrefix: string;
  /** Delivery of stored events to addon handlers (at least once). */
  deliveries: {
    /** Run the delivery worker in this instance. */
    worker: boolean;
    /** Handler runs in flight at once per instance. */
    concurrency: number;
    /** Attempts before a delivery is DEAD. */
    maxAttempts: number;
    /** First retry delay; doubles per attempt (with jitter) up to backoffMaxMs. */
    backoffBaseMs: number;
    backoffMaxMs: number;
    /** How long a claim lasts without renewal; a crashed instance's claims expire after it. */
    leaseMs: number;
    /** Polling interval when no notification arrives. */
    pollMs: number;
  };
}

/** A setting that is missing or malformed; its message is the one line printed before exit. */
export class ConfigError extends Error {
  constructor(variable: string, expected: string, got: string | undefined) {
    super(`${variable}: expected ${expected}, got ${got === undefined ? 'nothing' : JSON.stringify(got)}`);
    this.name = 'ConfigError';
  }
}

type Env = Record<string, string | undefined>;

function readInt(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(name, `an integer from ${min} to ${max}`, raw);
  }
  return value;
}

function readBool(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (['1', 'true', 'yes'].includes(raw.toLowerCase())) return true;
  if (['0', 'false', 'no'].includes(raw.toLowerCase())) return false;
  throw new ConfigError(name, 'true or false', raw);
}

function readEnum<T extends string>(env: Env, name: string, allowed: readonly T[], fallback: T): T {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  if (!(allowed as readonly string[]).includes(raw))
    throw new ConfigError(name, `one of ${allowed.join(', ')}`, raw);
  return raw as T;
}

function readUrl(env: Env, name: string, protocols: string[]): string | null {
  const raw = env[name];
  if (raw === undefined || raw === '') return null;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    // Never echo the value: connection strings carry passwords.
    throw new ConfigError(name, `a ${protocols.join(' or ')} URL`, '<unparseable URL>');
  }
  if (!protocols.includes(url.protocol)) {
    throw new ConfigError(name, `a ${protocols.join(' or ')} URL`, `${url.protocol}//…`);
  }
  return raw;
}

/**
 * Reads and validates the configuration. Throws {@link ConfigError} naming the first bad variable.
 */
export function loadConfig(env: Env = process.env): AppConfig {
  const nodeEnv = readEnum(env, 'NODE_ENV', ['development', 'production', 'test'] as const, 'development');
  const port = readInt(env, 'PORT', 4000, 0, 65535);
  const host = env.HOST || '0.0.0.0';
  const adminApiKey = env.ADMIN_API_KEY || null;
  if (adminApiKey !== null && !/^tp_[A-Za-z0-9_-]{24,}$/.test(adminApiKey)) {
    throw new ConfigError(
      'ADMIN_API_KEY',
      'a key of the form tp_ followed by at least 24 letters or digits',
      '<hidden>',
    );
  }
  const metricsToken = env.METRICS_TOKEN || null;
  if (metricsToken !== null && !/^[\x21-\x7e]{16,512}$/.test(metricsToken)) {
    throw new ConfigError('METRICS_TOKEN', 'from 16 to 512 printable characters without spaces', '<hidden>');
  }
  const databasePoolMax = readInt(env, 'DATABASE_POOL_MAX', 10, 1, 200);
  return {
    nodeEnv,
    isDevelopment: nodeEnv === 'development',
    host,
    port,
    databaseUrl: readUrl(env, 'DATABASE_URL', ['postgres:', 'postgresql:']),
    databasePoolMax,
    databaseStatementTimeoutMs: readInt(env, 'DATABASE_STATEMENT_TIMEOUT_MS', 30_000, 0, 3_600_000),
    databaseScans: {
      perCaller: readInt(env, 'DATABASE_SCANS_PER_CALLER', 2, 1, 200),
      total: readInt(env, 'DATABASE_SCANS', Math.ceil(databasePoolMax / 2), 1, 200),
    },
    dataDir: path.resolve(env.DATA_DIR || '.data'),
    redisUrl: readUrl(env, 'REDIS_URL', ['redis:', 'rediss:']),
    adminApiKey,
    metricsToken,
    migrateOnStart: readBool(env, 'MIGRATE_ON_START', true),
    logLevel: readEnum(
      env,
      'LOG_LEVEL',
      ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const,
      nodeEnv === 'test' ? 'silent' : 'info',
    ),
    bodyLimitBytes: readInt(env, 'BODY_LIMIT_BYTES', 2 * 1024 * 1024, 1024, 64 * 1024 * 1024),
    apiKeyCacheSeconds: readInt(env, 'API_KEY_CACHE_SECONDS', 30, 0, 3600),
    publicUrl: (env.PUBLIC_URL || `http://localhost:${port}`).replace(/\/$/, ''),
    sandbox: {
      workers: readInt(env, 'SANDBOX_WORKERS', 2, 1, 64),
      v8PoolSize: readInt(env, 'SANDBOX_WORKER_V8_POOL_SIZE', 1, 0, 64),
      allowCrashTest: nodeEnv === 'test' && readBool(env, 'SANDBOX_ALLOW_CRASH_TEST', false),
      fetchPrivateNetworks: readBool(env, 'SANDBOX_FETCH_PRIVATE_NETWORKS', false),
      workerMaxRssMb: env.SANDBOX_WORKER_MAX_RSS_MB
        ? readInt(env, 'SANDBOX_WORKER_MAX_RSS_MB', 0, 0, 1024 * 1024)
        : null,
      quarantine: {
        enabled: readBool(env, 'QUARANTINE_ENABLED', true),
        threshold: readInt(env, 'QUARANTINE_THRESHOLD', 5, 1, 10_000),
        windowMs: readInt(env, 'QUARANTINE_WINDOW_MS', 60_000, 100, 86_400_000),
        baseBackoffMs: readInt(env, 'QUARANTINE_BACKOFF_MS', 30_000, 100, 86_400_000),
        maxBackoffMs: readInt(env, 'QUARANTINE_MAX_BACKOFF_MS', 900_000, 100, 86_400_000),
        pollMs: readInt(env, 'QUARANTINE_POLL_MS', 2_000, 50, 600_000),
      },
      isolateMemoryBudgetMb: env.SANDBOX_ISOLATE_MEMORY_BUDGET_MB
        ? readInt(env, 'SANDBOX_ISOLATE_MEMORY_BUDGET_MB', 0, 8, 1024 * 1024)
        : null,
      maxIsolates: readInt(env, 'SANDBOX_MAX_ISOLATES', 20_000, 1, 1_000_000),
    },
    executionRetentionDays: readInt(env, 'EXECUTION_RETENTION_DAYS', 7, 1, 3650),
    eventRetentionDays: readEventRetentionDays(env),
    events: {
      maxPerSiteDay: readInt(env, 'EVENTS_MAX_PER_SITE_DAY', 1_000_000, 1, 2 ** 40),
      maxPerAddonDay: readInt(env, 'EVENTS_MAX_PER_ADDON_DAY', 250_000, 1, 2 ** 40),
    },
    registry: {
      maxBytesPerDeveloper: readInt(env, 'REGISTRY_MAX_BYTES_PER_DEVELOPER', 1024 ** 3, 1, 2 ** 50),
      maxVersionsPerAddon: readInt(env, 'REGISTRY_MAX_VERSIONS_PER_ADDON', 1000, 1, 1_000_000),
      maxAddonsPerDeveloper: readInt(env, 'REGISTRY_MAX_ADDONS_PER_DEVELOPER', 100, 1, 1_000_000),
    },
    installationsMaxPerSite: readInt(env, 'INSTALLATIONS_MAX_PER_SITE', 200, 1, 1_000_000),
    executionLogs: {
      maxBytesPerExecution: readInt(env, 'EXECUTION_LOG_MAX_BYTES', 64 * 1024, 0, 16 * 1024 * 1024),
      maxBytesPerSiteDay: readInt(env, 'EXECUTION_LOG_MAX_BYTES_PER_SITE_DAY', 64 * 1024 * 1024, 0, 2 ** 40),
      maxBytesPerAddonDay: readInt(
        env,
        'EXECUTION_LOG_MAX_BYTES_PER_ADDON_DAY',
        16 * 1024 * 1024,
        0,
        2 ** 40,
      ),
    },
    widgetL2MaxEntryBytes: readInt(env, 'WIDGET_L2_MAX_ENTRY_BYTES', 512 * 1024, 1024, 64 * 1024 * 1024),
    rateLimit: readRateLimits(env),
    corsOrigins: readOrigins(env),
    trustProxy: readTrustProxy(env),
    graphql: {
      maxDepth: readInt(env, 'GRAPHQL_MAX_DEPTH', 10, 1, 100),
      maxAliases: readInt(env, 'GRAPHQL_MAX_ALIASES', 15, 0, 1000),
      maxTokens: readInt(env, 'GRAPHQL_MAX_TOKENS', 2000, 10, 100_000),
      maxCost: readInt(env, 'GRAPHQL_MAX_COST', 5000, 1, 10_000_000),
    },
    live: {
      maxConnectionsPerKey: readInt(env, 'LIVE_MAX_CONNECTIONS_PER_KEY', 16, 1, 100_000),
      maxOperationsPerConnection: readInt(env, 'LIVE_MAX_OPERATIONS_PER_CONNECTION', 16, 1, 10_000),
      maxSubscriptionsPerKey: readInt(env, 'LIVE_MAX_SUBSCRIPTIONS_PER_KEY', 32, 1, 1_000_000),
      maxBacklogPerKey: readInt(env, 'LIVE_MAX_BACKLOG_PER_KEY', 10_000, 10, 10_000_000),
      maxHandshakesPerAddress: readInt(env, 'LIVE_MAX_HANDSHAKES_PER_ADDRESS', 16, 1, 100_000),
      maxInboundBytesPerSecond: readInt(
        env,
        'LIVE_MAX_INBOUND_BYTES_PER_SECOND',
        64 * 1024,
        1024,
        1_000_000_000,
      ),
    },
    shutdownTimeoutMs: readInt(env, 'SHUTDOWN_TIMEOUT_MS', 10_000, 0, 600_000),
    // A laptop's Ctrl-C stops at once; a deployed instance drains behind its load balancer.
    shutdownDrainMs: readInt(env, 'SHUTDOWN_DRAIN_MS', nodeEnv === 'development' ? 0 : 5_000, 0, 600_000),
    eventIdempotencyHours: readInt(env, 'EVENT_IDEMPOTENCY_HOURS', 24, 1, 24 * 30),
    redisKeyPrefix: readPrefix(env),
    deliveries: {
      worker: readBool(env, 'DELIVERY_WORKER', true),
      concurrency: readInt(env, 'DELIVERY_CONCURRENCY', 32, 1, 1000),
      maxAttempts: readInt(env, 'DELIVERY_MAX_ATTEMPTS', 8, 1, 100),
      backoffBaseMs: readInt(env, 'DELIVERY_BACKOFF_BASE_MS', 1000, 1, 3_600_000),
      backoffMaxMs: readInt(env, 'DELIVERY_BACKOFF_MAX_MS', 600_000, 1, 86_400_000),
      leaseMs: readInt(env, 'DELIVERY_LEASE_MS', 30_000, 500, 3_600_000),
      pollMs: readInt(env, 'DELIVERY_POLL_MS', 1000, 10, 600_000),
    },
  };
}

/** Events are kept at least as long as their idempotency keys: a retried emit must find its event. */
function readEventRetentionDays(env: Env): number {
  const days = readInt(env, 'EVENT_RETENTION_DAYS', 30, 1, 3650);
  const keyHours = readInt(env, 'EVENT_IDEMPOTENCY_HOURS', 24, 1, 24 * 30);
  if (days * 24 < keyHours) {
    throw new ConfigError(
      'EVENT_RETENTION_DAYS',
      `at least EVENT_IDEMPOTENCY_HOURS (${keyHours}) in days, ${Math.ceil(keyHours / 24)}`,
      env.EVENT_RETENTION_DAYS,
    );
  }
  return days;
}

function readRateLimits(env: Env): AppConfig['rateLimit'] {
  const fallback = readInt(env, 'RATE_LIMIT_DEFAULT', 100, 0, 10_000_000);
  const role = (name: string) => readInt(env, name, fallback, 0, 10_000_000);
  return {
    windowSeconds: readInt(env, 'RATE_LIMIT_WINDOW_SECONDS', 60, 1, 86_400),
    admin: role('RATE_LIMIT_ADMIN'),
    developer: role('RATE_LIMIT_DEVELOPER'),
    site: role('RATE_LIMIT_SITE'),
    anonymous: role('RATE_LIMIT_ANONYMOUS'),
    // Ten times the request limit: a server fronting many sites brings many keys from one address.
    keyLookups: readInt(env, 'RATE_LIMIT_KEY_LOOKUPS', fallback * 10, 0, 100_000_000),
    ipv6Subnet: readInt(env, 'RATE_LIMIT_IPV6_SUBNET', 56, 32, 128),
  };
}

/** A comma-separated setting's entries, trimmed; none when unset or blank. */
function readList(env: Env, name: string): string[] {
  return (env[name] ?? '')
    .split(',')
    .map((entry) => entry.trim())
    .filter(Boolean);
}

function readOrigins(env: Env): string[] {
  const origins = readList(env, 'CORS_ORIGINS');
  for (const origin of origins) {
    if (origin === '*') continue;
    let url: URL | null = null;
    try {
      url = new URL(origin);
    } catch {
      url = null;
    }
    if (!url || url.origin !== origin) {
      throw new ConfigError(
        'CORS_ORIGINS',
        'a comma-separated list of origins such as https://shop.example.com',
        origin,
      );
    }
  }
  return origins;
}

function readTrustProxy(env: Env): string[] {
  const addresses = readList(env, 'TRUST_PROXY');
  try {
    proxyAddr.compile(addresses);
  } catch {
    throw new ConfigError(
      'TRUST_PROXY',
      'a comma-separated list of proxy addresses or CIDRs (or loopback, uniquelocal, linklocal), such as 10.0.0.0/8',
      env.TRUST_PROXY ?? '',
    );
  }
  return addresses;
}

function readPrefix(env: Env): string {
  const raw = env.REDIS_KEY_PREFIX ?? 'themepress:';
  if (!/^[A-Za-z0-9:_.-]{1,64}$/.test(raw)) {
    throw new ConfigError(
      'REDIS_KEY_PREFIX',
      'up to 64 letters, digits, colons, dots, dashes or underscores',
      raw,
    );
  }
  return raw;
}
