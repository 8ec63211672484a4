import { testRedisEnv } from '../support/test-server.js';
import { loadConfig } from '../../src/config/app-config.js';
import { createApp, type App } from '../../src/app/create-app.js';
import { GraphQLClient } from '../support/graphql-client.js';

export interface TestServer {
  app: App;
  url: string;
  admin: GraphQLClient;
  close(): Promise<void>;
}

/**
 * Another instance of the same deployment: the real server on a free port over an existing
 * database (not dropped on close), with the real Redis, like startTestServer's.
 */
export async function startTestServerOn(
  databaseUrl: string,
  adminKey: string,
  env: Record<string, string> = {},
): Promise<TestServer> {
  const app = await createApp(
    loadConfig({
      NODE_ENV: 'test',
      HOST: '127.0.0.1',
      PORT: '0',
      DATABASE_URL: databaseUrl,
      ...testRedisEnv(databaseUrl),
      ADMIN_API_KEY: adminKey,
      MIGRATE_ON_START: 'false',
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
      RATE_LIMIT_DEFAULT: '0',
      SANDBOX_FETCH_PRIVATE_NETWORKS: 'true',
      ...env,
    }),
  );
  const url = await app.listen();
  return { app, url, admin: new GraphQLClient(url, adminKey), close: () => app.close() };
}
