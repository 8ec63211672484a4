import path from 'node:path';
import type { FieldProblem } from '../errors/index.js';
import { CliError, EXIT } from './cli-io.js';
import { localAdminKeyPath, readLocalAdminKey } from '../auth/local-admin-key.js';
import { credentialsFile, readCredentials } from './credentials.js';
import { PACKAGE_ROOT } from './package-root.js';

/** Port of the default server: PORT (as `npm start` reads it, .env included), else 4000. */
function defaultServerUrl(env: CliEnv): string {
  const port = Number(env.PORT);
  return `http://localhost:${Number.isInteger(port) && port > 0 && port < 65536 ? port : 4000}`;
}

const REQUEST_TIMEOUT_MS = 60_000;

/** One GraphQL error as the server formats it (see src/graphql/format-error.ts). */
interface GraphQLErrorBody {
  message: string;
  extensions?: { code?: string; fields?: FieldProblem[] } & Record<string, unknown>;
}

/** Where the key came from, so messages can say which key was refused. */
export interface ResolvedKey {
  key: string;
  source: string;
}

/** `https://x.example/graphql/` -> `https://x.example`: the form URLs are compared and stored in. */
export function normaliseServerUrl(raw: string, what = 'THEMEPRESS_URL / --url'): string {
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new CliError(`${what}: "${raw}" is not a URL.`, EXIT.usage, [], 'USAGE');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new CliError(`${what}: expected an http(s) URL, got "${raw}".`, EXIT.usage, [], 'USAGE');
  }
  return url.href.replace(/\/+$/, '').replace(/\/graphql$/, '');
}

/**
 * The base URL: `--url`, else THEMEPRESS_URL, else the server of the last `themepress login`, else
 * `http://localhost:$PORT` (4000); a trailing `/graphql` is accepted and dropped.
 */
export function resolveServerUrl(flag: string | undefined, env: CliEnv): string {
  const raw = flag ?? env.THEMEPRESS_URL ?? readCredentials(env).current ?? defaultServerUrl(env);
  return normaliseServerUrl(raw);
}

type CliEnv = Record<string, string | undefined>;

function isLoopback(url: string): boolean {
  const host = new URL(url).hostname;
  return host === 'localhost' || host === '[::1]' || host === '::1' || /^127\./.test(host);
}

/**
 * Where a development server on this machine may have written its admin key: `$DATA_DIR` when set
 * (relative to the current folder, as the server reads it), else `.data/` of the current folder
 * and of the clone this CLI belongs to, so `addon publish` finds it from an addon's own folder.
 */
export function localAdminKeyCandidates(env: CliEnv, cwd: string): string[] {
  if (env.DATA_DIR) return [path.resolve(cwd, env.DATA_DIR)];
  return [...new Set([path.resolve(cwd, '.data'), path.join(PACKAGE_ROOT, '.data')])];
}

/**
 * The API key for a command: THEMEPRESS_API_KEY; else the key `themepress login` stored for this
 * server; else, for a server on this machine, ADMIN_API_KEY (the environment or `.env`, as the
 * server and docker compose read it) or the key a development server wrote to
 * `<DATA_DIR>/admin-key` (see {@link localAdminKeyCandidates}). Those are never sent to another
 * host: they belong to the local server only.
 *
 * @param purpose what the key is for, named in the message when there is none.
 */
