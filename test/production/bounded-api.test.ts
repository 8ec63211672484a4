import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Client } from 'graphql-ws';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenDeveloper, givenPublished, givenSite, manifest, uniqueName } from '../support/fixtures.js';
import { LIVENESS_LIMIT_MS, whileProbingLiveness } from '../support/liveness-probe.js';
import { eventually, liveClient } from '../events/helpers.js';
import type { GraphQLClient, GraphQLResponse } from '../support/graphql-client.js';
import { MAX_UNIQUE_ITEMS } from '../../src/shared/json-schema.js';
import { inOneRateWindow } from '../support/rate-window.js';

// Operations, as a client would send them.
const RENDER_WIDGET = `query Render($addon: String!, $widget: String!, $config: JSON!, $siteId: ID) {
  renderWidget(addon: $addon, widget: $widget, config: $config, context: {}, siteId: $siteId) { html css javascript }
}`;
const EXECUTE = `mutation Execute($addon: ID!, $fn: String!, $data: JSON!) {
  executeAddonFunction(addonId: $addon, function: $fn, data: $data)
}`;
const UPDATE_CONFIG = `mutation Update($id: ID!, $config: JSON!) { updateAddonConfig(id: $id, config: $config) }`;
const INSTALL = `mutation Install($id: ID!, $config: JSON!) { installAddon(id: $id, config: $config) { success } }`;
const ADDON_BY_NAME = `query Addon($name: String) { addon(name: $name) { name } }`;
const SEARCH_LITERAL_NUL = `{ addons(search: "a\\u0000b") { totalCount } }`;
const EXECUTIONS_BY_STATUS = `query Runs($status: String) { executions(status: $status) { edges { cursor } } }`;
const CHANGE_VERSION = `mutation Change($id: ID!, $version: String!) { changeAddonVersion(id: $id, version: $version) { id } }`;
const EMIT = `mutation Emit($data: JSON!) { emitEvent(name: "bounded.test", data: $data) { id } }`;
const ADDONS_BY_CATEGORY = `query ByCategory($c: AddonCategory) { addons(category: $c) { totalCount } }`;
const LIVE_EVENTS = `subscription { events { id } }`;
const DEEP_DELIVERIES = `subscription { deliveries { event { deliveries { event { deliveries { event { deliveries { event { deliveries { event { id } } } } } } } } } } }`;
const MANY_ALIASES = `{ ${Array.from({ length: 20 }, (_, i) => `a${i}: viewer { role }`).join(' ')} }`;
const MANY_TOKENS = `{ viewer { ${'role '.repeat(2100)} } }`;
const COSTLY = `{ addons(first: 100) { edges { node { versions { widgets { name } apis { name } dependencies { name } } } } } }`;

type Errors = GraphQLResponse<unknown>['errors'];
const codeOf = (errors: Errors) => errors?.[0]?.extensions?.code;
const fieldsOf = (errors: Errors) =>
  ((errors?.[0]?.extensions?.fields ?? []) as { field: string }[]).map((f) => f.field);

/** A pattern that takes a backtracking engine seconds on 30 `a` and a `!` (doubling per `a`). */
const EVIL = { type: 'object', properties: { s: { type: 'string', pattern: '^(a+)+$' } } };
const EVIL_INPUT = { s: `${'a'.repeat(40)}!` };

/** `{"a":{"a":...}}` nested `depth` deep, as JSON text (JSON.stringify would need that much stack). */
const nestedJson = (depth: number) => `${'{"a":'.repeat(depth)}"leaf"${'}'.repeat(depth)}`;

/**
 * POSTs a GraphQL request whose body is given as JSON text, through node:http: the body goes out
 * without the copies fetch makes, so the client (in this process, like the server) does not
 * itself hold the event loop while sending megabytes.
 */
