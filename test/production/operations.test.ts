import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { PassThrough } from 'node:stream';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import pg from 'pg';
import { generateApiKey } from '../../src/auth/api-key.js';
import { loadConfig } from '../../src/config/app-config.js';
import { createApp, type App } from '../../src/app/create-app.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';
import { testRedisEnv } from '../support/test-server.js';
import { GraphQLClient } from '../support/graphql-client.js';
import { startPostgresProxy as startProxy } from '../support/postgres-proxy.js';
import { givenDeveloper, givenPublished, givenSite, manifest } from '../support/fixtures.js';
import { ExecuteAddonFunctionDocument, InstallAddonDocument } from '../generated/graphql.js';

describe('operating the server', () => {
  let database: TestDatabase;
  let app: App;
  let url: string;
  let admin: GraphQLClient;
  const logs: string[] = [];
  let proxy: Awaited<ReturnType<typeof startProxy>>;
  const adminKey = generateApiKey();

  before(async () => {
    database = await createTestDatabase();
    proxy = await startProxy();
    const dbUrl = new URL(database.url);
    dbUrl.port = String(proxy.port);
    // A password in the URL: it must never appear in a log line.
    dbUrl.password = 'pg-secret-password';
    const stream = new PassThrough();
    stream.on('data', (chunk: Buffer) => logs.push(chunk.toString('utf8')));
    app = await createApp(
      loadConfig({
        NODE_ENV: 'development',
        HOST: '127.0.0.1',
        PORT: '0',
        DATABASE_URL: dbUrl.toString(),
        ...testRedisEnv(database.url),
        ADMIN_API_KEY: adminKey,
        MIGRATE_ON_START: 'false',
        LOG_LEVEL: 'debug',
        RATE_LIMIT_DEFAULT: '0',
      }),
      { logStream: stream },
    );
    url = await app.listen();
    admin = new GraphQLClient(url, adminKey);
  });
  after(async () => {
    await app.close();
    await proxy.close();
    await database.drop();
  });

  it('reports readiness, and flips it while PostgreSQL is unreachable', async () => {
    // Ready within moments of listening: the pub/sub confirms its subscriptions on its own time.
    let ready = await fetch(`${url}/readyz`);
    for (let i = 0; i < 50 && ready.status !== 200; i++) {
      await new Promise((r) => setTimeout(r, 100));
      ready = await fetch(`${url}/readyz`);
    }
    assert.equal(ready.status, 200, JSON.stringify(await ready.json()));
    await proxy.cut();
    const down = await fetch(`${url}/readyz`);
    assert.equal(down.status, 503);
    assert.deepEqual(await down.json(), { status: 'unavailable', reason: 'postgres' });
    assert.equal((await fetch(`${url}/livez`)).status, 200, 'the process itself is still alive');
    await proxy.restore();
    let status = 0;
    for (let i = 0; i < 50 && status !== 200; i++) {
      status = (await fetch(`${url}/readyz`)).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(status, 200);
  });

  it('carries the request id into execution records and keeps secrets out of the logs', async () => {
    // given
    const developer = (await givenDeveloper(admin)).client;
    const site = await givenSite(admin);
    const m = manifest({ widgets: [], configSchema: { type: 'object' }, functions: [{ name: 'hi' }] });
    await givenPublished(developer, m, `module.exports = { functions: { hi: () => 'hi' } };`);
    await site.client.ok(InstallAddonDocument, { id: m.name as string, config: {} });
    // when
    const response = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${site.key}`,
        'x-request-id': 'req-trace-42',
      },
      body: JSON.stringify({
        query: `mutation { executeAddonFunction(addonId: "${m.name}", function: "hi", data: {}) }`,
      }),
    });
    await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: 'Bearer tp_wrongwrongwrongwrongwrongwrong',
      },
      body: '{"query":"{ viewer { role } }"}',
    });
    await app.runtime.recorder.flush();
    // then
    assert.equal(response.headers.get('x-request-id'), 'req-trace-42');
    const record = await app.database.prisma.execution.findFirst({
      where: { addonName: m.name as string, kind: 'function' },
    });
    assert.equal(record?.requestId, 'req-trace-42');
    const text = logs.join('');
    assert.ok(text.includes('req-trace-42'), 'request logs carry the request id');
    for (const secret of [adminKey, site.key, 'tp_wrongwrongwrongwrongwrongwrong', 'pg-secret-password']) {
      assert.ok(!text.includes(secret), `a secret reached the logs: ${secret.slice(0, 6)}…`);
    }
  });

  it('exposes Prometheus metrics that parse and follow the naming conventions', async () => {
    await admin.raw('query Probe { viewer { role } }');
    const response = await fetch(`${url}/metrics`);
    const text = await response.text();
    assert.match(response.headers.get('content-type') ?? '', /text\/plain/);
    const samples = text
      .split('\n')
      .filter((line) => line && !line.startsWith('#'))
      .map((line) => {
        const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (-?[0-9.e+-]+|NaN|\+Inf|-Inf)$/.exec(line);
        assert.ok(match, `unparseable sample: ${line}`);
        return { name: match[1], labels: match[2] ?? '', value: Number(match[3]) };
      });
    const names = new Set(samples.map((s) => s.name));
    for (const name of [
      'process_cpu_seconds_total',
      'addon_executions_total',
      'graphql_operations_total',
      'graphql_operation_duration_seconds_bucket',
      'sandbox_workers',
      'sandbox_isolates',
      'sandbox_memory_bytes',
      'sandbox_worker_crashes_total',
      'event_deliveries_backlog',
    ]) {
      assert.ok(names.has(name), `missing metric ${name}`);
    }
    const probe = samples.find(
      (s) => s.name === 'graphql_operations_total' && s.labels.includes('operation_name="Probe"'),
    );
    assert.ok(probe && probe.value >= 1);
    const backlog = samples.filter((s) => s.name === 'event_deliveries_backlog');
    assert.deepEqual(backlog.map((s) => s.labels).sort(), [
      '{status="DEAD"}',
      '{status="PENDING"}',
      '{status="RUNNING"}',
    ]);
    assert.ok(backlog.every((s) => Number.isInteger(s.value) && s.value >= 0));
    for (const line of text.split('\n').filter((l) => l.startsWith('# TYPE '))) {
      const [, , name, type] = line.split(' ');
      if (type === 'counter') assert.match(name, /_total$/, `counter ${name} must end in _total`);
    }
    // Labels never carry ids of requests or users: the only label values are bounded sets.
    assert.ok(!/requestId|req-trace/.test(text));
  });
});

describe('graceful shutdown', () => {
  it('on SIGTERM finishes the execution in flight, stops accepting, and exits 0', async () => {
    // given: a server process and an addon whose function takes about a second
    const database = await createTestDatabase();
    const adminKey = generateApiKey();
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    const main = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/main.js');
    const child = spawn(process.execPath, ['--no-node-snapshot', main], {
      env: {
        ...process.env,
        NODE_ENV: 'production',
        LOG_LEVEL: 'silent',
        HOST: '127.0.0.1',
        PORT: String(port),
        DATABASE_URL: database.url,
        ...testRedisEnv(database.url),
        ADMIN_API_KEY: adminKey,
        RATE_LIMIT_DEFAULT: '0',
      },
      stdio: 'ignore',
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const url = `http://127.0.0.1:${port}`;
    try {
      for (let i = 0; i < 200; i++) {
        if (
          await fetch(`${url}/readyz`).then(
            (r) => r.ok,
            () => false,
          )
        )
          break;
        await new Promise((r) => setTimeout(r, 100));
      }
      const admin = new GraphQLClient(url, adminKey);
      const developer = (await givenDeveloper(admin)).client;
      const site = await givenSite(admin);
      const m = manifest({
        widgets: [],
        configSchema: { type: 'object' },
        limits: { timeoutMs: 5000, cpuTimeMs: 5000 },
        functions: [{ name: 'slow' }],
      });
      await givenPublished(
        developer,
        m,
        `module.exports = { functions: { slow: () => { const end = Date.now() + 1000; while (Date.now() < end) {} return 'finished'; } } };`,
      );
      await site.client.ok(InstallAddonDocument, { id: m.name as string, config: {} });
      // when: SIGTERM arrives while the call runs
      const inFlight = site.client.request(ExecuteAddonFunctionDocument, {
        addonId: m.name as string,
        function: 'slow',
        data: {},
      });
      await new Promise((r) => setTimeout(r, 300));
      child.kill('SIGTERM');
      await new Promise((r) => setTimeout(r, 100));
      const late = await fetch(`${url}/livez`).then(
        (r) => r.status,
        () => 'refused',
      );
      // then
      const result = await inFlight;
      assert.equal(result.data?.executeAddonFunction, 'finished');
      assert.equal(await exited, 0);
      assert.notEqual(late, 200, 'a new request after SIGTERM must not be served');
      const client = new pg.Client({ connectionString: database.url });
      await client.connect();
      const { rows } = await client.query(`SELECT status FROM "Execution" WHERE entry = 'slow'`);
      await client.end();
      assert.deepEqual(rows, [{ status: 'SUCCESS' }], 'the execution record was flushed before exit');
    } finally {
      if (child.exitCode === null) child.kill('SIGKILL');
      await database.drop();
    }
  });
});
