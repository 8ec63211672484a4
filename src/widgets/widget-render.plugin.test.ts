import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { GraphQLRequestContext, GraphQLRequestListener } from '@apollo/server';
import { execute, getOperationAST, parse, validate, type GraphQLSchema } from 'graphql';
import { createSchema } from '../graphql/schema.js';
import type { GraphQLContext } from '../graphql/context.js';
import type { Actor } from '../auth/actor.js';
import type { RenderWidgetArgs } from './widget-render.service.js';
import type { WidgetView } from './widget-cache.js';
import { useWidgetRenderFastPath } from './widget-render.plugin.js';

const SITE = '00000000-0000-4000-8000-000000000001';

const VIEW: WidgetView = Object.freeze({
  html: '<div data-tp-widget="w1">"quoted" & <b>bold</b></div>',
  css: '[data-tp-widget="w1"] p { color: red }',
  javascript: 'console.log(1)',
  cacheKey: 'key-1',
  version: '1.2.3',
  cached: true,
});

/**
 * A render service whose cache holds renders of the addon `shop`, and which records the arguments
 * it was asked with (the fast path must pass exactly what the resolver passes).
 */
function givenRenders(views: Record<string, WidgetView | null> = { 'checkout-form': VIEW }) {
  const calls: RenderWidgetArgs[] = [];
  const lookup = (args: RenderWidgetArgs) => {
    calls.push({ ...args, requestId: undefined });
    return args.addon === 'shop' ? (views[args.widget] ?? null) : null;
  };
  return {
    calls,
    widgets: {
      cachedRender: (_actor: Actor, args: RenderWidgetArgs) => {
        const view = lookup(args);
        return view ? { view, json: null } : null;
      },
      view: (_actor: Actor, args: RenderWidgetArgs) => lookup(args) ?? Promise.reject(new Error('miss')),
    },
  };
}

type Renders = ReturnType<typeof givenRenders>;

function contextOf(renders: Renders): GraphQLContext {
  return {
    actor: { kind: 'site', siteId: SITE },
    requestId: 'req-1',
    services: { widgets: renders.widgets },
  } as unknown as GraphQLContext;
}

