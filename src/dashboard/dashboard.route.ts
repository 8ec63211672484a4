import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ErrorCode } from '../errors/index.js';

/** The only files served under /dashboard/assets/; anything else is a 404, whatever the path says. */
const ASSET_TYPES: Readonly<Record<string, string>> = {
  'dashboard.css': 'text/css; charset=utf-8',
  'dashboard.js': 'text/javascript; charset=utf-8',
  'live-client.js': 'text/javascript; charset=utf-8',
  'charts.js': 'text/javascript; charset=utf-8',
};
/** The charting library, served from its installed package (never a CDN): asset name -> file in uplot/dist. */
const VENDOR_ASSETS: Readonly<Record<string, { file: string; type: string }>> = {
  'uplot.iife.min.js': { file: 'uPlot.iife.min.js', type: 'text/javascript; charset=utf-8' },
  'uplot.min.css': { file: 'uPlot.min.css', type: 'text/css; charset=utf-8' },
};

/** The folder of uPlot's built files in node_modules. */
function uplotDir(): string {
  return path.dirname(createRequire(import.meta.url).resolve('uplot'));
}
const PAGE = 'index.html';
// A Host header is client input: only a plain host[:port] may reach the CSP.
const HOST = /^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?$/;

interface StaticFile {
  body: Buffer;
  type: string;
  etag: string;
}

/**
 * Where the static files live: `src/dashboard/public` beside package.json. tsc does not copy them
 * to dist/, and walking up (rather than a fixed depth) works from src/ and from dist/src/ alike.
 */
export function defaultPublicDir(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) return path.join(process.cwd(), 'src', 'dashboard', 'public');
    dir = parent;
  }
  return path.join(dir, 'src', 'dashboard', 'public');
}

function load(dir: string, name: string, type: string): StaticFile {
  const file = path.join(dir, name);
  let body: Buffer;
  try {
    body = readFileSync(file);
  } catch (error) {
    // Fail at start rather than serve a broken page: the image must ship src/dashboard/public.
    throw new Error(`dashboard asset missing: ${file} (${(error as Error).message})`);
  }
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`;
  return { body, type, etag };
}

/**
 * The page's policy: its own scripts and styles only (no inline code), GraphQL over HTTP and
 * WebSocket to this host, widget previews framed from this origin, and never framed itself.
 */
export function dashboardCsp(host: string | undefined): string {
  const sockets = host && HOST.test(host) ? ` ws://${host} wss://${host}` : '';
  return [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "img-src 'self' data:",
    `connect-src 'self'${sockets}`,
    "frame-src 'self'",
    "frame-ancestors 'none'",
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'none'",
  ].join('; ');
}

/**
 * `GET /dashboard` (the page) and `GET /dashboard/assets/<name>` (its script and style), read once
 * at start and answered from memory with an ETag. `no-cache` makes browsers revalidate, so a
 * deploy is picked up at once while unchanged files cost a 304.
 */
export function registerDashboardRoutes(app: FastifyInstance, options: { publicDir?: string } = {}): void {
  const dir = options.publicDir ?? defaultPublicDir();
  const page = load(dir, PAGE, 'text/html; charset=utf-8');
  const assets = new Map(Object.entries(ASSET_TYPES).map(([name, type]) => [name, load(dir, name, type)]));
  const vendor = uplotDir();
  for (const [name, { file, type }] of Object.entries(VENDOR_ASSETS))
    assets.set(name, load(vendor, file, type));

  const send = (request: FastifyRequest, reply: FastifyReply, file: StaticFile) => {
    reply
      .header('content-type', file.type)
      .header('etag', file.etag)
      .header('cache-control', 'no-cache')
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('cross-origin-resource-policy', 'same-origin');
    if (request.headers['if-none-match'] === file.etag) return reply.status(304).send();
    return reply.send(file.body);
  };

  const sendPage = (request: FastifyRequest, reply: FastifyReply) => {
    reply
      .header('content-security-policy', dashboardCsp(request.headers.host))
      .header('x-frame-options', 'DENY')
      .header('cross-origin-opener-policy', 'same-origin');
    return send(request, reply, page);
  };
  app.get('/dashboard', sendPage);
  app.get('/dashboard/', sendPage);

  app.get<{ Params: { name: string } }>('/dashboard/assets/:name', (request, reply) => {
    // A lookup in a fixed map, never a path join: `..`, encoded slashes and the like find nothing.
    const file = assets.get(request.params.name);
    if (!file) {
      return reply
        .status(404)
        .send({ error: { code: ErrorCode.NotFound, message: `No dashboard asset ${request.params.name}` } });
    }
    return send(request, reply, file);
  });
}
