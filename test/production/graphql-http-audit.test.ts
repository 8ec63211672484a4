import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { auditServer } from 'graphql-http';
import { startTestServer, type TestServer } from '../support/test-server.js';

describe('GraphQL over HTTP conformance (graphql-http audits)', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer({ NODE_ENV: 'production' });
  });
  after(() => server.close());

  it('passes every MUST audit against the live server', async () => {
    const results = await auditServer({ url: `${server.url}/graphql` });
    const musts = results.filter((r) => r.name.startsWith('MUST'));
    const failed = musts.filter((r) => r.status !== 'ok');
    assert.ok(musts.length >= 10, `expected the MUST audits to run, got ${musts.length}`);
    assert.deepEqual(
      failed.map((r) => `${r.name}: ${'reason' in r ? r.reason : ''}`),
      [],
    );
  });
});
