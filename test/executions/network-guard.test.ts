import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenDeveloper, givenInstalledAddon } from '../support/fixtures.js';
import { ExecuteAddonFunctionDocument } from '../generated/graphql.js';

const FETCHER = `module.exports = { functions: { get: async (d, ctx) => {
  const r = await ctx.http.fetch(d.url);
  return { status: r.status, body: r.body };
} } };`;

describe('ctx.http.fetch with the default network guard', () => {
  let server: TestServer;
  let upstream: Server;
  let port: number;
  let requests = 0;

  before(async () => {
    // The platform default: private networks refused (the other test servers allow them).
    server = await startTestServer({ SANDBOX_FETCH_PRIVATE_NETWORKS: 'false' });
    upstream = createServer((_req, res) => {
      requests += 1;
      res.end('internal secret');
    });
    await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
    port = (upstream.address() as AddressInfo).port;
  });
  after(async () => {
    await new Promise((resolve) => upstream.close(resolve));
    await server.close();
  });

  it('refuses an allow-listed host that is, or resolves to, a loopback address, before connecting', async () => {
    // given: an addon whose manifest allows both names of the internal server
    const developer = (await givenDeveloper(server.admin)).client;
    const { site, name } = await givenInstalledAddon(
      server.admin,
      developer,
      {
        permissions: ['http.fetch'],
        http: { allow: [`localhost:${port}`, `127.0.0.1:${port}`] },
        functions: [{ name: 'get' }],
      },
      FETCHER,
    );
    // when
    const outcomes = [];
    for (const url of [`http://localhost:${port}/`, `http://127.0.0.1:${port}/`]) {
      outcomes.push(
        await site.client.request(ExecuteAddonFunctionDocument, {
          addonId: name,
          function: 'get',
          data: { url },
        }),
      );
    }
    // then
    for (const outcome of outcomes) {
      assert.equal(outcome.errors?.[0].extensions?.code, 'PERMISSION_DENIED', JSON.stringify(outcome));
      assert.match(outcome.errors![0].message, /private, loopback or reserved address/);
    }
    assert.equal(requests, 0);
  });
});
