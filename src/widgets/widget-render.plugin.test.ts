import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { GraphQLRequestContext, GraphQLRequestListener } from '@apollo/server';
import { execute, getOperationAST, parse, validate, type DocumentNode, type GraphQLSchema } from 'graphql';
import { createSchema } from '../graphql/schema.js';
import type { GraphQLContext } from '../graphql/context.js';
import type { Actor } from '../auth/actor.js';
import type { RenderHit, RenderWidgetArgs, WidgetRender } from './widget-render.service.js';
import type { CachedRender, WidgetView } from './widget-cache.js';
import type { WidgetRecord } from '../addons/addon.repository.js';
import { AnswerStore, useWidgetRenderFastPath, type Answer } from './widget-render.plugin.js';
import { RawJson, stringifyWithRawJson } from '../shared/raw-json.js';

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
 * A render service whose cache holds renders of widgets of the addon `shop` (replacing a view
 * replaces its entry, as an invalidation and a new render would), and which records the arguments
 * it was asked with (the fast path must pass exactly what the resolver passes).
 */
function givenRenders(views: Record<string, WidgetView | null> = { 'checkout-form': VIEW }) {
  const calls: RenderWidgetArgs[] = [];
  const entries = new Map<string, CachedRender>();
  const entryOf = (widget: string): CachedRender | null => {
    const view = views[widget];
    if (!view) return null;
    const known = entries.get(widget);
    if (known?.view === view) return known;
    const entry = { output: view, view, json: JSON.stringify(view), fromL2: false };
    entries.set(widget, entry);
    return entry;
  };
  const lookup = (args: RenderWidgetArgs) => {
    calls.push({ ...args, requestId: undefined });
    return args.addon === 'shop' ? entryOf(args.widget) : null;
  };
  let generation = 0;
  // AddonService.widget: one promise per (addon, widget) until a publish drops them.
  const records = new Map<string, Promise<WidgetRecord>>();
  const widgetLookups: string[] = [];
  return {
    calls,
    views,
    widgetLookups,
    /** Makes every hit read so far stale, as a generation bump would. */
    invalidateAll: () => {
      generation += 1;
    },
    /** Drops the widget lookups, as a publish does. */
    publish: () => records.clear(),
    services: {
      widgets: {
        cachedRender: (_actor: Actor, args: RenderWidgetArgs): WidgetRender | null => {
          const entry = lookup(args);
          if (!entry) return null;
          const hit = { siteId: SITE, addon: args.addon, target: null!, generation, key: args.widget, entry };
          return { view: entry.view, json: entry.json, hit };
        },
        stillCurrent: (hit: RenderHit) => hit.generation === generation && entryOf(hit.key) === hit.entry,
        actorScope: (actor: Actor) => (actor.kind === 'site' ? actor.siteId : '*'),
        view: (_actor: Actor, args: RenderWidgetArgs) =>
          lookup(args)?.view ?? Promise.reject(new Error('miss')),
      },
      addons: {
        widget: (addon: string, name: string): Promise<WidgetRecord> => {
          const key = `${addon}/${name}`;
          let record = records.get(key);
          if (!record) {
            widgetLookups.push(key);
            record =
              addon === 'shop' && name in views
                ? Promise.resolve({ addonId: 'shop', name } as WidgetRecord)
                : Promise.reject(new Error(`no widget ${key}`));
            records.set(key, record);
          }
          return record;
        },
      },
    },
  };
}

type Renders = ReturnType<typeof givenRenders>;

function contextOf(renders: Renders): GraphQLContext {
  return {
    actor: { kind: 'site', keyId: 'k', siteId: SITE },
    requestId: 'req-1',
    services: renders.services,
  } as unknown as GraphQLContext;
}

/**
 * A fast path over `renders`: `ask` returns what it answers for an operation (its result, or null
 * when it leaves the operation to execution). One plugin, and one parsed document per query text,
 * as Apollo reuses them.
 */
