import { AppError, ErrorCode } from '../../errors/index.js';
import { SandboxError } from '../sandbox-error.js';
import { PrivateAddressError } from '../network-guard.js';
import {
  badArgument,
  isPlainRecord,
  requirePermission,
  stringArg,
  type CapabilityEnv,
  type CapabilityHandler,
} from './capability-context.js';

export const HTTP_MAX_URL_CHARS = 2048;
export const HTTP_MAX_REQUEST_BODY_BYTES = 1024 * 1024;
export const HTTP_MAX_RESPONSE_BYTES = 1024 * 1024;
export const HTTP_MAX_TIMEOUT_MS = 10_000;
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
// Headers that would let an addon talk to a different virtual host or smuggle requests.
const FORBIDDEN_HEADERS = new Set([
  'host',
  'connection',
  'content-length',
  'transfer-encoding',
  'keep-alive',
  'upgrade',
  'proxy-authorization',
  'te',
  'trailer',
]);

/**
 * True when `url`'s host matches an entry of `allow`: `api.example.com` (any port),
 * `api.example.com:8443` (that port only) or `*.example.com` (subdomains, not the apex).
 */
export function isHostAllowed(url: URL, allow: readonly string[]): boolean {
  const hostname = url.hostname.toLowerCase();
  const host = url.host.toLowerCase();
  return allow.some((raw) => {
    const entry = raw.trim().toLowerCase();
    if (entry.startsWith('*.'))
      return hostname.endsWith(entry.slice(1)) && hostname.length > entry.length - 1;
    return entry.includes(':') && !entry.startsWith('[') ? entry === host : entry === hostname;
  });
}

async function readLimited(response: Response, maxBytes: number): Promise<string> {
  if (response.body === null) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => undefined);
      throw new AppError(
        ErrorCode.PayloadTooLarge,
        `ctx.http.fetch: the response is larger than ${maxBytes} bytes.`,
      );
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function requestHeaders(args: Record<string, unknown>): Record<string, string> {
  const headers: Record<string, string> = {};
  if (args.headers === undefined || args.headers === null) return headers;
  if (!isPlainRecord(args.headers))
    throw badArgument('ctx.http.fetch', 'headers must be an object of strings.');
  const entries = Object.entries(args.headers);
  if (entries.length > 50) throw badArgument('ctx.http.fetch', 'at most 50 headers are allowed.');
  for (const [name, value] of entries) {
    if (typeof value !== 'string' || !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name) || /[\r\n]/.test(value)) {
      throw badArgument('ctx.http.fetch', `header "${name.slice(0, 100)}" is invalid.`);
    }
    if (FORBIDDEN_HEADERS.has(name.toLowerCase())) {
      throw badArgument('ctx.http.fetch', `header "${name}" may not be set.`);
    }
    headers[name] = value;
  }
  return headers;
}

function parseTarget(env: CapabilityEnv, args: Record<string, unknown>): URL {
  const raw = stringArg(args, 'url', 'ctx.http.fetch', HTTP_MAX_URL_CHARS);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw badArgument('ctx.http.fetch', 'url must be an absolute http(s) URL.');
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw badArgument('ctx.http.fetch', 'only http and https URLs are allowed.');
  }
  if (url.username !== '' || url.password !== '') {
    throw badArgument('ctx.http.fetch', 'credentials in the URL are not allowed.');
  }
  if (!isHostAllowed(url, env.bundle.httpAllow)) {
    throw new SandboxError(
      ErrorCode.PermissionDenied,
      `ctx.http.fetch: host "${url.host}" is not in the httpAllow list of addon "${env.bundle.addonName}" (permission http.fetch).`,
      { permission: 'http.fetch', host: url.host },
    );
  }
  return url;
}

/**
 * `ctx.http.fetch(url, { method?, headers?, body? })`: permission `http.fetch` and the URL's host must be
 * in the bundle's `httpAllow`. Redirects are returned, not followed, so an allowed host cannot bounce
 * the request elsewhere. With the platform's guarded fetch (the default of the app), a host that is or
 * resolves to a private address is refused as well (PERMISSION_DENIED). Bounded by the call's
 * remaining wall time and `HTTP_MAX_RESPONSE_BYTES`.
 */
export const httpFetch: CapabilityHandler = async (env, args) => {
  requirePermission(env, 'http.fetch', 'ctx.http.fetch');
  const url = parseTarget(env, args);
  const method =
    args.method === undefined || args.method === null ? 'GET' : String(args.method).toUpperCase();
  if (!METHODS.has(method))
    throw badArgument('ctx.http.fetch', `method "${method.slice(0, 20)}" is not allowed.`);
  const headers = requestHeaders(args);
  let body: string | undefined;
  if (args.body !== undefined && args.body !== null) {
    if (typeof args.body !== 'string') throw badArgument('ctx.http.fetch', 'body must be a string.');
    if (Buffer.byteLength(args.body) > HTTP_MAX_REQUEST_BODY_BYTES) {
      throw badArgument('ctx.http.fetch', `body must be at most ${HTTP_MAX_REQUEST_BODY_BYTES} bytes.`);
    }
    if (method === 'GET' || method === 'HEAD')
      throw badArgument('ctx.http.fetch', `${method} requests have no body.`);
    body = args.body;
  }
  const budget = Math.min(HTTP_MAX_TIMEOUT_MS, env.deadline - Date.now());
  if (budget <= 0)
    throw new SandboxError(ErrorCode.ExecutionTimeout, 'ctx.http.fetch: no time left in this call.');
  const signal = AbortSignal.timeout(budget);
  let response: Response;
  try {
    response = await env.fetchImpl(url, { method, headers, body, redirect: 'manual', signal });
  } catch (err) {
    if (signal.aborted)
      throw new SandboxError(ErrorCode.ExecutionTimeout, `ctx.http.fetch: ${url.host} timed out.`);
    const cause = (err as { cause?: unknown }).cause;
    if (cause instanceof PrivateAddressError) {
      throw new SandboxError(
        ErrorCode.PermissionDenied,
        `ctx.http.fetch: ${cause.message}, which addons may not reach (permission http.fetch covers public hosts only).`,
        { permission: 'http.fetch', host: url.host },
      );
    }
    throw new AppError(
      ErrorCode.ServiceUnavailable,
      `ctx.http.fetch: request to ${url.host} failed (${(err as Error).message.slice(0, 200)}).`,
    );
  }
  let text: string;
  try {
    text = await readLimited(response, HTTP_MAX_RESPONSE_BYTES);
  } catch (err) {
    if (signal.aborted)
      throw new SandboxError(ErrorCode.ExecutionTimeout, `ctx.http.fetch: ${url.host} timed out.`);
    throw err;
  }
  const responseHeaders: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    responseHeaders[name] = value;
  });
  return {
    status: response.status,
    statusText: response.statusText,
    url: url.toString(),
    headers: responseHeaders,
    body: text,
  };
};
