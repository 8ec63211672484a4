import { createApp, type App } from '../../src/app/create-app.js';
import type { AppConfig } from '../../src/config/app-config.js';
import { GraphQLClient } from './graphql-client.js';
import type { TestServer } from './test-server.js';

export interface SecondInstance {
  app: App;
  url: string;
  admin: GraphQLClient;
  anonymous: GraphQLClient;
  close(): Promise<void>;
}

/**
 * Another server process of the same deployment as `first`: same database and Redis, its own
 * port, caches and bus connections. Closing it leaves the database to `first`.
 */
export async function startSecondInstance(
  first: TestServer,
  overrides: Partial<AppConfig> = {},
): Promise<SecondInstance> {
  const app = await createApp({ ...first.app.config, port: 0, migrateOnStart: false, ...overrides });
  const url = await app.listen();
  return {
    app,
    url,
    admin: new GraphQLClient(url, first.adminKey),
    anonymous: new GraphQLClient(url),
    close: () => app.close(),
  };
}
