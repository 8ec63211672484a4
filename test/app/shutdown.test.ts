import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { generateApiKey } from '../../src/auth/api-key.js';
import { createTestDatabase, type TestDatabase } from '../support/test-database.js';
import { testRedisEnv } from '../support/test-server.js';
import { startChildServer } from '../support/child-server.js';
import { GraphQLClient, type GraphQLResponse } from '../support/graphql-client.js';
import { givenDeveloper, givenInstalledAddon } from '../support/fixtures.js';

const DRAIN_MS = 1_000;
const RUNS = 3;
const CLIENTS = 8;

interface Outcome {
  at: number;
  status?: number;
  connection?: string;
  reused: boolean;
  error?: string;
}

/** One GET on a keep-alive agent: its status and Connection header, or its error, and whether the socket was reused. */
function get(agent: http.Agent, url: string): Promise<Outcome> {
  return new Promise((resolve) => {
    const request = http.get(url, { agent }, (response) => {
      response.resume();
      response.on('end', () =>
        resolve({
          at: Date.now(),
          status: response.statusCode,
          connection: response.headers.connection,
          reused: request.reusedSocket,
        }),
      );
    });
    request.on('error', (error: NodeJS.ErrnoException) =>
      resolve({ at: Date.now(), reused: request.reusedSocket, error: error.code ?? error.message }),
    );
  });
}

describe('shutdown: drain, then close', () => {
  let database: TestDatabase;
  let slow: Server;
  let slowPort: number;
  const adminKey = generateApiKey();

  before(async () => {
    database = await createTestDatabase();
    // What the slow function waits for: an answer 800 ms after the request.
    slow = createServer((_req, res) => void setTimeout(() => res.end('{"ok":true}'), 800));
    await new Promise<void>((resolve) => slow.listen(0, '127.0.0.1', resolve));
    slowPort = (slow.address() as AddressInfo).port;
  });
  after(async () => {
    slow.closeAllConnections();
    await new Promise((resolve) => slow.close(resolve));
    await database.drop();
  });

  it(`answers /readyz 503 at once, keeps serving with Connection: close for the drain, finishes in-flight work, and resets no reused keep-alive connection (${RUNS} runs)`, async (t) => {
    let addon: string | null = null;
    let siteKey = '';
    for (let run = 0; run < RUNS; run += 1) {
      // given: a server with keep-alive clients sending request after request
      const server = await startChildServer({
        DATABASE_URL: database.url,
        ...testRedisEnv(database.url),
        ADMIN_API_KEY: adminKey,
        MIGRATE_ON_START: 'false',
        RATE_LIMIT_DEFAULT: '0',
        SHUTDOWN_DRAIN_MS: String(DRAIN_MS),
        SANDBOX_FETCH_PRIVATE_NETWORKS: 'true',
      });
      if (addon === null) {
        const admin = new GraphQLClient(server.url, adminKey);
        const developer = (await givenDeveloper(admin)).client;
        const installed = await givenInstalledAddon(
          admin,
          developer,
          {
            permissions: ['http.fetch'],
            http: { allow: [`127.0.0.1:${slowPort}`] },
            functions: [{ name: 'slow' }],
            limits: { timeoutMs: 5000 },
          },
          `module.exports = { functions: { slow: async (d, ctx) => (await ctx.http.fetch('http://127.0.0.1:${slowPort}/')).json() } };`,
        );
        addon = installed.name;
        siteKey = installed.site.key;
      }
      const agent = new http.Agent({ keepAlive: true, maxSockets: CLIENTS });
      const outcomes: Outcome[] = [];
      let stop = false;
      const loops = Array.from({ length: CLIENTS }, async () => {
        while (!stop) {
          const outcome = await get(agent, `${server.url}/livez`);
          outcomes.push(outcome);
          if (outcome.error === 'ECONNREFUSED') return;
        }
      });
      await new Promise((resolve) => setTimeout(resolve, 300));

      // when: SIGTERM, with a slow call sent just before the drain ends
      const signalled = Date.now();
      server.child.kill('SIGTERM');
      // The signal is read between requests: /readyz turns at the first turn after it.
      let readyz = await fetch(`${server.url}/readyz`);
      while (readyz.status === 200 && Date.now() - signalled < 1_000)
        readyz = await fetch(`${server.url}/readyz`);
      const draining = Date.now();
      const readyzAfter = draining - signalled;
      await new Promise((resolve) => setTimeout(resolve, DRAIN_MS - 300));
      const slowCall: Promise<GraphQLResponse<{ executeAddonFunction: unknown }>> = new GraphQLClient(
        server.url,
        siteKey,
      ).raw('mutation($a: ID!) { executeAddonFunction(addonId: $a, function: "slow", data: {}) }', {
        a: addon,
      });
      const exitCode = await server.exited;
      stop = true;
      await Promise.all(loops);
      agent.destroy();
      const slowResult = await slowCall;

      // then
      const afterSignal = outcomes.filter((o) => o.at > signalled && o.status !== undefined);
      // Answered once the server was seen draining (responses made before it read the signal may
      // still be on their way when it is sent).
      const duringDrain = outcomes.filter((o) => o.at > draining + 20 && o.status !== undefined);
      const resetOnReused = outcomes.filter(
        (o) => o.reused && o.error !== undefined && o.error !== 'ECONNREFUSED',
      );
      const resetOnNew = outcomes.filter(
        (o) => !o.reused && o.error !== undefined && o.error !== 'ECONNREFUSED',
      );
      t.diagnostic(
        `run ${run + 1}: ${outcomes.length} requests, ${afterSignal.length} answered after SIGTERM, ${resetOnReused.length} reset on a reused connection, ${resetOnNew.length} on a new one; /readyz ${readyz.status} after ${readyzAfter} ms`,
      );
      assert.equal(readyz.status, 503);
      assert.ok(readyzAfter < 500, `/readyz turned 503 ${readyzAfter} ms after SIGTERM`);
      assert.deepEqual(await readyz.json(), { status: 'unavailable', reason: 'draining' });
      assert.ok(duringDrain.length > CLIENTS, 'it kept serving while draining');
      assert.ok(
        duringDrain.every((o) => o.connection === 'close'),
        'every response while draining says Connection: close',
      );
      assert.deepEqual(resetOnReused, [], 'no request on a reused connection was reset');
      assert.deepEqual(slowResult.data, { executeAddonFunction: { ok: true } }, 'in-flight work finished');
      assert.equal(exitCode, 0);
      await server.kill();
    }
  });
});
