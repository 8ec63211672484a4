import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Prisma } from '../../src/generated/prisma/client.js';
import { addonSearchSql, containsPattern } from '../../src/addons/addon.repository.js';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenDeveloper, givenPublished, manifest, uniqueName } from '../support/fixtures.js';
import { ListAddonsDocument } from '../generated/graphql.js';
import type { GraphQLClient } from '../support/graphql-client.js';

describe('addon search', () => {
  let server: TestServer;
  let developer: GraphQLClient;

  before(async () => {
    server = await startTestServer();
    developer = (await givenDeveloper(server.admin)).client;
  });
  after(() => server.close());

  const names = async (search: string, extra: { first?: number; after?: string } = {}) => {
    const result = await server.anonymous.ok(ListAddonsDocument, { first: 50, search, ...extra });
    return {
      names: result.addons.edges.map((e) => e.node.name),
      totalCount: result.addons.totalCount,
      endCursor: result.addons.pageInfo.endCursor,
      hasNextPage: result.addons.pageInfo.hasNextPage,
    };
  };

  it('matches text in any of name, display name and description, ignoring case, sorted by name', async () => {
    // given: one word, in a different column of each addon
    const word = uniqueName('Quokka').replace(/-/g, '');
    const inName = manifest({ name: uniqueName(`z-${word.toLowerCase()}`) });
    const inDisplayName = manifest({ name: uniqueName('m-search'), displayName: `The ${word} widget` });
    const inDescription = manifest({
      name: uniqueName('a-search'),
      description: `sells ${word.toUpperCase()}s`,
    });
    const elsewhere = manifest({ name: uniqueName('b-search'), description: 'nothing to see' });
    for (const m of [inName, inDisplayName, inDescription, elsewhere]) await givenPublished(developer, m);
    // when
    const found = await names(word.toLowerCase());
    // then
    assert.deepEqual(found.names, [inDescription.name, inDisplayName.name, inName.name]);
    assert.equal(found.totalCount, 3);
  });

  it('takes %, _ and \\ in the search literally', async () => {
    // given
    const tag = uniqueName('wild').replace(/-/g, '');
    const percent = manifest({ description: `${tag} 100% organic` });
    const noPercent = manifest({ description: `${tag} 100 organic` });
    const underscore = manifest({ description: `${tag} snake_case` });
    const noUnderscore = manifest({ description: `${tag} snakeXcase` });
    const backslash = manifest({ description: `${tag} C:\\temp` });
    const noBackslash = manifest({ description: `${tag} C:temp` });
    for (const m of [percent, noPercent, underscore, noUnderscore, backslash, noBackslash]) {
      await givenPublished(developer, m);
    }
    // when / then: each wildcard matches only itself
    assert.deepEqual((await names(`${tag} 100%`)).names, [percent.name]);
    assert.deepEqual((await names(`${tag} snake_case`)).names, [underscore.name]);
    assert.deepEqual((await names(`${tag} C:\\temp`)).names, [backslash.name]);
    // a lone wildcard is a character like another: no addon here holds "%%" or "__"
    assert.equal((await names('%%')).totalCount, 0);
    assert.equal((await names('__')).totalCount, 0);
    assert.equal(containsPattern('a%b_c\\d'), '%a\\%b\\_c\\\\d%');
  });

  it('never matches across two columns', async () => {
    // given: a display name ending with one half of the search, the description starting with the other
    const left = uniqueName('left').replace(/-/g, '');
    const right = uniqueName('right').replace(/-/g, '');
    await givenPublished(
      developer,
      manifest({ displayName: `Ends ${left}`, description: `${right} starts` }),
    );
    // when / then: joined with nothing, a space, or the separator the index joins them with
    assert.equal((await names(`${left}${right}`)).totalCount, 0);
    assert.equal((await names(`${left} ${right}`)).totalCount, 0);
    assert.equal((await names(`${left}\u001f${right}`)).totalCount, 0);
    assert.equal((await names(left)).totalCount, 1);
  });

  it('counts every match on every page, after the last page too, and with a category', async () => {
    // given: five matches, two of them analytics
    const word = uniqueName('pangolin').replace(/-/g, '');
    for (let i = 0; i < 5; i++) {
      await givenPublished(
        developer,
        manifest({ description: `${word} ${i}`, category: i < 2 ? 'ANALYTICS' : 'MARKETING' }),
      );
    }
    // when: pages of two
    const pages: Awaited<ReturnType<typeof names>>[] = [await names(word, { first: 2 })];
    while (pages.at(-1)!.hasNextPage)
      pages.push(await names(word, { first: 2, after: pages.at(-1)!.endCursor! }));
    const last = pages.at(-1)!;
    const past = await names(word, { first: 2, after: last.endCursor! });
    const analytics = await server.anonymous.ok(ListAddonsDocument, { search: word, category: 'ANALYTICS' });
    // then
    assert.deepEqual(
      pages.map((p) => p.names.length),
      [2, 2, 1],
    );
    assert.deepEqual(
      pages.map((p) => p.totalCount),
      [5, 5, 5],
    );
    const all = pages.flatMap((p) => p.names);
    assert.deepEqual(all, [...all].sort());
    assert.deepEqual(past.names, []);
    assert.equal(past.totalCount, 5);
    assert.equal(analytics.addons.totalCount, 2);
    assert.equal(analytics.addons.edges.length, 2);
  });

  it('is planned on the trigram index', async () => {
    // Seq scans off: on a table this small PostgreSQL would rightly scan it, whatever the index.
    const plan = await server.app.database.prisma.$transaction(async (tx) => {
      await tx.$executeRaw`SET LOCAL enable_seqscan = off`;
      return tx.$queryRaw<{ 'QUERY PLAN': string }[]>(
        Prisma.sql`EXPLAIN ${addonSearchSql({ search: 'widget', take: 21, afterName: 'a' })}`,
      );
    });
    const text = plan.map((row) => row['QUERY PLAN']).join('\n');
    assert.match(text, /Addon_searchText_trgm_idx/, text);
  });
});
