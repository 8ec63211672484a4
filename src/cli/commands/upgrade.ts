import { ApiClient, resolveApiKey, resolveServerUrl } from '../api-client.js';
import { CliError, EXIT, UsageError } from '../cli-io.js';
import type { Command } from '../command.js';
import { SERVER_HELP, SERVER_OPTIONS } from './publish.js';

/** Moves an installation to another version; `acceptPermissions` is the consent to new ones. */
export const UPGRADE_ADDON = `mutation UpgradeAddon($id: ID!, $version: String!, $acceptPermissions: [String!], $siteId: ID) {
  changeAddonVersion(id: $id, version: $version, acceptPermissions: $acceptPermissions, siteId: $siteId) {
    id grantedPermissions site { id name } addon { name } version { version permissions }
  }
}`;

const LATEST_VERSION = `query AddonLatestVersion($name: String!) { addon(name: $name) { name version } }`;

interface UpgradeAddonData {
  changeAddonVersion: {
    id: string;
    grantedPermissions: string[];
    site: { id: string; name: string };
    addon: { name: string };
    version: { version: string; permissions: string[] };
  };
}

const USAGE_HELP = 'themepress addon upgrade --help';

/** `--accept-permissions a,b` (or repeated spaces): the list, without empty entries. */
function permissionList(raw: string): string[] {
  return raw
    .split(/[\s,]+/)
    .map((p) => p.trim())
    .filter((p) => p !== '');
}

export const upgradeCommand: Command = {
  words: ['addon', 'upgrade'],
  summary: 'Move an installation to another version, accepting any new permissions it asks for.',
  usage:
    '<name> [--version <version>] [--accept-permissions <p1,p2>] [--site <siteId>] [--url <url>] [--json]',
  options: {
    ...SERVER_OPTIONS,
    version: { type: 'string' },
    'accept-permissions': { type: 'string' },
    site: { type: 'string' },
  },
  arity: { min: 1, max: 1 },
  details: `
Moves the installation of <name> on the key's site to --version (default: the latest), an upgrade
or a rollback (GraphQL changeAddonVersion). A version that asks for permissions the installation
has not granted is refused until they are accepted: the command lists them and, at a terminal,
asks; otherwise (scripts, CI, --json) pass exactly that list with --accept-permissions.

Options:
  --version <version>             the version to move to (default: the latest)
  --accept-permissions <p1,p2>    the new permissions to grant, comma-separated: exactly those the
                                  version asks for beyond what the installation has
  --site <siteId>                 the site (admin keys only)
  --json                          print the installation as JSON

${SERVER_HELP}

Examples:
  THEMEPRESS_API_KEY=$SITE_KEY themepress addon upgrade payment-gateway
  themepress addon upgrade inventory --version 2.0.0 --accept-permissions http.fetch,events.emit`,
  async run({ positionals, values, io, out }) {
    const serverUrl = resolveServerUrl(values.url as string | undefined, io.env);
    const flag = values['accept-permissions'] as string | undefined;
    let accepted = flag === undefined ? null : permissionList(flag);
    if (flag !== undefined && accepted!.length === 0) {
      throw new UsageError(
        '--accept-permissions: expected permission names, e.g. http.fetch,storage.write.',
        USAGE_HELP,
      );
    }
    const key = await resolveApiKey(io.env, io.cwd, serverUrl, 'a site key (or an admin key with --site)');
    const client = new ApiClient(serverUrl, key);
    const name = positionals[0];
    let version = values.version as string | undefined;
    if (!version) {
      const { addon } = await client.request<{ addon: { version: string } | null }>(
        `find ${name}`,
        LATEST_VERSION,
        { name },
      );
      if (!addon) throw new CliError(`No addon named "${name}" is published.`, EXIT.failure, [], 'NOT_FOUND');
      version = addon.version;
    }
    const upgrade = (acceptPermissions: string[] | null) =>
      client.request<UpgradeAddonData>(`move ${name} to ${version}`, UPGRADE_ADDON, {
        id: name,
        version,
        acceptPermissions,
        siteId: (values.site as string | undefined) ?? null,
      });
    out.progress(`Moving ${name} to ${version} on ${serverUrl}…`);
    let data: UpgradeAddonData;
    try {
      data = await upgrade(accepted);
    } catch (error) {
      if (!(error instanceof CliError) || error.code !== 'PERMISSIONS_NOT_ACCEPTED') throw error;
      const wanted = Array.isArray(error.details.newPermissions)
        ? error.details.newPermissions.filter((p): p is string => typeof p === 'string')
        : [];
      out.progress(`${name} ${version} asks for permissions this installation has not granted:`);
      for (const permission of wanted) out.progress(`  + ${permission}`);
      const canAsk = accepted === null && io.prompt !== undefined && !out.json && wanted.length > 0;
      const answer = canAsk ? await io.prompt!(`Grant ${wanted.join(', ')} to ${name}? [y/N] `) : '';
      if (!/^\s*y(es)?\s*$/i.test(answer)) {
        const list = wanted.join(', ');
        throw new CliError(
          canAsk
            ? `Not moved: the new permissions of ${name} ${version} (${list}) were not accepted.`
            : `Not moved: ${name} ${version} asks for new permissions (${list}). Accept them with --accept-permissions ${wanted.join(',')}`,
          EXIT.failure,
          [],
          'PERMISSIONS_NOT_ACCEPTED',
          { newPermissions: wanted },
        );
      }
      accepted = wanted;
      data = await upgrade(accepted);
    }
    const moved = data.changeAddonVersion;
    out.result({ ok: true, installation: moved, acceptedPermissions: accepted ?? [] });
    out.line(
      `✓ ${moved.addon.name} is now at ${moved.version.version} on site "${moved.site.name}" (${moved.site.id}).`,
    );
    out.line(`  granted permissions: ${moved.grantedPermissions.join(', ') || 'none'}`);
    return EXIT.ok;
  },
};
