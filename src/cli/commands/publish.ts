import { readAddonPackage } from '../../addons/addon-package.js';
import { ApiClient, resolveApiKey, resolveServerUrl } from '../api-client.js';
import { CliError, EXIT } from '../cli-io.js';
import type { Command } from '../command.js';
import { validateAddonFolder } from './validate.js';

/** The GraphQL publish operation (see docs/api.md, registerAddon). */
export const REGISTER_ADDON = `mutation RegisterAddon($input: RegisterAddonInput!) {
  registerAddon(input: $input) {
    addon { id name version }
    version { id version sourceSha256 createdAt }
  }
}`;

export interface RegisterAddonData {
  registerAddon: {
    addon: { id: string; name: string; version: string };
    version: { id: string; version: string; sourceSha256: string; createdAt: string };
  };
}

/** Options shared by the commands that talk to a server. */
export const SERVER_OPTIONS = { url: { type: 'string' } } as const;

export const SERVER_HELP = `Server and key:
  --url <url>          server base URL (default: THEMEPRESS_URL, else the server of the last
                       "themepress login", else http://localhost:$PORT, PORT defaulting to 4000)
  THEMEPRESS_API_KEY   the API key sent as "Authorization: Bearer"; else the key "themepress login"
                       stored for the server; else, when the server is on this machine, the admin
                       key a development server wrote to $DATA_DIR/admin-key (default: .data/ of the
                       current folder, then of the clone this CLI runs from). A .env file in the
                       current folder is read first, as "npm start" does.`;

export const publishCommand: Command = {
  words: ['addon', 'publish'],
  summary: 'Publish an addon folder as a new version (GraphQL registerAddon).',
  usage: '<dir> [--skip-checks] [--url <url>] [--json]',
  options: { ...SERVER_OPTIONS, 'skip-checks': { type: 'boolean' } },
  arity: { min: 1, max: 1 },
  details: `
Reads manifest.json, index.js and the optional addon.wasm, checks them locally first (the checks
of "addon validate --no-run": the server's manifest rules, size limits, and that index.js exports
what the manifest names), then sends them to the server. The server's refusals are printed with
the field they concern (manifest.version, manifest.dependencies.<name>, ...).

Publishing needs a developer key (the first publish of a name makes you its owner; later versions
only from you) or an admin key. Published versions are immutable: bump "version" to publish again.

Options:
  --skip-checks        send without the local checks (the server still validates the manifest)
  --json               print the published addon and version as JSON

${SERVER_HELP}

Example:
  THEMEPRESS_API_KEY=tp_... themepress addon publish ./my-addon`,
  async run({ positionals, values, io, out }) {
    const serverUrl = resolveServerUrl(values.url as string | undefined, io.env);
    // Before any slow work: a missing key is a usage error the author should see at once.
    const key = await resolveApiKey(io.env, io.cwd, serverUrl, 'a developer or admin key');
    if (values['skip-checks'] !== true) {
      const report = await validateAddonFolder(positionals[0], { run: false, out });
      if (!report.ok) {
        const title = `${report.addon.name ?? '(no name)'} ${report.addon.version ?? ''}`.trim();
        throw new CliError(
          `${title} has ${report.problems.length} problem(s); nothing was published. (themepress addon validate shows the full report.)`,
          EXIT.failure,
          report.problems,
          'BAD_USER_INPUT',
        );
      }
      for (const warning of report.warnings) out.warn(warning);
    }
    const pkg = await readAddonPackage(positionals[0]).catch((error: unknown) => {
      throw new CliError((error as Error).message);
    });
    const name = String(pkg.manifest.name);
    const version = String(pkg.manifest.version);
    out.progress(`Publishing ${name} ${version} to ${serverUrl}…`);
    const data = await new ApiClient(serverUrl, key).request<RegisterAddonData>(
      `publish ${name} ${version}`,
      REGISTER_ADDON,
      {
        input: {
          manifest: pkg.manifest,
          source: pkg.source,
          ...(pkg.wasmBase64 ? { wasmBase64: pkg.wasmBase64 } : {}),
        },
      },
    );
    const { addon, version: published } = data.registerAddon;
    out.result({ ok: true, addon, version: published });
    out.line(`✓ Published ${addon.name} ${published.version} (addon ${addon.id}, version ${published.id}).`);
    out.line('  Next: put it on a site (a site key, or an admin key with --site):');
    out.line(`    themepress addon install ${addon.name} --version ${published.version}`);
    return EXIT.ok;
  },
};
