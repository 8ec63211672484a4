import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import WebSocket from 'ws';
import fc from 'fast-check';
import { startTestServer, type TestServer } from '../support/test-server.js';
import { givenDeveloper, givenPublished, givenSite, manifest } from '../support/fixtures.js';
import { liveClient } from '../events/helpers.js';

/**
 * Generated requests across GraphQL over HTTP, GraphQL over WebSocket and the REST routes, built
 * from valid operations with hostile values and mangled documents. No answer may be a 5xx or an
 * INTERNAL_SERVER_ERROR. Reproducible: FUZZ_SEED picks the run (printed with any failure),
 * FUZZ_REQUESTS how many requests it sends (CI: the default).
 */
const SEED = Number(process.env.FUZZ_SEED ?? Math.floor(Math.random() * 2 ** 31));
const REQUESTS = Number(process.env.FUZZ_REQUESTS ?? 2000);
const CONCURRENCY = 8;

/** Operations of the schema, each with its variables; the fuzzer fills and mangles them. */
const OPERATIONS: { query: string; variables: string[] }[] = [
  {
    query:
      'query A($name: String, $id: ID) { addon(name: $name, id: $id) { name version widgets { name configSchema } } }',
    variables: ['name', 'id'],
  },
  {
    query:
      'query L($search: String, $first: Int, $after: String, $c: AddonCategory) { addons(search: $search, first: $first, after: $after, category: $c) { totalCount edges { cursor node { name } } } }',
    variables: ['search', 'first', 'after', 'c'],
  },
  {
    query: 'query W($c: WidgetCategory) { widgets(category: $c) { name addon { name } } }',
    variables: ['c'],
  },
  {
    query:
      'query R($addon: String!, $widget: String!, $config: JSON!, $context: JSON!, $siteId: ID) { renderWidget(addon: $addon, widget: $widget, config: $config, context: $context, siteId: $siteId) { html css cacheKey } }',
    variables: ['addon', 'widget', 'config', 'context', 'siteId'],
  },
  {
    query:
      'query X($addonId: ID!, $function: String!, $data: JSON!) { executeAddonFunction(addonId: $addonId, function: $function, data: $data) }',
    variables: ['addonId', 'function', 'data'],
  },
  {
    query:
      'mutation X($addonId: ID!, $function: String!, $data: JSON!, $siteId: ID) { executeAddonFunction(addonId: $addonId, function: $function, data: $data, siteId: $siteId) }',
    variables: ['addonId', 'function', 'data', 'siteId'],
  },
  {
    query: 'mutation U($id: ID!, $config: JSON!) { updateAddonConfig(id: $id, config: $config) }',
    variables: ['id', 'config'],
  },
  {
    query:
      'mutation V($id: ID!, $version: String!) { changeAddonVersion(id: $id, version: $version) { id } }',
    variables: ['id', 'version'],
  },
  {
    query:
      'mutation E($name: String!, $data: JSON!, $siteId: ID) { emitEvent(name: $name, data: $data, siteId: $siteId) { id } }',
    variables: ['name', 'data', 'siteId'],
  },
  {
    query:
      'mutation I($id: ID!, $config: JSON!, $version: String) { installAddon(id: $id, config: $config, version: $version) { success } }',
    variables: ['id', 'config', 'version'],
  },
  {
    query: 'mutation P($input: RegisterAddonInput!) { registerAddon(input: $input) { addon { name } } }',
    variables: ['input'],
  },
  {
    query:
      'query Q($status: String, $kind: String, $entry: String, $addon: String, $first: Int, $after: String) { executions(status: $status, kind: $kind, entry: $entry, addon: $addon, first: $first, after: $after) { edges { cursor } } }',
    variables: ['status', 'kind', 'entry', 'addon', 'first', 'after'],
  },
  {
    query:
      'query Ev($names: [String!], $after: String, $first: Int) { events(names: $names, after: $after, first: $first) { edges { node { id name data } } } }',
    variables: ['names', 'after', 'first'],
  },
  {
    query: 'query D($id: ID!) { delivery(id: $id) { id status event { name deliveries { id } } } }',
    variables: ['id'],
  },
  {
    query: 'subscription S($names: [String!], $siteId: ID) { events(names: $names, siteId: $siteId) { id } }',
    variables: ['names', 'siteId'],
  },
  {
    query:
      'subscription T($status: DeliveryStatus, $addon: String) { deliveries(status: $status, addon: $addon) { id event { deliveries { id } } } }',
    variables: ['status', 'addon'],
  },
  { query: '{ viewer { role siteId } __typename }', variables: [] },
];

