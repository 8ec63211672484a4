import { testRedisEnv } from '../support/test-server.js';
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { generateApiKey } from '../../src/auth/api-key.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';
import { startTestServerOn, type TestServer } from './test-instance.js';
import { GraphQLClient } from '../support/graphql-client.js';
import { givenDeveloper, givenSite } from '../support/fixtures.js';
import { DeliveriesDocument, EmitEventDocument } from '../generated/graphql.js';
import { eventually, givenAddonOnSite } from './helpers.js';
import { freePort } from '../support/free-port.js';

const mainJs = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/main.js');
const EVENTS = 12;
const LEASE_MS = '1500';

/** A handler that takes about a second: it calls a slow HTTP endpoint of the test. */
const slowHandler = (port: number) => `module.exports = { handlers: {
  onPaid: async (event, ctx) => {
    await ctx.http.fetch('http://127.0.0.1:${port}/handled?event=' + event.idempotencyKey);
  },
} };`;

/** The real server as its own process (its own process group, so SIGKILL takes its sandbox workers too). */
async function startChildServer(env: Record<string, string>): Promise<{ url: string; child: ChildProcess }> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--no-node-snapshot', mainJs], {
    env: {
      ...process.env,
      NODE_ENV: 'test',
      LOG_LEVEL: 'silent',
      HOST: '127.0.0.1',
      PORT: String(port),
      ...env,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
    detached: true,
  });
  const url = `http://127.0.0.1:${port}`;
  await eventually(
    async () => {
      if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
      return (await fetch(`${url}/readyz`)).ok ? true : undefined;
    },
    'the child server to be ready',
    60_000,
  );
  return { url, child };
}

describe('a server killed with SIGKILL in the middle of deliveries', () => {
  let database: TestDatabase;
  let slow: Server;
  let slowPort: number;
  const hits = new Map<string, number>();
  let child: ChildProcess | null = null;
  let survivor: TestServer | null = null;

  before(async () => {
    database = await createTestDatabase();
    slow = createServer((req, res) => {
      const event = new URL(req.url ?? '/', 'http://x').searchParams.get('event') ?? '';
      hits.set(event, (hits.get(event) ?? 0) + 1);
      setTimeout(() => res.end('ok'), 800);
    });
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
    slowPort = (slow.address() as AddressInfo).port;
  });
  after(async () => {
    if (child && child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
    await survivor?.close();
    await database.drop();
    slow.closeAllConnections();
    await new Promise((resolve) => slow.close(resolve));
  });

  it('loses none: another instance takes over the expired claims and every delivery completes', async () => {
    // given: a child server with deliveries of a slow handler in flight
    const adminKey = generateApiKey();
    const env = {
      DATABASE_URL: database.url,
      ...testRedisEnv(database.url),
      ADMIN_API_KEY: adminKey,
      MIGRATE_ON_START: 'false',
      RATE_LIMIT_DEFAULT: '0',
      DELIVERY_LEASE_MS: LEASE_MS,
      DELIVERY_CONCURRENCY: '8',
      // The slow handler's server listens on 127.0.0.1.
      SANDBOX_FETCH_PRIVATE_NETWORKS: 'true',
    };
    const started = await startChildServer(env);
    child = started.child;
    const admin = new GraphQLClient(started.url, adminKey);
    const developer = (await givenDeveloper(admin)).client;
    const site = await givenSite(admin);
    await givenAddonOnSite(
      developer,
      site,
      {
        permissions: ['http.fetch'],
        http: { allow: [`127.0.0.1:${slowPort}`] },
        events: { handles: { 'order.paid': 'onPaid' } },
        limits: { timeoutMs: 5000 },
      },
      slowHandler(slowPort),
    );
    const ids: string[] = [];
    for (let i = 0; i < EVENTS; i += 1) {
      ids.push((await site.client.ok(EmitEventDocument, { name: 'order.paid', data: { i } })).emitEvent.id);
    }
    await eventually(async () => (hits.size >= 2 ? true : undefined), 'handlers to be running');

    // when: the process group is killed mid-delivery, and another instance starts on the same database
    process.kill(-child.pid!, 'SIGKILL');
    await new Promise((resolve) => child!.once('exit', resolve));
    const db = new pg.Client({ connectionString: database.url });
    await db.connect();
    const { rows: interrupted } = await db.query<{ id: string }>(
      `SELECT id FROM "Delivery" WHERE status = 'RUNNING'`,
    );
    await db.end();
    survivor = await startTestServerOn(database.url, adminKey, { DELIVERY_LEASE_MS: LEASE_MS });

    // then: every delivery completes, the interrupted ones after their lease expired
    const client = survivor.admin;
    const all = await eventually(
      async () => {
        const { deliveries } = await client.ok(DeliveriesDocument, { first: 100 });
        const rows = deliveries.edges.map((e) => e.node);
        return rows.length === EVENTS && rows.every((d) => d.status === 'SUCCEEDED') ? rows : undefined;
      },
      'every delivery to succeed',
      30_000,
    );
    assert.ok(interrupted.length > 0, 'some deliveries were running when the server was killed');
    assert.deepEqual(new Set(all.map((d) => d.eventId)), new Set(ids));
    for (const id of ids) assert.ok((hits.get(id) ?? 0) >= 1, `event ${id} reached its handler`);
    for (const { id } of interrupted) {
      const delivery = all.find((d) => d.id === id)!;
      assert.equal(delivery.attemptLog[0].status, 'LEASE_EXPIRED');
      assert.equal(delivery.attemptLog.at(-1)!.status, 'SUCCEEDED');
    }
  });
});
