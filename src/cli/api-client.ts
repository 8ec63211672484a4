import path from 'node:path';
import type { FieldProblem } from '../errors/index.js';
import { CliError, EXIT } from './cli-io.js';
import { localAdminKeyPath, readLocalAdminKey } from '../auth/local-admin-key.js';

/** Server the CLI talks to when neither `--url` nor THEMEPRESS_URL says otherwise. */
export const DEFAULT_SERVER_URL = 'http://localhost:4000';
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

/**
 * The base URL from `--url`, else THEMEPRESS_URL, else {@link DEFAULT_SERVER_URL}; a trailing
 * `/graphql` is accepted and dropped.
 */
export function resolveServerUrl(flag: string | undefined, env: CliEnv): string {
  const raw = flag ?? env.THEMEPRESS_URL ?? DEFAULT_SERVER_URL;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new CliError(`THEMEPRESS_URL / --url: "${raw}" is not a URL.`, EXIT.usage, [], 'USAGE');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new CliError(
      `THEMEPRESS_URL / --url: expected an http(s) URL, got "${raw}".`,
      EXIT.usage,
      [],
      'USAGE',
    );
  }
  return url.href.replace(/\/+$/, '').replace(/\/graphql$/, '');
}

type CliEnv = Record<string, string | undefined>;

function isLoopback(url: string): boolean {
  const host = new URL(url).hostname;
  return host === 'localhost' || host === '[::1]' || host === '::1' || /^127\./.test(host);
}

/**
 * The API key for a command: THEMEPRESS_API_KEY, else, for a server on this machine, the key the
 * development server wrote to `<DATA_DIR>/admin-key`. That file is never sent to another host: it
 * belongs to the local server only.
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
  const dataDir = path.resolve(cwd, env.DATA_DIR || '.data');
  if (isLoopback(serverUrl)) {
    let key: string | null;
    try {
      key = await readLocalAdminKey(dataDir);
    } catch (error) {
      throw new CliError((error as Error).message);
    }
    if (key) return { key, source: localAdminKeyPath(dataDir) };
  }
  throw new CliError(
    `No API key: set THEMEPRESS_API_KEY to ${purpose}.` +
      (isLoopback(serverUrl)
        ? ` (A development server started without ADMIN_API_KEY writes an admin key to ${localAdminKeyPath(dataDir)}; none is there.)`
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
    return new CliError(`Could not ${action}: ${message} [${code}]${more}`, EXIT.failure, fields, code);
  }
}
