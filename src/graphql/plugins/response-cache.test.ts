import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ApolloServer } from '@apollo/server';
import { buildSchema } from 'graphql';
import type { GraphQLContext } from '../context.js';
import { useResponseCache, type ResponseCacheOptions } from './response-cache.js';

const SCHEMA = buildSchema(`
  type Query { item(id: ID!): String, other: String }
  type Mutation { item(id: ID!): String }
`);

/**
 * An Apollo server over a schema whose `item` resolver reads `items` and reports that read (current
 * while the item is unchanged); `executions` counts the resolver calls.
 */
async function givenServer(options: Partial<ResponseCacheOptions> = {}) {
  const items = new Map<string, string>();
  let executions = 0;
  // A root value's function gets (args, context): graphql-js's default resolver calls it so.
  const item = ({ id }: { id: string }, context: GraphQLContext) => {
    executions += 1;
    const value = items.get(id) ?? null;
    context.sources?.add(() => items.get(id) === value);
    return value;
  };
  const server = new ApolloServer<GraphQLContext>({
    schema: SCHEMA,
    rootValue: { item, other: () => 'other' },
    plugins: [useResponseCache(SCHEMA, { fields: ['Query.item'], scope: () => 'everyone', ...options })],
  });
  await server.start();
  const ask = async (query: string, variables: Record<string, unknown> = {}) => {
    const response = await server.executeOperation(
      { query, variables },
      { contextValue: {} as GraphQLContext },
    );
    assert.equal(response.body.kind, 'single');
    return JSON.parse(JSON.stringify(response.body.kind === 'single' ? response.body.singleResult : null));
  };
  return { items, ask, executions: () => executions, stop: () => server.stop() };
}

const ITEM = 'query($id: ID!) { item(id: $id) }';

describe('useResponseCache', () => {
  it('answers a repeated query from the response kept, until what it read changes', async () => {
    const { items, ask, executions, stop } = await givenServer();
    items.set('1', 'one');
    const first = await ask(ITEM, { id: '1' });
    const again = await ask(ITEM, { id: '1' });
    items.set('1', 'uno');
    const changed = await ask(ITEM, { id: '1' });
    assert.deepEqual(first, { data: { item: 'one' } });
    assert.deepEqual(again, first);
    assert.deepEqual(changed, { data: { item: 'uno' } });
    assert.equal(executions(), 2);
    await stop();
  });

  it('keeps at most its count of responses, the least recently used going first', async () => {
    const { items, ask, executions, stop } = await givenServer({ maxEntries: 2 });
    for (const id of ['1', '2', '3']) items.set(id, `item ${id}`);
    for (const id of ['1', '2', '1', '3']) await ask(ITEM, { id });
    const before = executions();
    await ask(ITEM, { id: '1' });
    await ask(ITEM, { id: '2' });
    assert.equal(executions() - before, 1, '2 went first; 1 was used since');
    await stop();
  });

  it('keeps no more bytes than its bound, counting key and text', async () => {
    const { items, ask, executions, stop } = await givenServer({ maxBytes: 400 });
    items.set('small', 'x');
    items.set('large', 'y'.repeat(200));
    await ask(ITEM, { id: 'large' });
    await ask(ITEM, { id: 'large' });
    await ask(ITEM, { id: 'small' });
    await ask(ITEM, { id: 'small' });
    assert.equal(executions(), 3, 'the large response was answered, never kept; the small one was');
    await stop();
  });

  it('never keeps mutations, other fields, errors, long variables or responses that read nothing', async () => {
    const { items, ask, executions, stop } = await givenServer({ maxVariablesChars: 30 });
    items.set('1', 'one');
    const twice = async (query: string, variables?: Record<string, unknown>) => {
      await ask(query, variables);
      await ask(query, variables);
    };
    await twice('mutation { item(id: "1") }');
    await twice('{ item(id: "1") other }');
    await twice('{ item(id: "1") ... on Query { other } }');
    await twice(ITEM, { id: '1', padding: 'z'.repeat(30) });
    await twice('{ __typename }');
    await twice('query($id: ID!) { item(id: $id) }', {});
    assert.equal(executions(), 8);
    await stop();
  });
});
