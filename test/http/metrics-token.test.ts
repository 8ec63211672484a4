import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../support/test-server.js';

const TOKEN = 'scrape-4f9c2a7e1b3d5f60';

describe('METRICS_TOKEN: /metrics for the scraper only', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer({ METRICS_TOKEN: TOKEN });
  });
  after(() => server.close());

  const scrape = (authorization?: string) =>
    fetch(`${server.url}/metrics`, { headers: authorization ? { authorization } : {} });

  it('answers 401 with a JSON body without the token, or with another, and the metrics with it', async () => {
    // when: scraped with no token, a wrong one, the token without its scheme, an API key, and the token
    const [none, wrong, bare, apiKey, right] = await Promise.all([
      scrape(),
      scrape(`Bearer ${TOKEN}x`),
      scrape(TOKEN),
      scrape(`Bearer ${server.adminKey}`),
      scrape(`Bearer ${TOKEN}`),
    ]);

    // then: only the token opens it
    for (const refused of [none, wrong, bare, apiKey]) {
      assert.equal(refused.status, 401);
      assert.equal(refused.headers.get('www-authenticate'), 'Bearer');
      const body = (await refused.json()) as { error: { code: string; message: string } };
      assert.equal(body.error.code, 'UNAUTHENTICATED');
      assert.match(body.error.message, /METRICS_TOKEN/);
    }
    assert.equal(right.status, 200);
    assert.match(await right.text(), /^process_cpu_user_seconds_total /m);
  });

  it('leaves the health probes open', async () => {
    assert.equal((await fetch(`${server.url}/livez`)).status, 200);
    // Ready or not (a 503 names its reason), a probe without the token is answered, not refused.
    const ready = await fetch(`${server.url}/readyz`);
    assert.notEqual(ready.status, 401);
    assert.match(((await ready.json()) as { status: string }).status, /^(ready|unavailable)$/);
  });
});
