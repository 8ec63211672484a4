import { createInterface } from 'node:readline/promises';
import { ApiClient, normaliseServerUrl, resolveServerUrl } from '../api-client.js';
import { CliError, EXIT, UsageError } from '../cli-io.js';
import type { Command } from '../command.js';
import { credentialsFile, readCredentials, writeCredentials } from '../credentials.js';
import { SERVER_OPTIONS } from './publish.js';

const VIEWER = `query CliViewer { viewer { role siteId developerId } }`;

/** The key from --key, else standard input: a pipe's first line, or a prompt on a terminal. */
async function readKey(flag: string | undefined): Promise<string> {
  if (flag !== undefined) return flag.trim();
  if (process.stdin.isTTY) {
    const rl = createInterface({ input: process.stdin, output: process.stderr });
    try {
      return (await rl.question('API key (tp_…): ')).trim();
    } finally {
      rl.close();
    }
  }
  let text = '';
  for await (const chunk of process.stdin) {
    text += String(chunk);
    if (text.length > 1000) break;
  }
  return text.split(/\r?\n/, 1)[0].trim();
}

export const loginCommand: Command = {
  words: ['login'],
  summary:
    'Check an API key against a server and keep both for this user (used when no THEMEPRESS_* is set).',
  usage: '[--url <url>] [--key <key>] [--json]',
  options: { ...SERVER_OPTIONS, key: { type: 'string' } },
  arity: { min: 0, max: 0 },
  details: `
Asks the server who the key belongs to (Query.viewer) and, when it is accepted, stores the server
URL and the key in the per-user file $THEMEPRESS_CONFIG_DIR/credentials.json (default
~/.config/themepress/credentials.json, folder 0700, file 0600). From then on every command, from
any folder, talks to that server with that key unless --url, THEMEPRESS_URL or THEMEPRESS_API_KEY
say otherwise. One key is kept per server; the last login picks the default server.

The key is read from --key (visible in your shell history), else from standard input: the first
line of a pipe, or a prompt on a terminal.

Options:
  --url <url>   the server (default: THEMEPRESS_URL, else the current login, else http://localhost:4000)
  --key <key>   the API key (default: read from standard input)

Examples:
  themepress login --url https://addons.example.com      # then paste the key
  printf '%s\\n' "$DEV_KEY" | themepress login --url http://localhost:4000
  themepress logout`,
  async run({ values, io, out }) {
    const serverUrl = resolveServerUrl(values.url as string | undefined, io.env);
    const key = await readKey(values.key as string | undefined);
    if (key === '')
      throw new UsageError('No API key given (--key, or on standard input).', 'themepress login --help');
    out.progress(`Checking the key with ${serverUrl}…`);
    const data = await new ApiClient(serverUrl, { key, source: 'the key given to login' }).request<{
      viewer: { role: string; siteId: string | null; developerId: string | null };
    }>('check the API key', VIEWER);
    if (data.viewer.role === 'anonymous') {
      throw new CliError(`${serverUrl} treats this key as anonymous; nothing was stored.`);
    }
    const credentials = readCredentials(io.env);
    credentials.servers[serverUrl] = { key, savedAt: new Date().toISOString() };
    credentials.current = serverUrl;
    const file = writeCredentials(io.env, credentials);
    out.result({ ok: true, server: serverUrl, role: data.viewer.role, file });
    out.line(
      `✓ Logged in to ${serverUrl} as ${data.viewer.role}${data.viewer.siteId ? ` (site ${data.viewer.siteId})` : ''}.`,
    );
    out.line(`  Stored in ${file}; commands from any folder now use this server and key.`);
    return EXIT.ok;
  },
};

export const logoutCommand: Command = {
  words: ['logout'],
  summary: 'Forget the key stored by "themepress login" for a server (default: the current one).',
  usage: '[--url <url>] [--json]',
  options: { ...SERVER_OPTIONS },
  arity: { min: 0, max: 0 },
  details: `
Removes the stored key of --url (default: the server of the last login) from the per-user
credentials file; when it was the current server, no server is current any more.`,
  async run({ values, io, out }) {
    const credentials = readCredentials(io.env);
    const raw = (values.url as string | undefined) ?? credentials.current;
    if (!raw) {
      out.result({ ok: true, removed: null });
      out.line('Not logged in to any server.');
      return EXIT.ok;
    }
    const serverUrl = normaliseServerUrl(raw);
    const known = Object.hasOwn(credentials.servers, serverUrl);
    delete credentials.servers[serverUrl];
    if (credentials.current === serverUrl) credentials.current = null;
    if (known) writeCredentials(io.env, credentials);
    out.result({ ok: true, removed: known ? serverUrl : null });
    out.line(
      known
        ? `✓ Forgot the key for ${serverUrl} (${credentialsFile(io.env)}).`
        : `No key stored for ${serverUrl}.`,
    );
    return EXIT.ok;
  },
};
