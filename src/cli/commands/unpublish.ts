import { ApiClient, resolveApiKey, resolveServerUrl } from '../api-client.js';
import { EXIT, UsageError } from '../cli-io.js';
import type { Command } from '../command.js';
import { SERVER_HELP, SERVER_OPTIONS } from './publish.js';

/** What the key's developer now takes of the registry (developer keys only). */
const REGISTRY_USAGE = `query RegistryUsage { registryUsage { storedBytes maxBytes } }`;

/** Deletes one published version and frees its bytes in the owner's registry quota. */
export const DELETE_ADDON_VERSION = `mutation DeleteAddonVersion($id: ID!, $version: String!) {
  deleteAddonVersion(id: $id, version: $version)
}`;

export const unpublishCommand: Command = {
  words: ['addon', 'unpublish'],
  summary: "Delete a version no site has installed, freeing its bytes in the developer's registry quota.",
  usage: '<name> --version <version> [--url <url>] [--json]',
  options: { ...SERVER_OPTIONS, version: { type: 'string' } },
  arity: { min: 1, max: 1 },
  details: `
Deletes version --version of <name> (GraphQL deleteAddonVersion) and gives the bytes it took back to
the owner's registry quota (REGISTRY_MAX_BYTES_PER_DEVELOPER), with a developer key of the owner or an
admin key. The server keeps the latest version, a version some site has installed and a version
that is the only one satisfying another addon's dependency: those are refused (CONFLICT). A deleted
version's number is never published again: new versions must be greater than the latest.

Options:
  --version <version>   the version to delete (required)
  --json                print { ok, addon, version } as JSON

${SERVER_HELP}

Examples:
  THEMEPRESS_API_KEY=$DEV_KEY themepress addon unpublish inventory --version 1.0.0`,
  async run({ positionals, values, io, out }) {
    const version = values.version as string | undefined;
    if (!version) {
      throw new UsageError(
        '--version: name the version to delete, e.g. --version 1.0.0.',
        'themepress addon unpublish --help',
      );
    }
    const serverUrl = resolveServerUrl(values.url as string | undefined, io.env);
    const key = await resolveApiKey(io.env, io.cwd, serverUrl, "the owner's developer key (or an admin key)");
    const client = new ApiClient(serverUrl, key);
    const name = positionals[0];
    out.progress(`Deleting ${name} ${version} on ${serverUrl}…`);
    await client.request<{ deleteAddonVersion: boolean }>(`delete ${name} ${version}`, DELETE_ADDON_VERSION, {
      id: name,
      version,
    });
    // An admin key has no registry of its own: the usage is shown to the owner's key only.
    const usage = await client
      .request<{ registryUsage: { storedBytes: number; maxBytes: number } }>(
        'read the registry usage',
        REGISTRY_USAGE,
      )
      .then((data) => data.registryUsage)
      .catch(() => null);
    out.result({ ok: true, addon: name, version, ...(usage ? { registry: usage } : {}) });
    out.line(`✓ ${name} ${version} is deleted; its bytes are free again in the registry quota.`);
    if (usage) out.line(`  registry: ${usage.storedBytes} of ${usage.maxBytes} bytes used`);
    return EXIT.ok;
  },
};
