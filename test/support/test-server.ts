import { generateApiKey } from '../../src/auth/api-key.js';
import { loadConfig, type AppConfig } from '../../src/config/app-config.js';
import { createApp, type App } from '../../src/app/create-app.js';
import { createTestDatabase } from './test-database.js';
import { GraphQLClient } from './graphql-client.js';

export interface TestServer {
  app: App;
  url: string;
  adminKey: string;
  /** A client with the admin key. */
  admin: GraphQLClient;
  /** A client without a key. */
  anonymous: GraphQLClient;
  close(): Promise<void>;
}

/**
 * The Redis settings of a test deployment: the shared Redis on 127.0.0.1, under a key prefix of
 * the deployment's own database, so test files running at once never see each other's channels
 * (an admin subscriber would otherwise receive another file's events) while two instances of one
 * deployment still share theirs.
 */
export function testRedisEnv(databaseUrl: string): { REDIS_URL: string; REDIS_KEY_PREFIX: string } {
  const name = new URL(databaseUrl).pathname.slice(1).replace(/[^A-Za-z0-9_]/g, '_');
  return {
    REDIS_URL: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
    REDIS_KEY_PREFIX: `test:${name}:`.slice(0, 64),
  };
}

/**
 * Starts the real server on a free port over a fresh database of its own (dropped on close),
 * with the real Redis on 127.0.0.1.
 */
export async function startTestServer(env: Record<string, string> = {}): Promise<TestServer> {
  const database = await createTestDatabase();
  const adminKey = generateApiKey();
  const config: AppConfig = loadConfig({
    NODE_ENV: 'test',
    HOST: '127.0.0.1',
    PORT: '0',
    DATABASE_URL: database.url,
    ...testRedisEnv(database.url),
    ADMIN_API_KEY: adminKey,
    MIGRATE_ON_START: 'false',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    // Tests send bursts; the rate-limit and live-limit tests set their own limits.
    RATE_LIMIT_DEFAULT: '0',
    LIVE_MAX_INBOUND_BYTES_PER_SECOND: '1000000000',
    // Addons in tests call mock servers on 127.0.0.1; the network-guard test turns this off.
    SANDBOX_FETCH_PRIVATE_NETWORKS: 'true',
    ...env,
  });
  let app: App;
  try {
    app = await createApp(config);
  } catch (error) {
    await database.drop();
    throw error;
  }
  const url = await app.listen();
  return {
    app,
    url,
    adminKey,
    admin: new GraphQLClient(url, adminKey),
    anonymous: new GraphQLClient(url),
    async close() {
      await app.close();
      await database.drop();
    },
  };
}