/** JSON nested too deep for this process's own JSON.stringify: kept as text and spliced in. */
class DeepJson {
  constructor(
    readonly depth: number,
    readonly leaf: unknown,
  ) {}

  text(): string {
    let open = '';
    let close = '';
    for (let i = 0; i < this.depth; i += 1) {
      open += i % 2 ? '[' : '{"a":';
      close = (i % 2 ? ']' : '}') + close;
    }
    return `${open}${JSON.stringify(this.leaf) ?? 'null'}${close}`;
  }

  /** The value itself, nested at most `max` deep (a graphql-ws client serialises what it sends). */
  shallow(max: number): unknown {
    let value = this.leaf;
    for (let i = 0; i < Math.min(this.depth, max); i += 1) value = i % 2 ? [value] : { a: value };
    return value;
  }
}

const nested = (depth: number, leaf: unknown): unknown => new DeepJson(depth, leaf);

/** JSON text of a generated value (undefined members dropped, as JSON.stringify does). */
function toJson(value: unknown): string | undefined {
  if (value instanceof DeepJson) return value.text();
  if (Array.isArray(value)) return `[${value.map((item) => toJson(item) ?? 'null').join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const members = Object.entries(value).flatMap(([key, item]) => {
      const text = toJson(item);
      return text === undefined ? [] : [`${JSON.stringify(key)}:${text}`];
    });
    return `{${members.join(',')}}`;
  }
  return JSON.stringify(value);
}

/** Percent-encodes text for a URL; an unpaired surrogate goes out as the bytes of its code unit. */
function encodeText(text: string): string {
  let out = '';
  for (const char of text) {
    const code = char.charCodeAt(0);
    out +=
      char.length === 1 && code >= 0xd800 && code <= 0xdfff
        ? `%${(0xe0 | (code >> 12)).toString(16)}%${(0x80 | ((code >> 6) & 0x3f)).toString(16)}%${(0x80 | (code & 0x3f)).toString(16)}`
        : encodeURIComponent(char);
  }
  return out;
}

/** A generated value as graphql-ws's client can send it. */
function shallow(value: unknown): unknown {
  if (value instanceof DeepJson) return value.shallow(100);
  if (Array.isArray(value)) return value.map(shallow);
  if (value !== null && typeof value === 'object')
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, shallow(item)]));
  return value;
}

const hostileString = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.constantFrom(
    '',
    '\u0000',
    'a\u0000b',
    '\ud800',
    'x\udc00y',
    '\u{1F600}',
    '%00',
    '../../etc/passwd',
    '__proto__',
    'constructor',
    '${{7*7}}',
    '<script>alert(1)</script>',
    '"); DROP TABLE "Addon"; --',
    '1.0.0',
    'ECOMMERCE',
    'DISPLAY',
    'PENDING',
    'payment.*',
    '*.*',
    'a'.repeat(300),
  ),
  fc.integer({ min: 1, max: 300_000 }).map((n) => 'A'.repeat(n)),
);

const jsonValue: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    hostileString,
    fc.integer(),
    fc.double(),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 5 }),
    fc.dictionary(hostileString, tie('value'), { maxKeys: 5 }),
    fc.tuple(fc.integer({ min: 30, max: 6000 }), hostileString).map(([depth, leaf]) => nested(depth, leaf)),
    fc.integer({ min: 1, max: 20_000 }).map((n) => Array.from({ length: n }, (_, i) => ({ i }))),
  ),
})).value;

/** Mangles a document: truncation, inserted junk, deep selections, aliases, huge names. */
const mangle = (query: string) =>
  fc.oneof(
    fc.constant(query),
    fc.constant(query),
    fc.integer({ min: 0, max: query.length }).map((n) => query.slice(0, n)),
    fc
      .tuple(
        fc.integer({ min: 0, max: query.length }),
        fc.constantFrom(
          '{',
          '}',
          '(',
          ')',
          '$',
          '"',
          '\\u0000',
          '@skip(if: true)',
          '...on Query { viewer { role } }',
          '#',
        ),
      )
      .map(([at, junk]) => query.slice(0, at) + junk + query.slice(at)),
    fc
      .integer({ min: 5, max: 400 })
      .map((n) => `{ ${'addons { edges { node { latestVersion { addon '.repeat(n)} }`),
    fc
      .integer({ min: 10, max: 500 })
      .map((n) => `{ ${Array.from({ length: n }, (_, i) => `a${i}: viewer { role }`).join(' ')} }`),
    fc.integer({ min: 1, max: 200_000 }).map((n) => `{ ${'x'.repeat(n)} }`),
    fc.constant('subscription { events { id } } query Q { viewer { role } }'),
  );

type Key = 'anonymous' | 'admin' | 'developer' | 'site' | 'junk';
const keyArb = fc.constantFrom<Key>('anonymous', 'admin', 'developer', 'site', 'site', 'junk');

type Request =
  | {
      kind: 'graphql';
      key: Key;
      method: 'POST' | 'GET';
      body: string | null;
      query: string;
      variables: unknown;
    }
  | { kind: 'ws'; key: Key; query: string; variables: unknown }
  | { kind: 'ws-raw'; frames: string[] }
  | { kind: 'rest'; key: Key; method: string; path: string; contentType: string; body: string | null };

const graphqlRequest = fc
  .tuple(
    fc.constantFrom(...OPERATIONS),
    keyArb,
    fc.constantFrom<'POST' | 'GET'>('POST', 'POST', 'POST', 'GET'),
    jsonValue,
    fc.boolean(),
  )
  .chain(([operation, key, method, junkVariables, wholeJunk]) =>
    fc
      .tuple(
        mangle(operation.query),
        fc.tuple(
          ...operation.variables.map(() => fc.oneof(jsonValue, hostileString, fc.constant(undefined))),
        ),
      )
      .map(([query, values]): Request => {
        const variables = wholeJunk
          ? junkVariables
          : Object.fromEntries(operation.variables.map((name, i) => [name, values[i]]));
        return { kind: 'graphql', key, method, body: null, query, variables };
      }),
  );

const wsRequest = fc
  .tuple(fc.constantFrom(...OPERATIONS), keyArb, fc.constantFrom(0, 1, 2))
  .chain(([operation, key]) =>
    fc
      .tuple(
        mangle(operation.query),
        fc.dictionary(fc.constantFrom(...operation.variables, 'x'), jsonValue, { maxKeys: 4 }),
      )
      .map(([query, variables]): Request => ({ kind: 'ws', key, query, variables })),
  );

const wsRaw = fc
  .array(
    fc.oneof(
      fc.string({ maxLength: 60 }),
      fc.constantFrom(
        '{"type":"connection_init"}',
        '{"type":"connection_init","payload":{"authorization":"Bearer \\u0000"}}',
        '{"type":"subscribe","id":"1","payload":{"query":"{ viewer { role } }"}}',
        '{"type":"subscribe","id":"\\u0000","payload":{"query":"subscription { events { id } }","variables":[1]}}',
        '{"type":"subscribe","id":"2","payload":{"query":123}}',
        '{"type":"ping"}',
        '{"type":"complete","id":"1"}',
        'null',
        '[]',
      ),
      jsonValue.map((v) => toJson({ type: 'subscribe', id: 'z', payload: v }) ?? 'null'),
    ),
    { minLength: 1, maxLength: 5 },
  )
  .map((frames): Request => ({ kind: 'ws-raw', frames }));

const restRequest = fc
  .tuple(
    keyArb,
    fc.constantFrom('GET', 'POST', 'PUT', 'DELETE'),
    fc.oneof(
      fc.constant('/api/addons/register'),
      hostileString.map((s) => `/api/addons/${encodeText(s)}/execute`),
      fc.constant('/api/addons/ADDON/execute'),
      fc
        .tuple(hostileString, hostileString)
        .map(([a, w]) => `/api/widgets/${encodeText(a)}/${encodeText(w)}`),
      fc.constant('/api/widgets/ADDON/WIDGET'),
      fc
        .tuple(jsonValue, jsonValue)
        .map(
          ([c, x]) =>
            `/api/widgets/ADDON/WIDGET?config=${encodeText(toJson(c) ?? '')}&context=${encodeText(toJson(x) ?? '')}&siteId=SITE`,
        ),
      fc.constantFrom(
        '/api/%00',
        '/api/addons/%ff%fe/execute',
        '/api/widgets/%E0%A4%A/x',
        '/api/../graphql',
        '/api/addons/register?x=%00',
      ),
    ),
    fc.constantFrom(
      'application/json',
      'application/json',
      'text/plain',
      'application/x-www-form-urlencoded',
      'application/json; charset=utf-16',
    ),
    fc.oneof(
      jsonValue.map((v) => toJson(v) ?? 'null'),
      fc
        .tuple(hostileString, jsonValue, jsonValue)
        .map(([action, data, siteId]) => toJson({ action, data, siteId }) ?? ''),
      jsonValue.map(
        (v) =>
          toJson({
            name: 'fuzzed',
            version: '1.0.0',
            category: 'UTILITIES',
            source: 'module.exports = {}',
            widgets: v,
            functions: v,
            configSchema: v,
          }) ?? '',
      ),
      fc.constantFrom(
        '{',
        '{"a":',
        '\u0000',
        '{"__proto__":{"x":1}}',
        '{"constructor":{"prototype":{"x":1}}}',
        '[]',
        '',
      ),
      fc.constant(null),
    ),
  )
  .map(([key, method, path, contentType, body]): Request => ({
    kind: 'rest',
    key,
    method,
    path,
    contentType,
    body,
  }));

const requestArb = fc.oneof(
  { arbitrary: graphqlRequest, weight: 5 },
  { arbitrary: wsRequest, weight: 2 },
  { arbitrary: wsRaw, weight: 1 },
  { arbitrary: restRequest, weight: 3 },
);

/** fetch, sent again once when a keep-alive connection was closed by the server as it went out. */
async function fetchRetrying(url: string, init?: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (error) {
    if ((error as { cause?: { code?: string } }).cause?.code !== 'UND_ERR_SOCKET') throw error;
    return fetch(url, init);
  }
}

describe(`fuzz: ${REQUESTS} generated requests (FUZZ_SEED=${SEED})`, () => {
  let server: TestServer;
  const keys: Record<Key, string | null> = {
    anonymous: null,
    admin: null,
    developer: null,
    site: null,
    junk: 'tp_junk',
  };
  let addonName = '';
  let siteId = '';

  before(async () => {
    server = await startTestServer({ NODE_ENV: 'production' });
    keys.admin = server.adminKey;
    const developer = await givenDeveloper(server.admin);
    keys.developer = developer.key;
    const site = await givenSite(server.admin);
    keys.site = site.key;
    siteId = site.siteId;
    const schema = {
      type: 'object',
      properties: { s: { type: 'string', pattern: '^(a+)+$' }, n: { type: 'integer' } },
    };
    const m = manifest({
      permissions: ['events.emit', 'storage.read', 'storage.write'],
      configSchema: { type: 'object' },
      widgets: [{ name: 'w', category: 'DISPLAY', configSchema: schema, varyOn: ['a'] }],
      functions: [{ name: 'echo', inputSchema: schema, readonly: true }, { name: 'store' }],
      events: { emits: [{ name: 'fuzz.done', schema: { type: 'object' } }] },
    });
    await givenPublished(
      developer.client,
      m,
      `module.exports = {
        functions: {
          echo: (d) => d,
          store: async (d, ctx) => { await ctx.storage.set(String(d && d.key), d && d.value); await ctx.events.emit('fuzz.done', d && typeof d === 'object' ? d : {}); return true; },
        },
        widgets: { w: (config, context) => ({ html: '<p>' + JSON.stringify(config) + '</p>', css: String(config.s || '') + '{color:red}' }) },
      };`,
    );
    addonName = m.name as string;
    await site.client.raw('mutation I($id: ID!) { installAddon(id: $id, config: {}) { success } }', {
      id: addonName,
    });
  });
  after(() => server.close());

  it('answers every one without a 5xx or INTERNAL_SERVER_ERROR', async () => {
    const requests = fc.sample(requestArb, { seed: SEED, numRuns: REQUESTS });
    const failures: string[] = [];
    let closedEarly = 0;
    const fill = (text: string) =>
      text.replaceAll('ADDON', addonName).replaceAll('WIDGET', 'w').replaceAll('SITE', siteId);
    const clients = new Map<Key, ReturnType<typeof liveClient>>();
    const clientFor = (key: Key) => {
      let client = clients.get(key);
      if (!client) clients.set(key, (client = liveClient(server.url, keys[key])));
      return client;
    };
    const describeRequest = (request: Request) => (toJson(request) ?? '').slice(0, 300);

    const send = async (request: Request): Promise<void> => {
      if (request.kind === 'graphql') {
        const auth: Record<string, string> = keys[request.key]
          ? { authorization: `Bearer ${keys[request.key]}` }
          : {};
        let response: Response;
        const variablesText = toJson(request.variables) ?? '';
        // GET carries the operation in the URL: only small ones, as a browser would send.
        if (request.method === 'GET' && variablesText.length + request.query.length < 4000) {
          const params = new URLSearchParams({ query: fill(request.query) });
          if (request.variables !== undefined) params.set('variables', variablesText);
          response = await fetchRetrying(`${server.url}/graphql?${params}`, {
            headers: { ...auth, 'apollo-require-preflight': 'true' },
          });
        } else {
          response = await fetchRetrying(`${server.url}/graphql`, {
            method: 'POST',
            headers: { ...auth, 'content-type': 'application/json' },
            body: toJson({ query: fill(request.query), variables: request.variables }),
          });
        }
        const text = await response.text();
        if (response.status >= 500 || text.includes('INTERNAL_SERVER_ERROR'))
          failures.push(`${response.status} ${text.slice(0, 300)} <- ${describeRequest(request)}`);
        return;
      }
      if (request.kind === 'rest') {
        const response = await fetchRetrying(`${server.url}${fill(request.path)}`, {
          method: request.method,
          headers: {
            ...(keys[request.key] ? { authorization: `Bearer ${keys[request.key]}` } : {}),
            ...(request.body === null ? {} : { 'content-type': request.contentType }),
          },
          body: request.body === null || request.method === 'GET' ? undefined : fill(request.body),
        });
        const text = await response.text();
        if (response.status >= 500 || text.includes('INTERNAL_SERVER_ERROR'))
          failures.push(`${response.status} ${text.slice(0, 300)} <- ${describeRequest(request)}`);
        return;
      }
      if (request.kind === 'ws') {
        const errors = await new Promise<string>((resolve) => {
          let done = false;
          const finish = (text: string) => {
            if (done) return;
            done = true;
            clearTimeout(timer);
            stop();
            resolve(text);
          };
          const stop = clientFor(request.key).subscribe(
            { query: fill(request.query), variables: shallow(request.variables) as Record<string, unknown> },
            {
              next: (value) => finish(JSON.stringify(value.errors ?? [])),
              error: (error) => finish(JSON.stringify(error)),
              complete: () => finish('[]'),
            },
          );
          // A subscription that is accepted stays open: it answered without an error.
          const timer = setTimeout(() => finish('[]'), 200);
        });
        if (errors.includes('INTERNAL_SERVER_ERROR'))
          failures.push(`ws ${errors.slice(0, 300)} <- ${describeRequest(request)}`);
        return;
      }
      const closed = await new Promise<{ code: number; reason: string }>((resolve) => {
        const socket = new WebSocket(`${server.url.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
        const timer = setTimeout(() => {
          socket.terminate();
          resolve({ code: 0, reason: 'open' });
        }, 300);
        socket.on('open', () => request.frames.forEach((frame) => socket.send(fill(frame))));
        socket.on('message', (data) => {
          if (String(data).includes('INTERNAL_SERVER_ERROR'))
            failures.push(`ws-raw message ${String(data).slice(0, 200)}`);
        });
        socket.on('close', (code, reason) => {
          clearTimeout(timer);
          resolve({ code, reason: String(reason) });
        });
        socket.on('error', () => undefined);
      });
      // 1011: the server's own failure; 4400-4499 are the protocol's answers to bad frames.
      if (closed.code === 1011)
        failures.push(`ws-raw closed ${closed.code} ${closed.reason} <- ${describeRequest(request)}`);
    };

    try {
      let next = 0;
      await Promise.all(
        Array.from({ length: CONCURRENCY }, async () => {
          while (next < requests.length) {
            const request = requests[next];
            next += 1;
            try {
              await send(request);
            } catch (error) {
              // The server may answer before reading a large body it refuses (404, 413) and close
              // the connection; the client then fails to send. Not an answer, and not a failure.
              const code = (error as { cause?: { code?: string } }).cause?.code ?? '';
              if (['UND_ERR_SOCKET', 'EPIPE', 'ECONNRESET'].includes(code)) closedEarly += 1;
              else failures.push(`client error ${String(error)} ${code} <- ${describeRequest(request)}`);
            }
          }
        }),
      );
    } finally {
      await Promise.all([...clients.values()].map((client) => client.dispose()));
    }
    assert.deepEqual(
      failures.slice(0, 10),
      [],
      `FUZZ_SEED=${SEED}: ${failures.length} of ${REQUESTS} failed`,
    );
    assert.ok(
      closedEarly < REQUESTS / 50,
      `FUZZ_SEED=${SEED}: ${closedEarly} connections closed before an answer`,
    );
    assert.equal(
      (await fetch(`${server.url}/readyz`)).status,
      200,
      `FUZZ_SEED=${SEED}: the server is not ready after the run`,
    );
  });
});
