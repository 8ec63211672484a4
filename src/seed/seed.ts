import { mkdir, readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import semver from 'semver';
import { ValidationError } from '../errors/index.js';
import { parseAddonManifest, type AddonManifest } from '../addons/addon-manifest.js';
import { ADDON_PACKAGE_FILES, readAddonPackage, type AddonPackage } from '../addons/addon-package.js';
import { ApiClient, resolveApiKey, resolveServerUrl, type ResolvedKey } from '../cli/api-client.js';
import { CliError, EXIT, type Reporter } from '../cli/cli-io.js';
import type { Command } from '../cli/command.js';
import { SERVER_HELP, SERVER_OPTIONS, REGISTER_ADDON } from '../cli/commands/publish.js';
import { INSTALL_ADDON } from '../cli/commands/install.js';
import { readFixtures } from '../cli/fixtures.js';
import { PACKAGE_ROOT } from '../cli/package-root.js';

/** The site the seed installs everything on. */
export const DEMO_SITE_NAME = 'Demo shop';
const DEMO_SITE_DOMAIN = 'shop.example.com';
/** Where the seed keeps the demo site's key, so a second run prints the same key. */
export const DEMO_SITE_KEY_FILE = 'demo-site-key.json';
/** Shell variables for the examples in docs/ (`source .data/demo.env`): the demo site's key and id. */
export const DEMO_ENV_FILE = 'demo.env';

/** An addon folder to seed, in dependency order. */
interface SeedAddon {
  pkg: AddonPackage;
  manifest: AddonManifest;
  config: unknown;
}

/** What happened to each addon; printed, and the `--json` output. */
export interface SeedResult {
  ok: true;
  server: string;
  site: { id: string; name: string; created: boolean };
  siteKey: { key: string; reused: boolean };
  addons: {
    name: string;
    version: string;
    publish: 'published' | 'already published' | 'newer version published';
    install: 'installed' | 'already installed';
    installedVersion: string;
  }[];
  widgets: { addon: string; widget: string; url: string }[];
  /** The file with SITE and SITE_ID for the docs' examples, or null when it could not be written. */
  envFile: string | null;
}

/** Addon folders of `dir`: sub-folders holding a manifest.json. */
async function addonFolders(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = (await readdir(dir)).sort();
  } catch (error) {
    throw new CliError(
      `Cannot read the addons folder ${dir}: ${(error as NodeJS.ErrnoException).code ?? error}`,
    );
  }
  const folders: string[] = [];
  for (const name of names) {
    if (name.startsWith('.') || name === 'node_modules') continue;
    const manifest = path.join(dir, name, ADDON_PACKAGE_FILES.manifest);
    if (
      await stat(manifest).then(
        (s) => s.isFile(),
        () => false,
      )
    )
      folders.push(path.join(dir, name));
  }
  return folders;
}

/**
 * Orders addons so each comes after the ones it depends on (dependencies outside the folder are
 * left to the server, which refuses them unless already published).
 * @throws CliError on a dependency cycle.
 */
