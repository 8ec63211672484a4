import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../support/test-server.js';

describe('GraphQL operation limits', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer({
      NODE_ENV: 'production',
      GRAPHQL_MAX_DEPTH: '6',
      GRAPHQL_MAX_ALIASES: '3',
      GRAPHQL_MAX_TOKENS: '300',
      GRAPHQL_MAX_COST: '500',
    });
  });
  after(() => server.close());

  it('refuses a query deeper than the limit before running it', async () => {
    const deep =
      '{ addons { edges { node { latestVersion { addon { latestVersion { addon { name } } } } } } } }';
    const result = await server.anonymous.raw(deep);
    assert.equal(result.errors?.[0].extensions?.code, 'GRAPHQL_VALIDATION_FAILED');
    assert.match(result.errors![0].message, /depth/i);
  });

  it('refuses too many aliases', async () => {
    const result = await server.anonymous.raw(
      '{ a: viewer { role } b: viewer { role } c: viewer { role } d: viewer { role } }',
    );
    assert.equal(result.errors?.[0].extensions?.code, 'GRAPHQL_VALIDATION_FAILED');
    assert.match(result.errors![0].message, /alias/i);
  });

  it('refuses a document with too many tokens', async () => {
    const result = await server.anonymous.raw(`{ viewer { ${'role '.repeat(400)} } }`);
    assert.ok(result.errors?.[0]);
    assert.match(result.errors![0].message, /token/i);
    assert.ok(
      ['GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED'].includes(result.errors![0].extensions!.code!),
    );
  });

  it('prices list fields by the page size asked for, and refuses an operation over the cost limit', async () => {
    const cheap = await server.anonymous.raw(
      '{ addons(first: 5) { edges { node { name widgets { name } } } } }',
    );
    const costly = await server.anonymous.raw(
      '{ addons(first: 100) { edges { node { name versions { version manifest permissions } } } } }',
    );
    assert.equal(cheap.errors, undefined);
    assert.equal(costly.errors?.[0].extensions?.code, 'QUERY_TOO_COMPLEX');
    assert.equal(costly.errors![0].extensions?.maxCost, 500);
    assert.ok((costly.errors![0].extensions?.cost as number) > 500);
  });

  it('gives no field suggestions in production', async () => {
    const result = await server.anonymous.raw('{ addon(name: "x") { nam } }');
    assert.equal(result.errors?.[0].extensions?.code, 'GRAPHQL_VALIDATION_FAILED');
    assert.doesNotMatch(result.errors![0].message, /Did you mean/);
  });

  it('refuses batched requests', async () => {
    const response = await fetch(`${server.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([{ query: '{ __typename }' }, { query: '{ __typename }' }]),
    });
    assert.equal(response.status, 400);
  });
});
