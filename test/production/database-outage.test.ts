import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { generateApiKey } from '../../src/auth/api-key.js';
import { loadConfig } from '../../src/config/app-config.js';
import { createApp, type App } from '../../src/app/create-app.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';
import { testRedisEnv } from '../support/test-server.js';
import { GraphQLClient } from '../support/graphql-client.js';
import { startPostgresProxy } from '../support/postgres-proxy.js';
import { LIVENESS_LIMIT_MS, whileProbingLiveness } from '../support/liveness-probe.js';
import { eventually, liveClient } from '../events/helpers.js';

const LIST_ADDONS = `{ addons(first: 5) { totalCount } }`;

interface LogLine {
  level: number;
  msg: string;
}

describe('PostgreSQL unavailable', () => {
  let database: TestDatabase;
  let proxy: Awaited<ReturnType<typeof startPostgresProxy>>;
  let app: App;
  let url: string;
  const logs: LogLine[] = [];
  const adminKey = generateApiKey();

  before(async () => {
    database = await createTestDatabase();
    proxy = await startPostgresProxy();
    const dbUrl = new URL(database.url);
    dbUrl.port = String(proxy.port);
    const stream = new PassThrough();
    stream.on('data', (chunk: Buffer) => {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) logs.push(JSON.parse(line));
    });
    app = await createApp(
      loadConfig({
        NODE_ENV: 'production',
        HOST: '127.0.0.1',
        PORT: '0',
        DATABASE_URL: dbUrl.toString(),
        ...testRedisEnv(database.url),
        ADMIN_API_KEY: adminKey,
        MIGRATE_ON_START: 'false',
        LOG_LEVEL: 'info',
        RATE_LIMIT_DEFAULT: '0',
        DELIVERY_POLL_MS: '50',
      }),
      { logStream: stream },
    );
    url = await app.listen();
  });
  after(async () => {
    await app.close();
    await proxy.close();
    await database.drop();
  });

  it('answers SERVICE_UNAVAILABLE with 503 and Retry-After everywhere, and logs the outage once each way', async () => {
    // given: the database goes away while the server runs
    const anonymous = new GraphQLClient(url);
    assert.equal((await anonymous.raw(LIST_ADDONS)).status, 200);
    await proxy.cut();
    const errorsBefore = logs.filter((l) => l.level >= 50).length;
    // when: GraphQL (anonymous, and with a key that must be looked up), REST and WebSocket
    const { result, slowestMs } = await whileProbingLiveness(url, async () => {
      const graphql = await Promise.all(Array.from({ length: 20 }, () => anonymous.raw(LIST_ADDONS)));
      const withKey = await new GraphQLClient(url, generateApiKey()).raw('{ viewer { role } }');
      const restReply = await fetch(`${url}/api/addons/anything/execute`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${adminKey}` },
        body: JSON.stringify({ action: 'x', data: {}, siteId: '00000000-0000-4000-8000-000000000001' }),
      });
      return { graphql, withKey, restReply, restBody: await restReply.json() };
    });
    // then
    for (const response of [...result.graphql, result.withKey]) {
      assert.equal(response.status, 503, JSON.stringify(response));
      assert.equal(response.errors?.[0].extensions?.code, 'SERVICE_UNAVAILABLE');
      assert.equal(response.errors?.[0].extensions?.retryAfterSeconds, 5);
    }
    const graphqlReply = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: LIST_ADDONS }),
    });
    assert.equal(graphqlReply.headers.get('retry-after'), '5');
    assert.equal(result.restReply.status, 503);
    assert.equal(result.restReply.headers.get('retry-after'), '5');
    assert.equal((result.restBody as { error: { code: string } }).error.code, 'SERVICE_UNAVAILABLE');
    assert.ok(slowestMs < LIVENESS_LIMIT_MS, `/livez took ${slowestMs.toFixed(0)} ms`);
    // and over WebSocket, the same code
    const client = liveClient(url, null);
    try {
      const wsErrors = await new Promise<unknown[]>((resolve) => {
        const stop = client.subscribe(
          { query: '{ addons(first: 1) { totalCount } }' },
          {
            next: (value) => {
              stop();
              resolve([...(value.errors ?? [])]);
            },
            error: (error) => resolve(Array.isArray(error) ? error : [error]),
            complete: () => resolve([]),
          },
        );
      });
      assert.equal(
        (wsErrors[0] as { extensions?: { code?: string } }).extensions?.code,
        'SERVICE_UNAVAILABLE',
      );
    } finally {
      await client.dispose();
    }
    // one error line for the whole outage, however many requests failed meanwhile
    const outageLines = logs.slice(errorsBefore).filter((l) => l.level >= 50);
    assert.deepEqual(
      outageLines.map((l) => l.msg),
      [
        'PostgreSQL is unavailable: requests that need it are answered 503 SERVICE_UNAVAILABLE until it is back',
      ],
    );
    // when: it comes back
    await proxy.restore();
    await eventually(
      async () => (logs.some((l) => l.msg === 'PostgreSQL is available again') ? true : undefined),
      'the outage to be logged as over',
    );
    // then
    assert.equal((await anonymous.raw(LIST_ADDONS)).status, 200);
    assert.equal(logs.filter((l) => l.msg === 'PostgreSQL is available again').length, 1);
  });
});
