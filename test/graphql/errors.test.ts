import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../support/test-server.js';

describe('GraphQL errors over HTTP', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  it('reports a syntax error with GRAPHQL_PARSE_FAILED and no stack trace', async () => {
    const result = await server.anonymous.raw('{ addons { ');
    assert.equal(result.status, 400);
    assert.equal(result.errors?.[0].extensions?.code, 'GRAPHQL_PARSE_FAILED');
    assert.equal(result.errors?.[0].extensions?.stacktrace, undefined);
  });

  it('reports an unknown field without suggesting field names', async () => {
    const result = await server.anonymous.raw('{ addonz { totalCount } }');
    assert.equal(result.errors?.[0].extensions?.code, 'GRAPHQL_VALIDATION_FAILED');
    assert.doesNotMatch(result.errors![0].message, /Did you mean/);
  });

  it('reports a bad variable with BAD_USER_INPUT naming it', async () => {
    const result = await server.anonymous.raw(
      'query ($c: AddonCategory) { addons(category: $c) { totalCount } }',
      {
        c: 'GAMES',
      },
    );
    assert.equal(result.errors?.[0].extensions?.code, 'BAD_USER_INPUT');
    assert.match(result.errors![0].message, /\$c/);
  });

  it('refuses a GET mutation and a simple-request POST (CSRF prevention)', async () => {
    const get = await fetch(
      `${server.url}/graphql?query=${encodeURIComponent('mutation { createSite(name: "x") { id } }')}`,
      {
        headers: { 'apollo-require-preflight': 'true' },
      },
    );
    assert.equal(get.status, 405);
    const simple = await fetch(`${server.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: JSON.stringify({ query: '{ viewer { role } }' }),
    });
    assert.equal(simple.status, 400);
  });

  it('answers unknown REST routes with a JSON 404', async () => {
    const response = await fetch(`${server.url}/api/nothing-here`);
    assert.equal(response.status, 404);
    assert.equal(((await response.json()) as { error: { code: string } }).error.code, 'NOT_FOUND');
  });

  it('serves liveness and readiness', async () => {
    const live = await fetch(`${server.url}/livez`);
    assert.equal(live.status, 200);
    // Ready once the pub/sub's subscriptions are in place, which may follow the listen by a moment.
    let ready = await fetch(`${server.url}/readyz`);
    for (let i = 0; i < 50 && ready.status !== 200; i += 1) {
      await new Promise((resolve) => setTimeout(resolve, 100));
      ready = await fetch(`${server.url}/readyz`);
    }
    assert.equal(ready.status, 200, await ready.clone().text());
    assert.deepEqual(await ready.json(), { status: 'ready' });
  });
});