function postGraphQL(
  url: string,
  key: string | null,
  body: string | Buffer,
): Promise<GraphQLResponse<unknown>> {
  const bytes = typeof body === 'string' ? Buffer.from(body) : body;
  return new Promise((resolve, reject) => {
    const request = httpRequest(
      `${url}/graphql`,
      {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'content-length': bytes.length,
          ...(key ? { authorization: `Bearer ${key}` } : {}),
        },
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => {
          try {
            const text = Buffer.concat(chunks).toString('utf8');
            const parsed = JSON.parse(text) as Omit<GraphQLResponse<unknown>, 'status'>;
            resolve({ status: response.statusCode ?? 0, ...parsed });
          } catch (error) {
            reject(error);
          }
        });
      },
    );
    request.on('error', reject);
    request.end(bytes);
  });
}

async function rest(url: string, path: string, init: { method?: string; key?: string; body?: unknown } = {}) {
  const response = await fetch(`${url}${path}`, {
    method: init.method ?? (init.body === undefined ? 'GET' : 'POST'),
    headers: {
      ...(init.body === undefined ? {} : { 'content-type': 'application/json' }),
      ...(init.key ? { authorization: `Bearer ${init.key}` } : {}),
    },
    body:
      init.body === undefined
        ? undefined
        : typeof init.body === 'string'
          ? init.body
          : JSON.stringify(init.body),
  });
  const text = await response.text();
  let json: { error?: { code?: string; fields?: { field: string }[]; message?: string } } = {};
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: response.status, headers: response.headers, body: json };
}

/** The codes a graphql-ws operation ends with (its `error` message), or [] when it runs. */
function wsCodes(client: Client, query: string, variables: Record<string, unknown> = {}): Promise<string[]> {
  return new Promise((resolve) => {
    let settled = false;
    const stop = client.subscribe(
      { query, variables },
      {
        next: (result) => {
          if (settled) return;
          settled = true;
          stop();
          resolve((result.errors ?? []).map((e) => String(e.extensions?.code)));
        },
        error: (errors) => {
          if (settled) return;
          settled = true;
          const list = Array.isArray(errors) ? errors : [errors];
          resolve(list.map((e) => String((e as { extensions?: { code?: unknown } }).extensions?.code)));
        },
        complete: () => {
          if (!settled) resolve([]);
          settled = true;
        },
      },
    );
  });
}