export async function resolveApiKey(
  env: CliEnv,
  cwd: string,
  serverUrl: string,
  purpose: string,
): Promise<ResolvedKey> {
  const fromEnv = env.THEMEPRESS_API_KEY?.trim();
  if (fromEnv) return { key: fromEnv, source: 'THEMEPRESS_API_KEY' };
  const stored = readCredentials(env).servers[serverUrl];
  if (stored) return { key: stored.key, source: `themepress login (${credentialsFile(env)})` };
  const candidates = localAdminKeyCandidates(env, cwd);
  if (isLoopback(serverUrl)) {
    // The bootstrap key of a server on this machine (docker compose reads it from .env too).
    const bootstrap = env.ADMIN_API_KEY?.trim();
    if (bootstrap) return { key: bootstrap, source: 'ADMIN_API_KEY' };
    for (const dataDir of candidates) {
      let key: string | null;
      try {
        key = await readLocalAdminKey(dataDir);
      } catch (error) {
        throw new CliError((error as Error).message);
      }
      if (key) return { key, source: localAdminKeyPath(dataDir) };
    }
  }
  throw new CliError(
    `No API key for ${serverUrl}: set THEMEPRESS_API_KEY to ${purpose}, or run "themepress login".` +
      (isLoopback(serverUrl)
        ? ` (A development server started without ADMIN_API_KEY writes an admin key to <DATA_DIR>/admin-key; none in ${candidates.map((dir) => localAdminKeyPath(dir)).join(' or ')}.)`
        : ''),
    EXIT.usage,
    [],
    'NO_API_KEY',
  );
}

/** A minimal GraphQL-over-HTTP client with the server's errors turned into readable {@link CliError}s. */
export class ApiClient {
  constructor(
    readonly baseUrl: string,
    private readonly apiKey: ResolvedKey | null,
  ) {}

  /** The same server with another key (the seed checks a stored site key this way). */
  withKey(key: ResolvedKey | null): ApiClient {
    return new ApiClient(this.baseUrl, key);
  }

  /**
   * Runs one operation and returns its `data`.
   * @param action what the operation does, for messages ("publish hello 1.0.0").
   * @throws CliError naming the server's code and each failing field; exit code 1.
   */
  async request<T>(action: string, query: string, variables: Record<string, unknown> = {}): Promise<T> {
    const endpoint = `${this.baseUrl}/graphql`;
    let response: Response;
    try {
      response = await fetch(endpoint, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json',
          ...(this.apiKey ? { authorization: `Bearer ${this.apiKey.key}` } : {}),
        },
        body: JSON.stringify({ query, variables }),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (error as Error).message;
      throw new CliError(
        `Cannot reach the ThemePress server at ${this.baseUrl} (${why}). Is it running? Start it with "npm start", or set THEMEPRESS_URL.`,
        EXIT.failure,
        [],
        'UNREACHABLE',
      );
    }
    const text = await response.text();
    let body: { data?: T | null; errors?: GraphQLErrorBody[] };
    try {
      body = JSON.parse(text) as typeof body;
    } catch {
      throw new CliError(
        `Could not ${action}: ${endpoint} answered HTTP ${response.status} with something other than GraphQL JSON. Is THEMEPRESS_URL the ThemePress server?`,
        EXIT.failure,
        [],
        `HTTP_${response.status}`,
      );
    }
    const first = body.errors?.[0];
    if (first) throw this.toCliError(action, first, body.errors!.length);
    if (body.data === undefined || body.data === null) {
      throw new CliError(`Could not ${action}: the server sent no data (HTTP ${response.status}).`);
    }
    return body.data;
  }

  private toCliError(action: string, error: GraphQLErrorBody, count: number): CliError {
    const code = error.extensions?.code ?? 'ERROR';
    const fields = Array.isArray(error.extensions?.fields) ? error.extensions!.fields : [];
    // With fields the message repeats them ("Invalid manifest: a: x; b: y"): keep its head only.
    let message = error.message;
    if (fields.length > 0 && message.startsWith('Invalid ') && message.includes(': ')) {
      message = message.slice(0, message.indexOf(': '));
    }
    if (code === 'UNAUTHENTICATED' && this.apiKey) {
      message += ` (the key from ${this.apiKey.source} was refused)`;
    }
    const more = count > 1 ? ` (and ${count - 1} more error${count > 2 ? 's' : ''})` : '';
    const { code: _code, fields: _fields, ...details } = error.extensions ?? {};
    return new CliError(
      `Could not ${action}: ${message} [${code}]${more}`,
      EXIT.failure,
      fields,
      code,
      details,
    );
  }
}
