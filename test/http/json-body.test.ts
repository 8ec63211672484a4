import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../support/test-server.js';

/** POSTs a raw body to /graphql as JSON. */
async function post(server: TestServer, body: string) {
  const response = await fetch(`${server.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
  });
  return {
    status: response.status,
    body: (await response.json()) as { data?: unknown; error?: { code?: string; message?: unknown } },
  };
}

const TYPENAME = '"query":"{ __typename }"';

describe('JSON request bodies', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  it('parses a clean body, and one that mentions the words only in values', async () => {
    for (const body of [
      `{${TYPENAME}}`,
      `{${TYPENAME},"variables":{"note":"constructor __proto__ \\u00e9"}}`,
    ]) {
      // when
      const response = await post(server, body);
      // then
      assert.equal(response.status, 200, body);
      assert.deepEqual(response.body, { data: { __typename: 'Query' } }, body);
    }
  });

  it('refuses prototype-poisoning keys however they are spelt, with a 400 and a JSON error', async () => {
    for (const body of [
      `{${TYPENAME},"variables":{"__proto__":{"isAdmin":true}}}`,
      `{${TYPENAME},"variables":{"\\u005f\\u005fproto__":{"isAdmin":true}}}`,
      `{${TYPENAME},"variables":{"x":{"constructor":{"prototype":{"isAdmin":true}}}}}`,
      `{${TYPENAME},"variables":{"x":{"\\u0063onstructor":{"prototype":{"isAdmin":true}}}}}`,
    ]) {
      // when
      const response = await post(server, body);
      // then
      assert.equal(response.status, 400, body);
      assert.equal(response.body.error?.code, 'BAD_USER_INPUT', body);
      assert.equal(({} as Record<string, unknown>).isAdmin, undefined);
    }
  });

  it('refuses malformed and empty bodies with a 400 and a JSON error', async () => {
    for (const body of [`{${TYPENAME}`, '', '\uFEFF{', 'not json']) {
      // when
      const response = await post(server, body);
      // then
      assert.equal(response.status, 400, JSON.stringify(body));
      assert.equal(response.body.error?.code, 'BAD_USER_INPUT', JSON.stringify(body));
      assert.equal(typeof response.body.error?.message, 'string');
    }
  });
});