/** What the fast path answers for an operation: its data, or null when it leaves it to execution. */
async function whenFastPath(
  schema: GraphQLSchema,
  renders: Renders,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<unknown> {
  const plugin = useWidgetRenderFastPath(schema, renders.widgets);
  const document = parse(query);
  const requestContext = {
    document,
    operation: getOperationAST(document),
    request: { query, variables },
    contextValue: contextOf(renders),
  } as unknown as GraphQLRequestContext<GraphQLContext>;
  const listener = (await plugin.requestDidStart!(requestContext)) as GraphQLRequestListener<GraphQLContext>;
  const response = await listener.responseForOperation!(requestContext as never);
  if (response === null) return null;
  assert.equal(response.body.kind, 'single');
  assert.equal(response.http?.status, undefined, 'the fast path sets no status');
  assert.equal([...(response.http?.headers ?? [])].length, 0, 'the fast path sets no headers');
  return JSON.parse(JSON.stringify(response.body.kind === 'single' ? response.body.singleResult : null));
}

/** What graphql-js execution answers for the same operation, as JSON. */
async function whenExecuted(
  schema: GraphQLSchema,
  renders: Renders,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<unknown> {
  const result = await execute({
    schema,
    document: parse(query),
    variableValues: variables,
    contextValue: contextOf(renders),
  });
  return JSON.parse(JSON.stringify(result));
}

const RENDER_ARGS = 'addon: "shop", widget: "checkout-form", config: $c, context: $x';

describe('useWidgetRenderFastPath', () => {
  let schema: GraphQLSchema;
  before(async () => {
    schema = await createSchema();
  });

  const SAME_AS_EXECUTION: Array<{ name: string; query: string; variables?: Record<string, unknown> }> = [
    {
      name: 'the benchmark operation (variables, every field)',
      query: `query($c: JSON!, $x: JSON!) { renderWidget(${RENDER_ARGS}) { html css javascript cacheKey version cached } }`,
      variables: { c: { title: 'Pay', methods: ['card'] }, x: { sessionId: 's-1' } },
    },
    {
      name: 'literal arguments, nested JSON included',
      query:
        '{ renderWidget(addon: "shop", widget: "checkout-form", config: { title: "Pay", n: 2.5, list: [1, "a", null, true] }, context: {}) { html } }',
    },
    {
      name: 'aliases, __typename at both levels, a repeated leaf and two renders',
      query: `query($c: JSON!, $x: JSON!) {
        __typename
        first: renderWidget(${RENDER_ARGS}) { kind: __typename markup: html html cached html }
        second: renderWidget(addon: "shop", widget: "checkout-form", config: {}, context: $x) { css version }
      }`,
      variables: { c: {}, x: { page: 1 } },
    },
    {
      name: 'an ID variable given as a number, and defaults of variables',
      query:
        'query($c: JSON = { title: "Default" }, $x: JSON = {}, $s: ID) { renderWidget(addon: "shop", widget: "checkout-form", config: $c, context: $x, siteId: $s) { cacheKey } }',
      variables: { s: 42 },
    },
    {
      name: 'JSON variables that are not objects',
      query: `query($c: JSON!, $x: JSON!) { renderWidget(addon: "shop", widget: "checkout-form", config: $c, context: $x) { version } }`,
      variables: { c: [1, 2], x: 'text' },
    },
  ];

  for (const example of SAME_AS_EXECUTION) {
    it(`answers ${example.name} exactly as execution does`, async () => {
      // given
      const executed = givenRenders();
      const fast = givenRenders();
      assert.deepEqual(validate(schema, parse(example.query)), [], 'the example is a valid operation');
      // when
      const expected = await whenExecuted(schema, executed, example.query, example.variables);
      const actual = await whenFastPath(schema, fast, example.query, example.variables);
      // then
      assert.deepEqual(actual, expected);
      assert.equal((expected as { errors?: unknown }).errors, undefined, 'the example itself must succeed');
      assert.deepEqual(fast.calls, executed.calls, 'the render service is asked the same');
      // Key order is part of the response text.
      assert.equal(JSON.stringify(actual), JSON.stringify(expected));
    });
  }

  const LEFT_TO_EXECUTION: Array<{
    name: string;
    query: string;
    variables?: Record<string, unknown>;
    views?: Record<string, WidgetView | null>;
  }> = [
    {
      name: 'a cache miss',
      query: `query($c: JSON!, $x: JSON!) { renderWidget(addon: "shop", widget: "other", config: $c, context: $x) { html } }`,
      variables: { c: {}, x: {} },
    },
    {
      name: 'a miss on the second of two renders',
      query: `query($c: JSON!, $x: JSON!) { a: renderWidget(${RENDER_ARGS}) { html } b: renderWidget(addon: "elsewhere", widget: "checkout-form", config: $c, context: $x) { html } }`,
      variables: { c: {}, x: {} },
    },
    {
      name: 'a variable that does not coerce',
      query: `query($c: JSON!, $x: JSON!) { renderWidget(${RENDER_ARGS}) { html } }`,
      variables: { x: {} },
    },
    {
      name: 'an ID variable that does not coerce',
      query: `query($c: JSON!, $x: JSON!, $s: ID) { renderWidget(${RENDER_ARGS}, siteId: $s) { html } }`,
      variables: { c: {}, x: {}, s: true },
    },
    {
      name: 'an argument that does not coerce (validation would refuse it first)',
      query: `query($c: JSON!, $x: JSON) { renderWidget(${RENDER_ARGS}) { html } }`,
      variables: { c: {}, x: null },
    },
    {
      name: 'a fragment',
      query: `query($c: JSON!, $x: JSON!) { renderWidget(${RENDER_ARGS}) { ...parts } } fragment parts on WidgetOutput { html }`,
      variables: { c: {}, x: {} },
    },
    {
      name: 'an inline fragment',
      query: `query($c: JSON!, $x: JSON!) { renderWidget(${RENDER_ARGS}) { ... on WidgetOutput { html } } }`,
      variables: { c: {}, x: {} },
    },
    {
      name: 'a directive',
      query: `query($c: JSON!, $x: JSON!, $y: Boolean!) { renderWidget(${RENDER_ARGS}) { html @include(if: $y) } }`,
      variables: { c: {}, x: {}, y: true },
    },
    {
      name: 'another root field',
      query: `query($c: JSON!, $x: JSON!) { renderWidget(${RENDER_ARGS}) { html } widgets { name } }`,
      variables: { c: {}, x: {} },
    },
    {
      name: 'two root fields under one response key',
      query: `query($c: JSON!, $x: JSON!) { renderWidget(${RENDER_ARGS}) { html } renderWidget(${RENDER_ARGS}) { css } }`,
      variables: { c: {}, x: {} },
    },
    {
      name: 'a view missing a non-null field (execution reports the error)',
      query: `query($c: JSON!, $x: JSON!) { renderWidget(${RENDER_ARGS}) { html version } }`,
      variables: { c: {}, x: {} },
      views: { 'checkout-form': { ...VIEW, version: null as unknown as string } },
    },
  ];

  for (const example of LEFT_TO_EXECUTION) {
    it(`leaves ${example.name} to execution`, async () => {
      // given
      const renders = givenRenders(example.views);
      // when
      const answer = await whenFastPath(schema, renders, example.query, example.variables);
      // then
      assert.equal(answer, null);
    });
  }

  it('leaves mutations to execution', async () => {
    // given
    const renders = givenRenders();
    // when
    const answer = await whenFastPath(
      schema,
      renders,
      'mutation { executeAddonFunction(addonId: "shop", function: "f", data: {}) }',
    );
    // then
    assert.equal(answer, null);
    assert.equal(renders.calls.length, 0);
  });
});