export function dependencyOrder<T extends { manifest: Pick<AddonManifest, 'name' | 'dependencies'> }>(
  addons: T[],
): T[] {
  const byName = new Map(addons.map((a) => [a.manifest.name, a]));
  const ordered: T[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (addon: T, trail: string[]) => {
    const name = addon.manifest.name;
    if (state.get(name) === 'done') return;
    if (state.get(name) === 'visiting') {
      throw new CliError(`The addons depend on each other in a cycle: ${[...trail, name].join(' -> ')}.`);
    }
    state.set(name, 'visiting');
    for (const dependency of Object.keys(addon.manifest.dependencies).sort()) {
      const target = byName.get(dependency);
      if (target) visit(target, [...trail, name]);
    }
    state.set(name, 'done');
    ordered.push(addon);
  };
  for (const addon of addons) visit(addon, []);
  return ordered;
}

async function readSeedAddons(dir: string): Promise<SeedAddon[]> {
  const folders = await addonFolders(dir);
  if (folders.length === 0) throw new CliError(`No addon folders (with a manifest.json) in ${dir}.`);
  const addons: SeedAddon[] = [];
  for (const folder of folders) {
    let pkg: AddonPackage;
    let manifest: AddonManifest;
    try {
      pkg = await readAddonPackage(folder);
      manifest = parseAddonManifest(pkg.manifest);
    } catch (error) {
      if (error instanceof ValidationError) {
        throw new CliError(
          `${folder} is not a valid addon; nothing was seeded. (themepress addon validate ${folder} shows more.)`,
          EXIT.failure,
          error.fields,
          'BAD_USER_INPUT',
        );
      }
      throw error;
    }
    const fixtures = await readFixtures(folder);
    addons.push({ pkg, manifest, config: fixtures.config ?? {} });
  }
  const names = new Map<string, string>();
  for (const addon of addons) {
    const other = names.get(addon.manifest.name);
    if (other)
      throw new CliError(`${other} and ${addon.pkg.directory} both hold the addon "${addon.manifest.name}".`);
    names.set(addon.manifest.name, addon.pkg.directory);
  }
  return dependencyOrder(addons);
}

const VIEWER = `query Viewer { viewer { role siteId } }`;
const ADDON_VERSIONS = `query AddonVersions($name: String!) { addon(name: $name) { id versions { version } } }`;
const SITES = `query Sites { sites { id name } }`;
const CREATE_SITE = `mutation CreateSite($name: String!, $domain: String) { createSite(name: $name, domain: $domain) { id name } }`;
const INSTALLATIONS = `query Installations($siteId: ID) {
  installations(siteId: $siteId) { id addon { name } version { version } }
}`;
const CREATE_SITE_KEY = `mutation CreateSiteKey($siteId: ID) {
  createApiKey(role: SITE, siteId: $siteId, name: "Demo shop (npm run seed)") { key }
}`;
const WIDGETS = `query SiteWidgets($siteId: ID) {
  installations(siteId: $siteId) { addon { name } version { widgets { name } } }
}`;

/**
 * A key for the demo site: the one a previous run stored, when the server still accepts it for
 * that site, else a new one (stored for next time, mode 0600).
 */
async function demoSiteKey(
  client: ApiClient,
  siteId: string,
  file: string,
  out: Reporter,
): Promise<{ key: string; reused: boolean }> {
  try {
    const stored = JSON.parse(await readFile(file, 'utf8')) as {
      server?: string;
      siteId?: string;
      key?: string;
    };
    if (stored.server === client.baseUrl && stored.siteId === siteId && typeof stored.key === 'string') {
      const viewer = await client
        .withKey({ key: stored.key, source: file })
        .request<{ viewer: { role: string; siteId: string | null } }>('check the stored site key', VIEWER);
      if (viewer.viewer.role === 'site' && viewer.viewer.siteId === siteId)
        return { key: stored.key, reused: true };
    }
  } catch {
    // No file, another server or site, or a revoked key: issue a new one below.
  }
  const created = await client.request<{ createApiKey: { key: string } }>(
    'create a key for the demo site',
    CREATE_SITE_KEY,
    { siteId },
  );
  const key = created.createApiKey.key;
  try {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, `${JSON.stringify({ server: client.baseUrl, siteId, key }, null, 2)}\n`, {
      mode: 0o600,
    });
  } catch (error) {
    out.warn(
      `could not keep the site key in ${file} (${(error as Error).message}); the next run issues another`,
    );
  }
  return { key, reused: false };
}

/**
 * Publishes every addon folder of `dir` (dependencies first, versions already published skipped)
 * and installs each on the "Demo shop" site, creating the site and a site key when missing.
 * Running it again changes nothing and prints the same site and key.
 */
