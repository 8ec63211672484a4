import {
  CreateApiKeyDocument,
  CreateSiteDocument,
  InstallAddonDocument,
  RegisterAddonDocument,
} from '../generated/graphql.js';
import type { GraphQLClient } from './graphql-client.js';

let counter = 0;
/** A name no other test in this run uses. */
export function uniqueName(prefix: string): string {
  counter += 1;
  return `${prefix}-${process.pid}-${counter}`;
}

/** A small but complete manifest; override any field. */
export function manifest(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: uniqueName('addon'),
    version: '1.0.0',
    displayName: 'Test addon',
    description: 'An addon used by the tests',
    author: 'Test Author',
    category: 'UTILITIES',
    permissions: ['storage.read'],
    configSchema: {
      type: 'object',
      properties: { greeting: { type: 'string', default: 'hello' } },
      additionalProperties: false,
    },
    widgets: [
      {
        name: 'banner',
        displayName: 'Banner',
        category: 'DISPLAY',
        configSchema: { type: 'object', properties: { title: { type: 'string' } } },
      },
    ],
    functions: [
      { name: 'echo', description: 'Returns its input', readonly: true },
      { name: 'save', description: 'Writes', readonly: false },
    ],
    ...overrides,
  };
}

export const SOURCE = `module.exports = {
  functions: { echo: (data) => data, save: (data) => ({ saved: true, data }) },
  widgets: { banner: (config) => ({ html: '<div>' + (config.title || '') + '</div>', css: '', javascript: '' }) },
};`;

/**
 * A module exporting every function, widget and handler `m` declares (publishing refuses code that
 * does not): `echo` returns its input, `save` echoes it as `{ saved, data }`, other functions return
 * their input, widgets render their config's `title`, handlers do nothing.
 */
export function sourceFor(m: Record<string, unknown>): string {
  const names = (list: unknown) =>
    Array.isArray(list) ? list.map((item) => (item as { name: string }).name) : [];
  const functions = names(m.functions ?? m.endpoints).map((name) =>
    name === 'save'
      ? `${JSON.stringify(name)}: (data) => ({ saved: true, data })`
      : `${JSON.stringify(name)}: (data) => data`,
  );
  const widgets = names(m.widgets).map(
    (name) =>
      `${JSON.stringify(name)}: (config) => ({ html: '<div>' + (config.title || '') + '</div>', css: '', javascript: '' })`,
  );
  const events = (m.events ?? {}) as { handles?: Record<string, string> };
  const handlers = [...new Set(Object.values(events.handles ?? {}))].map(
    (name) => `${JSON.stringify(name)}: () => null`,
  );
  return `module.exports = {
  functions: { ${functions.join(', ')} },
  widgets: { ${widgets.join(', ')} },
  handlers: { ${handlers.join(', ')} },
};`;
}

/** A site and a key for it, created with the admin client. */
export async function givenSite(admin: GraphQLClient, name = uniqueName('site')) {
  const { createSite } = await admin.ok(CreateSiteDocument, { name });
  const { createApiKey } = await admin.ok(CreateApiKeyDocument, { role: 'SITE', siteId: createSite.id });
  return { siteId: createSite.id, key: createApiKey.key, client: admin.as(createApiKey.key) };
}

/** A developer key (the developer is created on first use). */
export async function givenDeveloper(admin: GraphQLClient, developerName = uniqueName('dev')) {
  const { createApiKey } = await admin.ok(CreateApiKeyDocument, { role: 'DEVELOPER', developerName });
  return { key: createApiKey.key, client: admin.as(createApiKey.key) };
}

/** Publishes a version with the given client; fails the test on errors. */
export async function givenPublished(
  client: GraphQLClient,
  m: Record<string, unknown>,
  source = sourceFor(m),
) {
  return (await client.ok(RegisterAddonDocument, { input: { manifest: m, source } })).registerAddon;
}

/**
 * Publishes an addon with `source` and installs it on a new site; returns the site client and
 * the addon name.
 */
export async function givenInstalledAddon(
  admin: GraphQLClient,
  developer: GraphQLClient,
  overrides: Record<string, unknown>,
  source: string,
  config: Record<string, unknown> = {},
) {
  const m = manifest({ configSchema: { type: 'object' }, widgets: [], functions: [], ...overrides });
  await givenPublished(developer, m, source);
  const site = await givenSite(admin);
  await site.client.ok(InstallAddonDocument, { id: m.name as string, config });
  return { site, name: m.name as string, manifest: m };
}
