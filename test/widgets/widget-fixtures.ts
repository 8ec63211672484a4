import { givenInstalledAddon } from '../support/fixtures.js';
import type { GraphQLClient } from '../support/graphql-client.js';

/** The seed's checkout form, a stock display reading storage, and a hostile widget. */
export const WIDGET_SOURCE = `module.exports = {
  functions: { 'set-stock': async (data, ctx) => { await ctx.storage.set('stock', data.n); return true; } },
  widgets: {
    'checkout-form': (config, context, ctx) => ({
      html: ctx.html\`<form class="checkout" data-session="\${context.sessionId}" title="\${config.title}">
        <h2>\${config.title}</h2>\${config.methods.map((m) => ctx.html\`<label><input type="radio" name="method" value="\${m}">\${m}</label>\`)}
        <p class="who">\${context.userName}</p><button>Pay</button></form>\`,
      css: '.checkout { display: grid } body { margin: 0 } @media (max-width: 600px) { .checkout { gap: 4px } }',
      javascript: 'document.querySelector("form").dataset.ready = "1"; // </script><script>alert(1)</script>',
    }),
    stock: async (config, context, ctx) => ctx.html\`<p class="stock">\${String(await ctx.storage.get('stock'))}</p>\`,
    hostile: () => ({
      html: '<p>hi</p><style>body { display: none }</style><link rel="stylesheet" href="https://evil.example/x.css"><base href="https://evil.example/">',
      css: '.x { color: red } </style><script>alert(1)</script> body { display: none } @import url(https://evil.example/a.css); .y { background: url(javascript:alert(1)) }',
      javascript: 'var s = "</script><script>alert(2)</script>";',
    }),
  },
};`;

export const WIDGETS = [
  {
    name: 'checkout-form',
    displayName: 'Checkout',
    category: 'FORM',
    configSchema: {
      type: 'object',
      properties: {
        title: { type: 'string', default: 'Checkout' },
        methods: {
          type: 'array',
          items: { type: 'string', enum: ['card', 'bank', 'kakao'] },
          default: ['card', 'bank', 'kakao'],
        },
        limit: { type: 'integer', minimum: 1 },
      },
      additionalProperties: false,
    },
    varyOn: ['sessionId'],
  },
  { name: 'stock', displayName: 'Stock', category: 'DISPLAY', invalidateOn: ['stock.updated'] },
  { name: 'hostile', displayName: 'Hostile', category: 'DISPLAY' },
];

/** Publishes the widget addon with a developer client and installs it on a new site. */
export async function givenWidgetAddon(admin: GraphQLClient, developer: GraphQLClient) {
  return givenInstalledAddon(
    admin,
    developer,
    {
      permissions: ['storage.read', 'storage.write'],
      widgets: WIDGETS,
      functions: [{ name: 'set-stock' }],
      configSchema: { type: 'object', properties: { currency: { type: 'string', default: 'KRW' } } },
    },
    WIDGET_SOURCE,
  );
}

/** Fetches a REST render; `query` values are JSON-encoded. */
export async function restRender(
  url: string,
  addon: string,
  widget: string,
  query: { config?: unknown; context?: unknown; siteId?: string },
  init: { key?: string; accept?: string } = {},
): Promise<Response> {
  const params = new URLSearchParams();
  if (query.config !== undefined) params.set('config', JSON.stringify(query.config));
  if (query.context !== undefined) params.set('context', JSON.stringify(query.context));
  if (query.siteId) params.set('siteId', query.siteId);
  return fetch(`${url}/api/widgets/${addon}/${widget}?${params}`, {
    headers: {
      ...(init.key ? { authorization: `Bearer ${init.key}` } : {}),
      ...(init.accept ? { accept: init.accept } : {}),
    },
  });
}
