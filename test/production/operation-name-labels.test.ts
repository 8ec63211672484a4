import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenSite } from '../support/fixtures.js';

describe('operation_name metric labels over HTTP', () => {
  let server: TestServer;

  before(async () => {
    server = await startTestServer();
  });
  after(() => server.close());

  it("anonymous callers' invented names fold into other and never crowd out a key's or the dashboard's names", async () => {
    // given: anonymous callers send 250 different operation names (more than any budget)
    for (let i = 0; i < 250; i += 1) await server.anonymous.raw(`query Flood${i} { __typename }`);
    const site = await givenSite(server.admin);

    // when: a site key's own name, and a dashboard operation sent anonymously
    await site.client.raw('query StorefrontHeader { viewer { role } }');
    await server.anonymous.raw('query DashboardViewer { viewer { role } }');

    // then
    const text = await (await fetch(`${server.url}/metrics`)).text();
    const totals = text.split('\n').filter((line) => line.startsWith('graphql_operations_total{'));
    assert.equal(totals.filter((line) => line.includes('operation_name="Flood')).length, 0);
    const other = totals.find(
      (line) => line.includes('operation_name="other"') && line.includes('outcome="success"'),
    );
    assert.ok(other && Number(other.split(' ').at(-1)) >= 250, other);
    assert.ok(totals.some((line) => line.includes('operation_name="StorefrontHeader"')));
    assert.ok(totals.some((line) => line.includes('operation_name="DashboardViewer"')));
  });
});
