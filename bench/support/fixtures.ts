// Addons and requests shared by the benchmarks and by `npm run bench:compare`, so that a comparison
// of two builds measures exactly what the benchmark sections report.
import { gql } from './bench-server.js';
import { ECHO_SOURCE } from './echo-addon.js';

export { ECHO_SOURCE };

/** Fixed request rates of the execution benchmark's open loop (and of the calibration's round trips). */
export const OPEN_LOOP_RATES = [250, 500, 1000];

/** The ~1 KB JSON input of the execution benchmarks. */
export const PAYLOAD = {
  items: Array.from({ length: 10 }, (_, i) => ({
    sku: `SKU-${1000 + i}`,
    name: `Product number ${i} with a name`,
    qty: i + 1,
    price: 12.5 * (i + 1),
  })),
};

/** The seed's checkout form: the widget of the issue-4 benchmark. */
export const CHECKOUT_SOURCE = `module.exports = { widgets: {
  'checkout-form': (config, context, ctx) => ({
    html: ctx.html\`<form class="checkout" data-session="\${context.sessionId}">
      <h2>\${config.title}</h2>
      \${config.methods.map((m) => ctx.html\`<label class="method"><input type="radio" name="method" value="\${m}"> \${m}</label>\`)}
      <input name="amount" type="number" min="1" value="\${config.amount}"><button type="submit">Pay</button></form>\`,
    css: '.checkout { display: grid; gap: 8px } .method { padding: 4px } body { margin: 0 } @media (max-width: 600px) { .checkout { gap: 4px } }',
    javascript: 'document.querySelector(".checkout").addEventListener("submit", (e) => { e.preventDefault(); parent.postMessage({ pay: true }, "*"); });',
  }),
} };`;

export const CHECKOUT_MANIFEST = {
  name: 'bench-checkout',
  version: '1.0.0',
  category: 'ECOMMERCE',
  widgets: [
    {
      name: 'checkout-form',
      category: 'FORM',
      varyOn: ['sessionId'],
      configSchema: {
        type: 'object',
        properties: {
          title: { type: 'string', default: 'Checkout' },
          amount: { type: 'integer', minimum: 1, default: 1 },
          methods: { type: 'array', items: { type: 'string' }, default: ['card', 'bank', 'kakao'] },
        },
      },
    },
  ],
};

/** The config and page context of the benchmarked checkout renders. */
export const CHECKOUT_CONFIG = { title: 'Pay', methods: ['card', 'kakao'] };
export const CHECKOUT_CONTEXT = { sessionId: 'bench-session' };

/** Publishes an addon with the developer key and installs it on the site of the site key. */
export async function publishAndInstall(
  url: string,
  keys: { devKey: string; siteKey: string },
  manifest: { name: string } & Record<string, unknown>,
  source: string,
): Promise<void> {
  await gql(
    url,
    keys.devKey,
    'mutation($i: RegisterAddonInput!) { registerAddon(input: $i) { addon { id } } }',
    {
      i: { manifest, source },
    },
  );
  await gql(url, keys.siteKey, 'mutation($id: ID!) { installAddon(id: $id, config: {}) { success } }', {
    id: manifest.name,
  });
}

/** Publishes and installs the echo addon under `name`. */
export async function publishEcho(url: string, keys: { devKey: string; siteKey: string }, name: string) {
  // Calls in flight at once stay under 16 (the default limit) in the closed loop, but an open-loop
  // rate queues more behind a stall of the machine; the benchmark measures speed, not that limit.
  const manifest = {
    name,
    version: '1.0.0',
    category: 'UTILITIES',
    functions: [{ name: 'echo' }],
    limits: { maxConcurrentCalls: 64 },
  };
  await publishAndInstall(url, keys, manifest, ECHO_SOURCE);
}

/**
 * A function with effects: two storage writes (keys drawn from 1000, so the scope stays under its
 * quota) and one event, on top of the echo. What a call's atomic commit costs is measured with it.
 */
export const EFFECTS_SOURCE = `module.exports = { functions: {
  write: async (data, ctx) => {
    const n = Math.floor(Math.random() * 1000);
    await ctx.storage.set('order:' + n, data);
    await ctx.storage.set('total:' + n, { n, items: data.items.length });
    await ctx.events.emit('bench.wrote', { n });
    return { n };
  },
} };`;

/** Publishes and installs the effects addon under `name`. */
export async function publishEffects(url: string, keys: { devKey: string; siteKey: string }, name: string) {
  const manifest = {
    name,
    version: '1.0.0',
    category: 'UTILITIES',
    permissions: ['storage.read', 'storage.write', 'events.emit'],
    functions: [{ name: 'write' }],
    events: { emits: ['bench.wrote'] },
    limits: { maxConcurrentCalls: 64 },
  };
  await publishAndInstall(url, keys, manifest, EFFECTS_SOURCE);
}

/** The issue-3 comparison's two operations as query and variables, for clients that encode them per request. */
export const operations = {
  typename: { query: '{ __typename }', variables: {} as Record<string, unknown> },
  /** A warm execution of the echo addon published as `name`, with {@link PAYLOAD}. */
  execute: (name: string) => ({
    query: 'mutation($a: ID!, $d: JSON!) { executeAddonFunction(addonId: $a, function: "echo", data: $d) }',
    variables: { a: name, d: PAYLOAD } as Record<string, unknown>,
  }),
};

/** GraphQL request bodies (JSON text), as the benchmarks send them. */
export const bodies = {
  typename: JSON.stringify({ query: operations.typename.query }),
  /** A warm execution of the echo addon published as `name`, with {@link PAYLOAD}. */
  execute: (name: string) => JSON.stringify(operations.execute(name)),
  /** A call of the effects addon published as `name` (two writes and an event), with {@link PAYLOAD}. */
  effects: (name: string) =>
    JSON.stringify({
      query:
        'mutation($a: ID!, $d: JSON!) { executeAddonFunction(addonId: $a, function: "write", data: $d) }',
      variables: { a: name, d: PAYLOAD },
    }),
  /** A render of the checkout form through `Query.renderWidget` (a cache hit after the first). */
  renderWidget: JSON.stringify({
    query:
      'query($c: JSON!, $x: JSON!) { renderWidget(addon: "bench-checkout", widget: "checkout-form", config: $c, context: $x) { html css javascript cacheKey version cached } }',
    variables: { c: CHECKOUT_CONFIG, x: CHECKOUT_CONTEXT },
  }),
  /** The same render through `Query.widget { render }` (the widget fetched first). */
  widgetRender: JSON.stringify({
    query:
      'query($c: JSON!, $x: JSON!) { widget(addon: "bench-checkout", name: "checkout-form") { render(config: $c, context: $x) { html css javascript cacheKey version cached } } }',
    variables: { c: CHECKOUT_CONFIG, x: CHECKOUT_CONTEXT },
  }),
};
