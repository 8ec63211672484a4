import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ApolloServer, ApolloServerPlugin } from '@apollo/server';
import type { GraphQLSchema } from 'graphql';
import { createSchema } from '../graphql/schema.js';
import { createApolloServer } from '../graphql/apollo.js';
import type { GraphQLContext } from '../graphql/context.js';
import type { Actor } from '../auth/actor.js';
import { AppError, ErrorCode, NotFoundError } from '../errors/index.js';
import { RawJson, stringifyWithRawJson } from '../shared/raw-json.js';
import type { ExecuteFunctionArgs } from './execution.service.js';
import { useExecuteFunctionFastPath } from './execute-function.plugin.js';

const SITE = '00000000-0000-4000-8000-000000000001';

/**
 * An execution service that answers `echo` with its arguments as JSON text, fails `boom` with an
 * addon error and `bug` with a plain Error (masked), and `missing` addons with NOT_FOUND. It
 * records every run: a run the fast path started must not be repeated by the resolver.
 */
function givenExecutions() {
  const runs: ExecuteFunctionArgs[] = [];
  const executeFunction = async (actor: Actor, args: ExecuteFunctionArgs): Promise<RawJson> => {
    runs.push({ ...args, requestId: undefined });
    await Promise.resolve();
    if (args.addon === 'missing') throw new NotFoundError('Addon', args.addon);
    if (args.functionName === 'boom') throw new AppError(ErrorCode.AddonError, 'The addon threw: boom');
    if (args.functionName === 'bug') throw new Error('internal detail');
    if (args.functionName === 'nothing') return new RawJson('null');
    return new RawJson(JSON.stringify({ actor: actor.kind, ...args, requestId: undefined }));
  };
  return { runs, services: { executions: { executeFunction } } };
}

/** Counts operations that went through graphql-js execution. */
function executionCounter() {
  const counter = { executed: 0 };
  const plugin: ApolloServerPlugin<GraphQLContext> = {
    async requestDidStart() {
      return {
        async executionDidStart() {
          counter.executed += 1;
        },
      };
    },
  };
  return { counter, plugin };
}

describe('useExecuteFunctionFastPath', () => {
  let schema: GraphQLSchema;
  before(async () => {
    schema = await createSchema();
  });

  /** An Apollo server as the API configures it, with or without the fast path. */
  async function givenServer(fastPath: boolean) {
    const { counter, plugin } = executionCounter();
    const server: ApolloServer<GraphQLContext> = createApolloServer({
      schema,
      development: false,
      plugins: fastPath ? [plugin, useExecuteFunctionFastPath(schema)] : [plugin],
    });
    await server.start();
    const executions = givenExecutions();
    const ask = async (query: string, variables: Record<string, unknown> = {}) => {
      const contextValue = {
        actor: { kind: 'site', keyId: 'k', siteId: SITE },
        requestId: 'req-1',
        services: executions.services,
      } as unknown as GraphQLContext;
      const response = await server.executeOperation({ query, variables }, { contextValue });
      assert.equal(response.body.kind, 'single');
      return stringifyWithRawJson(response.body.singleResult);
    };
    return { ask, runs: executions.runs, counter };
  }

  const MUTATION = `mutation Run($addon: ID!, $fn: String!, $data: JSON!, $site: ID) {
    executeAddonFunction(addonId: $addon, function: $fn, data: $data, siteId: $site)
  }`;
  const QUERY = `query Run($addon: ID!, $fn: String!, $data: JSON!) {
    result: executeAddonFunction(addonId: $addon, function: $fn, data: $data)
  }`;

  /** Operations the fast path answers itself. */
  const answered: Array<[string, Record<string, unknown>?]> = [
    [MUTATION, { addon: 'shop', fn: 'echo', data: { items: [1, 'two', { three: null }] } }],
    [MUTATION, { addon: 7, fn: 'echo', data: 'text', site: SITE }],
    [QUERY, { addon: 'shop', fn: 'echo', data: [true, 1.5] }],
    [QUERY, { addon: 'shop', fn: 'nothing', data: {} }],
    [
      'mutation { run: executeAddonFunction(addonId: "shop", function: "echo", data: { a: [1, { b: "c" }] }) }',
    ],
    ['query($d: JSON! = { n: 1 }) { executeAddonFunction(addonId: "shop", function: "echo", data: $d) }'],
  ];
  /** Runs that fail: the fast path leaves them to execution, which reports the same failed run. */
  const failing: Array<[string, Record<string, unknown>]> = [
    [MUTATION, { addon: 'shop', fn: 'boom', data: {} }],
    [MUTATION, { addon: 'shop', fn: 'bug', data: {} }],
    [QUERY, { addon: 'missing', fn: 'echo', data: {} }],
  ];
  /** Operations the fast path does not take (execution answers them, or reports their errors). */
  const leftAlone: Array<[string, Record<string, unknown>?]> = [
    [MUTATION, { addon: 'shop', fn: 'echo' }],
    [MUTATION, { addon: 'shop', fn: 3, data: {} }],
    [
      'mutation { a: executeAddonFunction(addonId: "s", function: "echo", data: 1) b: executeAddonFunction(addonId: "s", function: "echo", data: 2) }',
    ],
    ['query { __typename executeAddonFunction(addonId: "s", function: "echo", data: 1) }'],
    ['query { executeAddonFunction(addonId: "s", function: "echo", data: 1) @include(if: true) }'],
    ['query { ...F } fragment F on Query { executeAddonFunction(addonId: "s", function: "echo", data: 1) }'],
    ['query { __typename }'],
  ];

  type Server = Awaited<ReturnType<typeof givenServer>>;
  /** Asks both servers each operation in turn; each answer of `fast` must equal `plain`'s. */
  async function sameAnswers(
    fast: Server,
    plain: Server,
    operations: Array<[string, Record<string, unknown>?]>,
  ): Promise<string[]> {
    const answers: string[] = [];
    for (const [query, variables] of operations) {
      const expected = await plain.ask(query, variables);
      const actual = await fast.ask(query, variables);
      assert.equal(actual, expected, `${query} ${JSON.stringify(variables)}`);
      answers.push(actual!);
    }
    return answers;
  }

  it('answers single executeAddonFunction operations exactly as execution does, without executing', async () => {
    const fast = await givenServer(true);
    const plain = await givenServer(false);
    // when, then
    await sameAnswers(fast, plain, answered);
    assert.deepEqual(fast.runs, plain.runs, 'the service is asked with the arguments the resolvers pass');
    assert.equal(plain.counter.executed, answered.length);
    assert.equal(fast.counter.executed, 0);
  });

  it('leaves a failed run to execution, which reports that run instead of running it again', async () => {
    const fast = await givenServer(true);
    const plain = await givenServer(false);
    // when
    const answers = await sameAnswers(fast, plain, failing);
    // then: the same masked or coded errors, with path and location; one run each
    for (const answer of answers) assert.match(answer, /"errors"/);
    assert.deepEqual(fast.runs, plain.runs);
    assert.equal(fast.runs.length, failing.length);
    assert.equal(fast.counter.executed, failing.length);
    // A later request on the same server starts from a clean slate.
    assert.equal(await fast.ask(...answered[0]), await plain.ask(...answered[0]));
  });

  it('leaves other operations and coercion errors to execution', async () => {
    const fast = await givenServer(true);
    const plain = await givenServer(false);
    await sameAnswers(fast, plain, leftAlone);
    assert.deepEqual(fast.runs, plain.runs);
    assert.equal(fast.counter.executed, plain.counter.executed);
  });
});
