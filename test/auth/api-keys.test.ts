import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenDeveloper, givenSite } from '../support/fixtures.js';
import {
  CreateApiKeyDocument,
  RevokeApiKeyDocument,
  SitesDocument,
  ViewerDocument,
} from '../generated/graphql.js';

describe('API keys', () => {
  let server: TestServer;

  before(async () => {
    // No key cache, so a revocation shows at once on this instance.
    server = await startTestServer({ API_KEY_CACHE_SECONDS: '0' });
  });
  after(() => server.close());

  it('issues prefixed random keys and stores only their SHA-256', async () => {
    // given
    const site = await givenSite(server.admin);
    // when
    const rows = await server.app.database.prisma.apiKey.findMany();
    // then
    assert.match(site.key, /^tp_[A-Za-z0-9_-]{32}$/);
    const stored = JSON.stringify(rows);
    assert.ok(!stored.includes(site.key), 'the raw key must not be stored');
    assert.ok(!stored.includes(server.adminKey), 'the bootstrap key must not be stored');
    const hash = createHash('sha256').update(site.key).digest('hex');
    assert.equal(rows.filter((r) => r.hash === hash).length, 1);
  });

  it('tells each role who it is', async () => {
    const site = await givenSite(server.admin);
    const developer = await givenDeveloper(server.admin);
    assert.deepEqual((await site.client.ok(ViewerDocument)).viewer, {
      role: 'site',
      siteId: site.siteId,
      developerId: null,
    });
    assert.equal((await developer.client.ok(ViewerDocument)).viewer.role, 'developer');
    assert.equal((await server.admin.ok(ViewerDocument)).viewer.role, 'admin');
    assert.equal((await server.anonymous.ok(ViewerDocument)).viewer.role, 'anonymous');
  });

  it('refuses an unknown or malformed key with 401 UNAUTHENTICATED rather than treating it as anonymous', async () => {
    for (const key of ['tp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', 'not-a-key']) {
      const result = await server.anonymous.as(key).request(ViewerDocument);
      assert.equal(result.status, 401);
      assert.equal(result.errors?.[0].extensions?.code, 'UNAUTHENTICATED');
    }
  });

  it('treats an empty Authorization header, or "Bearer" with nothing after it, as no header', async () => {
    for (const header of ['', '   ', 'Bearer', 'Bearer ', 'bearer  ']) {
      // when
      const response = await fetch(`${server.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: header },
        body: JSON.stringify({ query: '{ viewer { role } }' }),
      });
      // then
      assert.equal(response.status, 200, JSON.stringify(header));
      assert.deepEqual(await response.json(), { data: { viewer: { role: 'anonymous' } } });
    }
  });

  it('refuses a malformed Authorization header with a message saying what is wrong, never echoing it', async () => {
    const cases: [string, RegExp][] = [
      ['Basic dXNlcjpwYXNz', /expected "Bearer <API key>", got the "Basic" scheme/],
      ['Bearer tp_one tp_two', /expected one API key after "Bearer", got several words/],
      ['tp_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA', /got a value without the "Bearer" scheme/],
      ['tp_secretsecretsecret more', /got a value without the "Bearer" scheme/],
    ];
    for (const [header, message] of cases) {
      // when: GraphQL and REST alike
      const graphql = await fetch(`${server.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: header },
        body: JSON.stringify({ query: '{ viewer { role } }' }),
      });
      const rest = await fetch(`${server.url}/api/addons/anything/execute`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: header },
        body: JSON.stringify({ action: 'x' }),
      });
      // then
      const body = (await graphql.json()) as { errors: { message: string; extensions: { code: string } }[] };
      assert.equal(graphql.status, 401, header);
      assert.equal(body.errors[0].extensions.code, 'UNAUTHENTICATED');
      assert.match(body.errors[0].message, message);
      assert.ok(!body.errors[0].message.includes('secret') && !body.errors[0].message.includes('dXNl'));
      const restBody = (await rest.json()) as { error: { code: string; message: string } };
      assert.equal(rest.status, 401);
      assert.equal(restBody.error.code, 'UNAUTHENTICATED');
      assert.match(restBody.error.message, message);
    }
  });

  it('lets only admins create keys and list sites', async () => {
    const site = await givenSite(server.admin);
    const created = await site.client.request(CreateApiKeyDocument, { role: 'ADMIN' });
    const sites = await site.client.request(SitesDocument);
    assert.equal(created.errors?.[0].extensions?.code, 'FORBIDDEN');
    assert.equal(sites.errors?.[0].extensions?.code, 'FORBIDDEN');
  });

  it('validates key creation input, naming the field', async () => {
    const noSite = await server.admin.request(CreateApiKeyDocument, { role: 'SITE' });
    const badSite = await server.admin.request(CreateApiKeyDocument, {
      role: 'SITE',
      siteId: '00000000-0000-4000-8000-000000000000',
    });
    const noDeveloper = await server.admin.request(CreateApiKeyDocument, { role: 'DEVELOPER' });
    assert.match(noSite.errors![0].message, /siteId/);
    assert.match(badSite.errors![0].message, /siteId/);
    assert.match(noDeveloper.errors![0].message, /developerName/);
    for (const r of [noSite, badSite, noDeveloper])
      assert.equal(r.errors?.[0].extensions?.code, 'BAD_USER_INPUT');
  });

  it('stops accepting a revoked key', async () => {
    // given
    const { createApiKey } = await server.admin.ok(CreateApiKeyDocument, {
      role: 'DEVELOPER',
      developerName: 'rev',
    });
    const client = server.admin.as(createApiKey.key);
    assert.equal((await client.ok(ViewerDocument)).viewer.role, 'developer');
    // when
    const { revokeApiKey } = await server.admin.ok(RevokeApiKeyDocument, { id: createApiKey.apiKey.id });
    // then
    assert.ok(revokeApiKey.revokedAt);
    const after = await client.request(ViewerDocument);
    assert.equal(after.errors?.[0].extensions?.code, 'UNAUTHENTICATED');
  });
});
