import { ApiClient, resolveApiKey, resolveServerUrl } from '../api-client.js';
import { EXIT, UsageError } from '../cli-io.js';
import { jsonArgument, type Command } from '../command.js';
import { SERVER_HELP, SERVER_OPTIONS } from './publish.js';

/** The GraphQL install operation; `siteId` only with an admin key. */
export const INSTALL_ADDON = `mutation InstallAddon($id: ID!, $config: JSON!, $version: String, $siteId: ID) {
  installAddon(id: $id, config: $config, version: $version, siteId: $siteId) {
    success
    message
    installation { id enabled config site { id name } addon { name } version { version widgets { name } } }
  }
}`;

export interface InstallAddonData {
  installAddon: {
    success: boolean;
    message: string;
    installation: {
      id: string;
      enabled: boolean;
      config: unknown;
      site: { id: string; name: string };
      addon: { name: string };
      version: { version: string; widgets: { name: string }[] };
    };
  };
}

export const installCommand: Command = {
  words: ['addon', 'install'],
  summary: 'Install a published addon on a site (GraphQL installAddon).',
  usage: '<name> [--version <version>] [--config <json|@file>] [--site <siteId>] [--url <url>] [--json]',
  options: {
    ...SERVER_OPTIONS,
    version: { type: 'string' },
    config: { type: 'string' },
    site: { type: 'string' },
  },
  arity: { min: 1, max: 1 },
  details: `
Installs the addon <name> (or id) on the key's site, pinned to --version (default: the latest).
The config is validated by the server against the addon's configSchema, with its defaults applied;
its problems are printed one per field (config.<path>). Dependencies must be installed first.

With a site key the addon goes on that key's own site; an admin key names the site with --site.

Options:
  --version <version>  a published version (default: the latest)
  --config <json>      the installation config as JSON, or @file to read it from a file (default {})
  --site <siteId>      the site to install on (admin keys only)
  --json               print the installation as JSON

${SERVER_HELP}

Examples:
  THEMEPRESS_API_KEY=$SITE_KEY themepress addon install payment-gateway --config '{"currency":"EUR"}'
  themepress addon install inventory --version 1.0.0 --site <site id> --config @inventory.json`,
  async run({ positionals, values, io, out }) {
    const serverUrl = resolveServerUrl(values.url as string | undefined, io.env);
    const config = (await jsonArgument(values.config as string | undefined, '--config', io.cwd)) ?? {};
    if (typeof config !== 'object' || config === null || Array.isArray(config)) {
      throw new UsageError('--config: expected a JSON object.', 'themepress addon install --help');
    }
    const key = await resolveApiKey(io.env, io.cwd, serverUrl, 'a site key (or an admin key with --site)');
    const name = positionals[0];
    out.progress(`Installing ${name}${values.version ? ` ${values.version}` : ''} on ${serverUrl}…`);
    const data = await new ApiClient(serverUrl, key).request<InstallAddonData>(
      `install ${name}`,
      INSTALL_ADDON,
      {
        id: name,
        config,
        version: (values.version as string | undefined) ?? null,
        siteId: (values.site as string | undefined) ?? null,
      },
    );
    const { installation, message } = data.installAddon;
    const widgets = installation.version.widgets.map(
      (w) =>
        `${serverUrl}/api/widgets/${encodeURIComponent(installation.addon.name)}/${encodeURIComponent(w.name)}?siteId=${installation.site.id}`,
    );
    out.result({ ok: true, message, installation, widgets });
    out.line(
      `✓ Installed ${installation.addon.name} ${installation.version.version} on site "${installation.site.name}" (${installation.site.id}).`,
    );
    out.line(`  installation ${installation.id}, config ${JSON.stringify(installation.config)}`);
    if (widgets.length > 0) {
      out.line('  Its widgets on the site (open in a browser; GraphQL: renderWidget):');
      for (const url of widgets) out.line(`    ${url}`);
    }
    return EXIT.ok;
  },
};