export async function seed(options: {
  dir: string;
  client: ApiClient;
  dataDir: string;
  out: Reporter;
}): Promise<SeedResult> {
  const { client, out } = options;
  const addons = await readSeedAddons(options.dir);
  out.progress(
    `Seeding ${client.baseUrl} from ${options.dir}: ${addons.map((a) => a.manifest.name).join(', ')}`,
  );
  const viewer = await client.request<{ viewer: { role: string } }>('check the API key', VIEWER);
  if (viewer.viewer.role !== 'admin') {
    throw new CliError(
      `The seed needs an admin key (it creates a site and its key); THEMEPRESS_API_KEY is a ${viewer.viewer.role} key.`,
      EXIT.usage,
      [],
      'FORBIDDEN',
    );
  }

  const results: SeedResult['addons'] = [];
  const installVersion = new Map<string, string | null>();
  for (const addon of addons) {
    const { name, version } = addon.manifest;
    const existing = await client.request<{ addon: { versions: { version: string }[] } | null }>(
      `look up ${name}`,
      ADDON_VERSIONS,
      { name },
    );
    const published = existing.addon?.versions.map((v) => v.version) ?? [];
    const highest = semver.rsort([...published])[0];
    let outcome: SeedResult['addons'][number]['publish'];
    if (published.includes(version)) {
      outcome = 'already published';
      installVersion.set(name, version);
    } else if (highest && semver.gt(highest, version)) {
      // Versions only go up: a newer one published by hand stays, and the site gets the latest.
      outcome = 'newer version published';
      installVersion.set(name, null);
      out.warn(
        `${name}: ${highest} is published, newer than ${version} in ${addon.pkg.directory}; keeping it`,
      );
    } else {
      out.progress(`Publishing ${name} ${version}…`);
      await client.request(`publish ${name} ${version}`, REGISTER_ADDON, {
        input: {
          manifest: addon.pkg.manifest,
          source: addon.pkg.source,
          ...(addon.pkg.wasmBase64 ? { wasmBase64: addon.pkg.wasmBase64 } : {}),
        },
      });
      outcome = 'published';
      installVersion.set(name, version);
    }
    results.push({ name, version, publish: outcome, install: 'already installed', installedVersion: '' });
  }

  const sites = await client.request<{ sites: { id: string; name: string }[] }>('list the sites', SITES);
  let site = sites.sites.find((s) => s.name === DEMO_SITE_NAME);
  const created = !site;
  if (!site) {
    out.progress(`Creating the site "${DEMO_SITE_NAME}"…`);
    site = (
      await client.request<{ createSite: { id: string; name: string } }>(
        'create the demo site',
        CREATE_SITE,
        {
          name: DEMO_SITE_NAME,
          domain: DEMO_SITE_DOMAIN,
        },
      )
    ).createSite;
  }

  const installed = await client.request<{
    installations: { addon: { name: string }; version: { version: string } }[];
  }>('list the demo site installations', INSTALLATIONS, { siteId: site.id });
  const installedByName = new Map(installed.installations.map((i) => [i.addon.name, i.version.version]));
  for (const [i, addon] of addons.entries()) {
    const { name } = addon.manifest;
    const current = installedByName.get(name);
    if (current) {
      results[i].installedVersion = current;
      continue;
    }
    out.progress(`Installing ${name} on "${DEMO_SITE_NAME}"…`);
    const data = await client.request<{ installAddon: { installation: { version: { version: string } } } }>(
      `install ${name} on ${DEMO_SITE_NAME}`,
      INSTALL_ADDON,
      { id: name, config: addon.config, version: installVersion.get(name) ?? null, siteId: site.id },
    );
    results[i].install = 'installed';
    results[i].installedVersion = data.installAddon.installation.version.version;
  }

  const siteKey = await demoSiteKey(client, site.id, path.join(options.dataDir, DEMO_SITE_KEY_FILE), out);
  let envFile: string | null = path.join(options.dataDir, DEMO_ENV_FILE);
  try {
    await writeFile(
      envFile,
      `# Written by the seed for the examples in docs/ (source it): the "${DEMO_SITE_NAME}" site's key and id.\n` +
        `SITE=${siteKey.key}\nSITE_ID=${site.id}\n`,
      { mode: 0o600 },
    );
  } catch (error) {
    out.warn(`could not write ${envFile} (${(error as Error).message})`);
    envFile = null;
  }
  const widgetRows = await client.request<{
    installations: { addon: { name: string }; version: { widgets: { name: string }[] } }[];
  }>('list the demo site widgets', WIDGETS, { siteId: site.id });
  const widgets = widgetRows.installations.flatMap((i) =>
    i.version.widgets.map((w) => ({
      addon: i.addon.name,
      widget: w.name,
      url: `${client.baseUrl}/api/widgets/${i.addon.name}/${w.name}?siteId=${site.id}`,
    })),
  );
  return {
    ok: true,
    server: client.baseUrl,
    site: { id: site.id, name: site.name, created },
    siteKey,
    addons: results,
    widgets,
    envFile,
  };
}