function givenFastPath(schema: GraphQLSchema, renders: Renders) {
  const plugin = useWidgetRenderFastPath(schema, renders.services);
  const documents = new Map<string, DocumentNode>();
  return async (
    query: string,
    variables: Record<string, unknown> = {},
    actor: Actor = { kind: 'site', keyId: 'k', siteId: SITE },
  ): Promise<unknown> => {
    let document = documents.get(query);
    if (!document) documents.set(query, (document = parse(query)));
    const requestContext = {
      document,
      operation: getOperationAST(document),
      request: { query, variables },
      contextValue: { ...contextOf(renders), actor },
    } as unknown as GraphQLRequestContext<GraphQLContext>;
    const listener = (await plugin.requestDidStart!(
      requestContext,
    )) as GraphQLRequestListener<GraphQLContext>;
    const response = await listener.responseForOperation!(requestContext as never);
    if (response === null) return null;
    assert.equal(response.body.kind, 'single');
    assert.equal(response.http?.status, undefined, 'the fast path sets no status');
    assert.equal([...(response.http?.headers ?? [])].length, 0, 'the fast path sets no headers');
    // As the server writes it (answers served again carry RawJson values).
    return JSON.parse(
      stringifyWithRawJson(response.body.kind === 'single' ? response.body.singleResult : null)!,
    );
  };
}

/** What a fresh fast path answers for an operation. */
function whenFastPath(
  schema: GraphQLSchema,
  renders: Renders,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<unknown> {
  return givenFastPath(schema, renders)(query, variables);
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
      name: 'Query.widget { render } (the Widget.render of the seed)',
      query: `query($c: JSON!, $x: JSON!) { widget(addon: "shop", name: "checkout-form") { __typename render(config: $c, context: $x) { html cached } } }`,
      variables: { c: { title: 'Pay' }, x: { sessionId: 's-1' } },
    },
    {
      name: 'widget renders and renderWidget side by side, with aliases and literal arguments',
      query: `query($x: JSON!) {
        w: widget(addon: "shop", name: "checkout-form") {
          a: render(config: {}, context: {}) { css }
          b: render(config: { n: 1 }, context: $x, siteId: "5") { version kind: __typename }
        }
        r: renderWidget(addon: "shop", widget: "checkout-form", config: {}, context: $x) { html }
      }`,
      variables: { x: { page: 2 } },
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
      // Execution runs root fields side by side (a widget lookup awaits), so only the set is equal.
      const sorted = (calls: RenderWidgetArgs[]) =>
        calls.map((call) => ({ ...call })).sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
      assert.deepEqual(sorted(fast.calls), sorted(executed.calls), 'the render service is asked the same');
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
      name: 'a widget that does not exist',
      query: `query($c: JSON!, $x: JSON!) { widget(addon: "shop", name: "missing") { render(config: $c, context: $x) { html } } }`,
      variables: { c: {}, x: {} },
    },
    {
      name: 'a widget field other than render',
      query: `query($c: JSON!, $x: JSON!) { widget(addon: "shop", name: "checkout-form") { name render(config: $c, context: $x) { html } } }`,
      variables: { c: {}, x: {} },
    },
    {
      name: 'an operation without a render',
      query: '{ __typename }',
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
  const BENCH = `query($c: JSON!, $x: JSON!) { renderWidget(${RENDER_ARGS}) { html cached } }`;

  it('reuses an answer for the same operation, variables and caller while its renders are current', async () => {
    // given
    const renders = givenRenders();
    const ask = givenFastPath(schema, renders);
    const first = await ask(BENCH, { c: {}, x: {} });
    // when
    const again = await ask(BENCH, { c: {}, x: {} });
    // then
    assert.deepEqual(again, first);
    assert.equal(renders.calls.length, 1, 'the second answer needs no render lookup');
  });

  it('builds the answer again once a render it came from is no longer current', async () => {
    // given
    const renders = givenRenders();
    const ask = givenFastPath(schema, renders);
    await ask(BENCH, { c: {}, x: {} });
    // when: the entry is replaced (a new render), then every entry goes stale (a generation bump)
    renders.views['checkout-form'] = { ...VIEW, html: '<p>new</p>' };
    const afterNewRender = await ask(BENCH, { c: {}, x: {} });
    renders.invalidateAll();
    const afterInvalidation = await ask(BENCH, { c: {}, x: {} });
    // then
    assert.deepEqual(afterNewRender, { data: { renderWidget: { html: '<p>new</p>', cached: true } } });
    assert.deepEqual(afterInvalidation, afterNewRender);
    assert.equal(renders.calls.length, 3);
  });

  it('keeps answers apart by variables and by calling site', async () => {
    // given
    const renders = givenRenders();
    const ask = givenFastPath(schema, renders);
    const otherSite: Actor = { kind: 'site', keyId: 'k2', siteId: '00000000-0000-4000-8000-000000000009' };
    // when
    await ask(BENCH, { c: { a: 1 }, x: {} });
    await ask(BENCH, { c: { a: 2 }, x: {} });
    await ask(BENCH, { c: { a: 1 }, x: {} }, otherSite);
    await ask(BENCH, { c: { a: 1 }, x: {} }, { kind: 'anonymous' });
    // then
    assert.deepEqual(
      renders.calls.map((call) => call.config),
      [{ a: 1 }, { a: 2 }, { a: 1 }, { a: 1 }],
    );
  });
  it('builds a widget { render } answer again once the widget lookup is replaced (a publish)', async () => {
    // given
    const renders = givenRenders();
    const ask = givenFastPath(schema, renders);
    const query = `query($c: JSON!, $x: JSON!) { widget(addon: "shop", name: "checkout-form") { render(config: $c, context: $x) { html } } }`;
    const first = await ask(query, { c: {}, x: {} });
    await ask(query, { c: {}, x: {} });
    // when
    renders.publish();
    const afterPublish = await ask(query, { c: {}, x: {} });
    // then
    assert.deepEqual(afterPublish, first);
    assert.deepEqual(renders.widgetLookups, ['shop/checkout-form', 'shop/checkout-form']);
    assert.equal(renders.calls.length, 2, 'rendered once per lookup');
  });
});