describe('the API bounds the work hostile input costs, and keeps tenants apart', () => {
  let server: TestServer;
  let developer: GraphQLClient;
  let developerKey: string;
  let site: Awaited<ReturnType<typeof givenSite>>;
  let otherSite: Awaited<ReturnType<typeof givenSite>>;

  before(async () => {
    server = await startTestServer({
      NODE_ENV: 'production',
      WIDGET_L2_MAX_ENTRY_BYTES: '4096',
      EXECUTION_LOG_MAX_BYTES: '2048',
      EXECUTION_LOG_MAX_BYTES_PER_SITE_DAY: '8192',
      DELIVERY_POLL_MS: '50',
      DELIVERY_BACKOFF_BASE_MS: '50',
      DELIVERY_MAX_ATTEMPTS: '1',
    });
    ({ client: developer, key: developerKey } = await givenDeveloper(server.admin));
    site = await givenSite(server.admin);
    otherSite = await givenSite(server.admin);
  });
  after(() => server.close());

  const install = async (on: typeof site, name: string, config: unknown = {}) => {
    const result = await on.client.raw(INSTALL, { id: name, config });
    assert.equal(result.errors, undefined, JSON.stringify(result.errors));
  };

  it('1. runs manifest patterns in linear time at render, execute, config update and emit', async () => {
    // given: one pattern a backtracking engine needs seconds for, on every path that validates
    const m = manifest({
      permissions: ['events.emit'],
      configSchema: EVIL,
      widgets: [{ name: 'w', category: 'DISPLAY', configSchema: EVIL }],
      functions: [{ name: 'f', inputSchema: EVIL }, { name: 'emit' }],
      events: { emits: [{ name: 'bounded.evil', schema: EVIL }] },
    });
    await givenPublished(
      developer,
      m,
      `module.exports = {
        functions: { f: (d) => d, emit: async (d, ctx) => { await ctx.events.emit('bounded.evil', d); return 1; } },
        widgets: { w: () => ({ html: '<p>w</p>' }) },
      };`,
    );
    await install(site, m.name as string, { s: 'aaa' });
    const name = m.name as string;
    // when
    const { result, slowestMs, probes } = await whileProbingLiveness(server.url, () =>
      Promise.all([
        server.anonymous.raw(RENDER_WIDGET, {
          addon: name,
          widget: 'w',
          config: EVIL_INPUT,
          siteId: site.siteId,
        }),
        site.client.raw(EXECUTE, { addon: name, fn: 'f', data: EVIL_INPUT }),
        site.client.raw(UPDATE_CONFIG, { id: name, config: EVIL_INPUT }),
        site.client.raw(EXECUTE, { addon: name, fn: 'emit', data: EVIL_INPUT }),
      ]),
    );
    // then
    const [render, execute, update, emit] = result;
    assert.equal(codeOf(render.errors), 'BAD_USER_INPUT');
    assert.deepEqual(fieldsOf(render.errors), ['config.s']);
    assert.deepEqual(fieldsOf(execute.errors), ['data.s']);
    assert.deepEqual(fieldsOf(update.errors), ['config.s']);
    assert.equal(codeOf(emit.errors), 'BAD_USER_INPUT');
    assert.match(emit.errors![0].message, /data\.s: must match pattern/);
    assert.ok(probes > 0 && slowestMs < LIVENESS_LIMIT_MS, `/livez took ${slowestMs.toFixed(0)} ms`);
  });

  it('2. checks uniqueItems in linear time on up to 10,000 items and refuses 40,000 at once', async () => {
    // given
    const m = manifest({
      widgets: [],
      configSchema: { type: 'object' },
      functions: [{ name: 'u', inputSchema: { type: 'array', uniqueItems: true } }],
    });
    await givenPublished(developer, m);
    await install(site, m.name as string);
    const items = (n: number) => Array.from({ length: n }, (_, i) => ({ id: i, tags: ['x', i] }));
    const duplicated = [...items(MAX_UNIQUE_ITEMS - 1), { tags: ['x', 12], id: 12 }];
    // Serialised before probing: the server runs in this process, and the probe times this process.
    const body = (data: unknown) =>
      JSON.stringify({ query: EXECUTE, variables: { addon: m.name, fn: 'u', data } });
    const [duplicatedBody, tooManyBody] = [body(duplicated), body(items(40_000))];
    // when
    const { result, slowestMs } = await whileProbingLiveness(server.url, () =>
      Promise.all([site.client.send(duplicatedBody), site.client.send(tooManyBody)]),
    );
    // then
    const [duplicate, tooMany] = result;
    assert.equal(codeOf(duplicate.errors), 'BAD_USER_INPUT');
    assert.match(duplicate.errors![0].message, /duplicate items \(items ## 12 and 9999 are identical\)/);
    assert.equal(codeOf(tooMany.errors), 'BAD_USER_INPUT');
    assert.match(tooMany.errors![0].message, /at most 10000 items to be checked for duplicates/);
    assert.ok(slowestMs < LIVENESS_LIMIT_MS, `/livez took ${slowestMs.toFixed(0)} ms`);
  });

  it('3. refuses manifests and schemas over their caps before parsing them', async () => {
    // given
    const base = {
      name: uniqueName('huge'),
      version: '1.0.0',
      category: 'UTILITIES',
      source: 'module.exports = {};',
    };
    const functions = Array.from({ length: 20_000 }, (_, i) => ({
      name: `f${i}`,
      inputSchema: { type: 'object' },
    }));
    const properties = Object.fromEntries(
      Array.from({ length: 8_000 }, (_, i) => [`p${i}`, { type: 'string' }]),
    );
    // when
    const { result, slowestMs } = await whileProbingLiveness(server.url, () =>
      Promise.all([
        rest(server.url, '/api/addons/register', { key: developerKey, body: { ...base, functions } }),
        rest(server.url, '/api/addons/register', {
          key: developerKey,
          body: { ...base, configSchema: { type: 'object', properties } },
        }),
      ]),
    );
    // then
    const [manyFunctions, wideSchema] = result;
    assert.equal(manyFunctions.status, 400);
    assert.equal(manyFunctions.body.error?.code, 'BAD_USER_INPUT');
    assert.ok(manyFunctions.body.error?.fields?.some((f) => f.field === 'manifest.functions'));
    assert.match(manyFunctions.body.error!.message!, /20000 entries; the limit is 100/);
    assert.deepEqual(
      wideSchema.body.error?.fields?.map((f) => f.field),
      ['manifest.configSchema'],
    );
    assert.ok(slowestMs < LIVENESS_LIMIT_MS, `/livez took ${slowestMs.toFixed(0)} ms`);
    assert.equal(
      (await server.anonymous.raw<{ addon: null }>(ADDON_BY_NAME, { name: base.name })).data?.addon,
      null,
    );
  });

  it('4. refuses code that does not load or lacks a declared entry, storing nothing', async () => {
    // given
    const body = (source: string) => ({
      name: uniqueName('broken'),
      version: '1.0.0',
      category: 'UTILITIES',
      functions: [{ name: 'pay' }],
      widgets: [{ name: 'form', category: 'FORM' }],
      source,
    });
    const attempts = [
      body('module.exports = { functions: { pay: () => 1 }, widgets: { form: () => ({ html: "" }) } '),
      body('module.exports = { functions: {}, widgets: { form: () => ({ html: "" }) } };'),
      body('for (;;) {}'),
    ];
    // when
    const { result, slowestMs } = await whileProbingLiveness(server.url, () =>
      Promise.all(
        attempts.map((b) => rest(server.url, '/api/addons/register', { key: developerKey, body: b })),
      ),
    );
    // then
    const [syntax, missing, endless] = result;
    for (const response of result) assert.equal(response.status, 400);
    assert.deepEqual(
      syntax.body.error?.fields?.map((f) => f.field),
      ['source'],
    );
    assert.match(syntax.body.error!.message!, /does not load in the sandbox/);
    assert.deepEqual(
      missing.body.error?.fields?.map((f) => f.field),
      ['manifest.functions[0].name'],
    );
    assert.match(endless.body.error!.message!, /EXECUTION_TIMEOUT/);
    for (const attempt of attempts) {
      const found = await server.anonymous.raw<{ addon: null }>(ADDON_BY_NAME, { name: attempt.name });
      assert.equal(found.data?.addon, null, `${attempt.name} was stored`);
    }
    assert.ok(slowestMs < LIVENESS_LIMIT_MS, `/livez took ${slowestMs.toFixed(0)} ms`);
  });

  it('5. stores every tenant’s records when another tenant’s addon writes text PostgreSQL refuses', async () => {
    // given: site A's addon logs and throws NUL, lone surrogates and a cut through a surrogate pair
    const hostile = manifest({
      widgets: [],
      configSchema: { type: 'object' },
      functions: [{ name: 'bad' }],
      events: { handles: { 'bounded.test': 'onTick' } },
    });
    await givenPublished(
      developer,
      hostile,
      `module.exports = {
        functions: { bad: (d, ctx) => {
          ctx.log('nul \\u0000 here'); ctx.warn('lone \\ud800');
          if (d.fail) throw new Error('x'.repeat(999) + '\\u{1F600}\\u0000');
          return 1;
        } },
        handlers: { onTick: () => { throw new Error('handler \\u0000 \\udfff'); } },
      };`,
    );
    const honest = manifest({
      widgets: [],
      configSchema: { type: 'object' },
      functions: [{ name: 'ok' }],
      events: { handles: { 'bounded.test': 'onTick' } },
    });
    await givenPublished(
      developer,
      honest,
      `module.exports = { functions: { ok: (d, ctx) => { ctx.log('fine'); return d; } }, handlers: { onTick: () => null } };`,
    );
    await install(site, hostile.name as string);
    await install(site, honest.name as string);
    await install(otherSite, honest.name as string);
    // when: both tenants run at once, and an event reaches both addons on both sites
    const { slowestMs, runs } = await whileProbingLiveness(server.url, async () => {
      await Promise.all([
        // 16 at once: the addon's default limit of concurrent calls.
        ...Array.from({ length: 16 }, (_, i) =>
          site.client.raw(EXECUTE, { addon: hostile.name, fn: 'bad', data: { fail: i % 2 === 0 } }),
        ),
        // Site B's 100 calls in rounds of 10 while site A's run.
        (async () => {
          for (let round = 0; round < 10; round += 1) {
            await Promise.all(
              Array.from({ length: 10 }, (_, i) =>
                otherSite.client.raw(EXECUTE, { addon: honest.name, fn: 'ok', data: { i: round * 10 + i } }),
              ),
            );
          }
        })(),
      ]);
      await site.client.raw(EMIT, { data: { n: 1 } }).then((r) => assert.equal(r.errors, undefined));
    });
    await server.app.runtime.recorder.flush();
    // then: every record of both sites is stored, the hostile text cleaned
    const prisma = server.app.database.prisma;
    const otherRuns = await prisma.execution.count({ where: { siteId: otherSite.siteId, entry: 'ok' } });
    assert.equal(otherRuns, 100 * runs);
    const hostileRuns = await prisma.execution.findMany({ where: { siteId: site.siteId, entry: 'bad' } });
    assert.equal(hostileRuns.length, 16 * runs);
    const failedRuns = hostileRuns.filter((run) => run.status !== 'SUCCESS');
    assert.equal(failedRuns.length, 8 * runs);
    for (const run of failedRuns) {
      assert.ok(run.errorMessage!.isWellFormed() && !run.errorMessage!.includes('\u0000'), run.errorMessage!);
      assert.ok(run.errorMessage!.length <= 1000);
    }
    for (const run of hostileRuns.filter((r) => r.status === 'SUCCESS')) {
      assert.deepEqual(
        (run.logs as { message: string }[]).map((l) => l.message),
        ['nul \uFFFD here', 'lone \uFFFD'],
      );
    }
    const deliveries = await eventually(async () => {
      const rows = await prisma.delivery.findMany({
        where: { eventName: 'bounded.test' },
        include: { attemptLog: true },
      });
      return rows.length === 2 * runs && rows.every((r) => r.status !== 'PENDING' && r.status !== 'RUNNING')
        ? rows
        : undefined;
    }, 'both deliveries to finish');
    for (const delivery of deliveries) {
      if (delivery.addonName === honest.name) {
        assert.equal(delivery.status, 'SUCCEEDED');
        continue;
      }
      assert.equal(delivery.status, 'DEAD');
      assert.match(delivery.lastError!, /handler \uFFFD \uFFFD/);
      assert.equal(delivery.attemptLog.length, 1);
    }
    assert.ok(slowestMs < LIVENESS_LIMIT_MS, `/livez took ${slowestMs.toFixed(0)} ms`);
  });

  it('6. keeps oversized renders out of Redis and caps stored logs per execution and per site and day', async () => {
    await inOneRateWindow(86_400, 30_000);
    // given: a render bigger than the L2 cap (4 KiB here), and an addon logging 10 KiB per call
    const m = manifest({
      widgets: [{ name: 'big', category: 'DISPLAY' }],
      configSchema: { type: 'object' },
      functions: [{ name: 'chatty' }],
    });
    await givenPublished(
      developer,
      m,
      `module.exports = {
        widgets: { big: () => ({ html: '<p>big</p>', javascript: 'var x = "' + 'j'.repeat(8000) + '";' }) },
        functions: { chatty: (d, ctx) => { for (let i = 0; i < 10; i++) ctx.log('L'.repeat(1000)); return 1; } },
      };`,
    );
    const tenant = await givenSite(server.admin);
    await install(tenant, m.name as string);
    // when
    const {
      result,
      slowestMs,
      runs: probeRuns,
    } = await whileProbingLiveness(server.url, async () => {
      const render = await tenant.client.raw(RENDER_WIDGET, { addon: m.name, widget: 'big', config: {} });
      for (let i = 0; i < 8; i += 1)
        await tenant.client.raw(EXECUTE, { addon: m.name, fn: 'chatty', data: {} });
      return render;
    });
    await server.app.runtime.recorder.flush();
    await sleep(50); // the L2 write runs after the response
    // then: the render was served, not stored in Redis, and counted
    assert.equal(result.errors, undefined);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    assert.match(metrics, /widget_cache_l2_skipped_total\{reason="too_large"\} [1-9]/);
    const keys = await server.app.redis!.keys(`${server.app.config.redisKeyPrefix}widget:*${tenant.siteId}*`);
    assert.deepEqual(
      keys.filter((k) => !k.includes(':gen:')),
      [],
    );
    // and logs: at most 2 KiB per record, 8 KiB for the site today
    const runs = await server.app.database.prisma.execution.findMany({
      where: { siteId: tenant.siteId, entry: 'chatty' },
    });
    assert.equal(runs.length, 8 * probeRuns);
    const sizes = runs.map((r) =>
      (r.logs as { message: string }[]).reduce((n, l) => n + Buffer.byteLength(l.message), 0),
    );
    assert.ok(
      sizes.every((n) => n <= 2048),
      String(sizes),
    );
    assert.equal(
      sizes.reduce((a, b) => a + b, 0),
      8192,
    );
    assert.ok(runs.every((r) => r.logsTruncated));
    assert.ok(slowestMs < LIVENESS_LIMIT_MS, `/livez took ${slowestMs.toFixed(0)} ms`);
  });

  it('7. answers hostile client input with BAD_USER_INPUT naming the field, before any work', async () => {
    // given
    const m = manifest({ widgets: [{ name: 'w', category: 'DISPLAY' }], configSchema: { type: 'object' } });
    await givenPublished(developer, m);
    await install(site, m.name as string);
    const name = m.name as string;
    // Sixteen 2 MB enum values, encoded before the clock starts.
    const hugeEnum = Buffer.from(
      JSON.stringify({ query: ADDONS_BY_CATEGORY, variables: { c: 'A'.repeat(2 * 1024 * 1024 - 1000) } }),
    );
    // when
    const { result, slowestMs } = await whileProbingLiveness(server.url, () =>
      Promise.all([
        server.anonymous.raw(SEARCH_LITERAL_NUL),
        server.anonymous.raw(ADDON_BY_NAME, { name: 'lone \ud800' }),
        site.client.raw(EXECUTIONS_BY_STATUS, { status: 'x\u0000' }),
        site.client.raw(CHANGE_VERSION, { id: name, version: '1.0.0\u0000' }),
        site.client.raw(EMIT, { data: { note: 'a\u0000' } }),
        postGraphQL(
          server.url,
          site.key,
          `{"query":${JSON.stringify(UPDATE_CONFIG)},"variables":{"id":${JSON.stringify(name)},"config":${nestedJson(5000)}}}`,
        ),
        server.anonymous.raw(LIVE_EVENTS),
        // Sixteen, one after another.
        (async () => {
          const answers: GraphQLResponse<unknown>[] = [];
          for (let i = 0; i < 16; i += 1) answers.push(await postGraphQL(server.url, null, hugeEnum));
          return answers;
        })(),
      ]),
    );
    // then
    const [search, byName, runs, change, emit, config, subscription, enums] = result;
    const expectations: [GraphQLResponse<unknown>, string][] = [
      [search, 'addons.search'],
      [byName, 'variables.name'],
      [runs, 'variables.status'],
      [change, 'variables.version'],
      [emit, 'variables.data.note'],
      [config, `variables.config${'.a'.repeat(63)}`],
      [enums[0], 'variables.c'],
    ];
    for (const [response, field] of expectations) {
      assert.equal(codeOf(response.errors), 'BAD_USER_INPUT', JSON.stringify(response.errors));
      assert.deepEqual(fieldsOf(response.errors), [field]);
      assert.equal(response.status, 400);
    }
    assert.ok(enums.every((r) => codeOf(r.errors) === 'BAD_USER_INPUT'));
    assert.ok(JSON.stringify(enums[0]).length < 1000, 'the enum value is not echoed back');
    assert.equal(codeOf(subscription.errors), 'BAD_REQUEST');
    assert.equal(subscription.status, 400);
    assert.ok(slowestMs < LIVENESS_LIMIT_MS, `/livez took ${slowestMs.toFixed(0)} ms`);
    // and on the REST routes
    const [segment, category, deep] = await Promise.all([
      rest(server.url, '/api/widgets/%00/w'),
      rest(server.url, '/api/addons/register', {
        key: developerKey,
        body: { name: uniqueName('nocat'), version: '1.0.0', category: '', source: 'module.exports = {};' },
      }),
      rest(server.url, `/api/addons/${name}/execute`, {
        key: site.key,
        body: `{"action":"echo","data":${nestedJson(5000)}}`,
      }),
    ]);
    assert.deepEqual(
      [segment.status, segment.body.error?.fields?.map((f) => f.field)],
      [400, ['params.addonName']],
    );
    assert.deepEqual(
      [category.status, category.body.error?.fields?.map((f) => f.field)],
      [400, ['manifest.category']],
    );
    assert.equal(deep.status, 400);
    assert.equal(deep.body.error?.code, 'BAD_USER_INPUT');
    assert.match(deep.body.error!.fields![0].field, /^body\.data(\.a){63}$/);
  });

  it('8. applies the same limits and codes to WebSocket operations as to HTTP', async () => {
    // given
    const client = liveClient(server.url, null);
    const cases: [string, Record<string, unknown>, string][] = [
      [DEEP_DELIVERIES, {}, 'GRAPHQL_VALIDATION_FAILED'],
      [MANY_ALIASES, {}, 'GRAPHQL_VALIDATION_FAILED'],
      [MANY_TOKENS, {}, 'GRAPHQL_PARSE_FAILED'],
      [COSTLY, {}, 'QUERY_TOO_COMPLEX'],
      [ADDON_BY_NAME, { name: 'a\u0000' }, 'BAD_USER_INPUT'],
      [ADDONS_BY_CATEGORY, { c: 'A'.repeat(100_000) }, 'BAD_USER_INPUT'],
    ];
    try {
      // when
      const { result, slowestMs } = await whileProbingLiveness(server.url, () =>
        Promise.all(
          cases.map(async ([query, variables]) => ({
            ws: await wsCodes(client, query, variables),
            http: codeOf((await server.anonymous.raw(query, variables)).errors),
          })),
        ),
      );
      // then
      result.forEach(({ ws, http }, i) => {
        assert.deepEqual([ws[0], http], [cases[i][2], cases[i][2]], cases[i][0].slice(0, 60));
      });
      assert.ok(slowestMs < LIVENESS_LIMIT_MS, `/livez took ${slowestMs.toFixed(0)} ms`);
      assert.deepEqual(await wsCodes(client, '{ viewer { role } }'), []);
    } finally {
      await client.dispose();
    }
  });

  it('9. keeps widget markup and styles inside the widget root', async () => {
    // given
    const m = manifest({
      widgets: [{ name: 'escape', category: 'DISPLAY' }],
      functions: [],
      configSchema: { type: 'object' },
    });
    await givenPublished(
      developer,
      m,
      `module.exports = { widgets: { escape: () => ({
        html: '<p>in</p></div></div><img src=x onerror=alert(1)><iframe srcdoc="<script>alert(1)</script>"></iframe><a href="javascript:alert(1)">x</a>',
        css: ':root ~ * { display: none !important } body + p { color: red } html > body ~ div { x: y } p { color: blue }',
      }) } };`,
    );
    await install(site, m.name as string);
    // when
    const { result, slowestMs } = await whileProbingLiveness(server.url, () =>
      server.anonymous.raw<{ renderWidget: { html: string; css: string } }>(RENDER_WIDGET, {
        addon: m.name,
        widget: 'escape',
        config: {},
        siteId: site.siteId,
      }),
    );
    // then
    const { html, css } = result.data!.renderWidget;
    const root = /^<div data-tp-widget="(w[0-9a-f]+)">/.exec(html)![1];
    assert.equal(
      html,
      `<div data-tp-widget="${root}"><p>in</p><img src="x" /><a rel="noopener noreferrer">x</a></div>`,
    );
    assert.equal(css, `[data-tp-widget="${root}"] p{color:blue}`);
    assert.ok(slowestMs < LIVENESS_LIMIT_MS, `/livez took ${slowestMs.toFixed(0)} ms`);
  });
});