function printSeed(result: SeedResult, out: Reporter): void {
  for (const a of result.addons) {
    out.line(
      `  ${a.name.padEnd(24)} ${a.version.padEnd(10)} ${a.publish}; ${a.install} (${a.installedVersion})`,
    );
  }
  out.line('');
  out.line(`✓ "${result.site.name}" is ready on ${result.server}${result.site.created ? ' (created)' : ''}.`);
  out.line(`  site id:   ${result.site.id}`);
  out.line(
    `  site key:  ${result.siteKey.key}${result.siteKey.reused ? ' (same as last run)' : ' (new; shown again on the next run)'}`,
  );
  out.line('');
  out.line('Try it:');
  out.line(`  SITE=${result.siteKey.key}`);
  out.line(
    `  curl -s ${result.server}/graphql -H 'content-type: application/json' -H "authorization: Bearer $SITE" \\\n    -d '{"query":"{ installations { addon { name } version { version } config } }"}'`,
  );
  if (result.envFile) {
    const shown = path.relative(process.cwd(), result.envFile);
    out.line(
      `  # the examples in docs/ read SITE and SITE_ID from: source ${shown.startsWith('..') ? result.envFile : shown}`,
    );
  }
  const firstPerAddon = result.widgets.filter((w, i, all) => all.findIndex((o) => o.addon === w.addon) === i);
  if (firstPerAddon.length > 0) out.line('  # widgets, in a browser:');
  for (const w of firstPerAddon) out.line(`  ${w.url}`);
}

export const seedCommand: Command = {
  words: ['seed'],
  summary: 'Publish the example addons and install them on a "Demo shop" site.',
  usage: '[--dir <folder>] [--url <url>] [--json]',
  options: { ...SERVER_OPTIONS, dir: { type: 'string' } },
  arity: { min: 0, max: 0 },
  details: `
For a newcomer after "npm start": publishes every addon folder (a sub-folder with manifest.json)
of --dir, default addons-examples/, dependencies first, skipping versions already published; then
creates the site "${DEMO_SITE_NAME}" if missing, installs every addon on it (config: the "config"
of the addon's fixtures.json, else {} with the schema defaults) and prints the site id and a
site key. Running it again changes nothing and prints the same site and key (kept in
$DATA_DIR/${DEMO_SITE_KEY_FILE}, mode 0600). It also writes $DATA_DIR/${DEMO_ENV_FILE} (mode 0600)
with SITE and SITE_ID for the examples in docs/ ("source .data/${DEMO_ENV_FILE}").

It needs an admin key: THEMEPRESS_API_KEY, or the key a development server ("npm start" without
ADMIN_API_KEY) wrote to $DATA_DIR/admin-key.

Options:
  --dir <folder>   the addon folders to seed (default: addons-examples/ of this package)
  --json           print the site, its key and what happened to each addon as JSON

${SERVER_HELP}

Examples:
  npm start                 # in one terminal
  npm run seed              # in another (same as: npx themepress seed)`,
  async run({ values, io, out }) {
    const serverUrl = resolveServerUrl(values.url as string | undefined, io.env);
    const key: ResolvedKey = await resolveApiKey(io.env, io.cwd, serverUrl, 'an admin key');
    const dir = path.resolve(
      io.cwd,
      (values.dir as string | undefined) ?? path.join(PACKAGE_ROOT, 'addons-examples'),
    );
    const result = await seed({
      dir,
      client: new ApiClient(serverUrl, key),
      dataDir: path.resolve(io.cwd, io.env.DATA_DIR || '.data'),
      out,
    });
    out.result(result);
    printSeed(result, out);
    return EXIT.ok;
  },
};