describe('AnswerStore', () => {
  const answer = (html: string): Answer => ({
    data: { renderWidget: { html } },
    hits: [],
    lookups: [],
    bytes: 0,
  });

  it('keeps at most its count of answers, dropping the oldest', () => {
    // given
    const store = new AnswerStore(2, 1_000_000);
    // when
    store.set('a', answer('1'));
    store.set('b', answer('2'));
    store.set('c', answer('3'));
    // then
    assert.equal(store.get('a'), undefined);
    assert.ok(store.get('b') && store.get('c'));
    assert.equal(store.stats().answers, 2);
  });

  it('counts each answer by its key and text, drops the oldest over its bytes, and frees what it drops', () => {
    // given
    const store = new AnswerStore(100, 350);
    const big = answer('x'.repeat(60));
    store.set('a', big);
    // when: `b` (71 characters of JSON counted twice, UTF-16) takes the store over 350 bytes
    store.set('b', answer('y'.repeat(60)));
    // then
    assert.ok(big.served?.renderWidget instanceof RawJson);
    assert.equal((big.served.renderWidget as RawJson).json, JSON.stringify({ html: 'x'.repeat(60) }));
    assert.equal(store.get('a'), undefined, 'the oldest answer went');
    assert.ok(store.get('b'));
    assert.equal(store.stats().bytes, 2 * (1 + 2 * 71));
  });

  it('replaces an answer under the same key without counting it twice', () => {
    // given
    const store = new AnswerStore(100, 1_000_000);
    store.set('key', answer('1'));
    // when
    store.set('key', answer('2'));
    // then
    assert.deepEqual(store.stats(), { answers: 1, bytes: 2 * ('key'.length + 2 * '{"html":"2"}'.length) });
  });
});
