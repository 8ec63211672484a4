import { watch } from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { newNonce, widgetCsp, widgetDocument } from '../../widgets/widget-output.js';
import { AppError, httpStatusByErrorCode } from '../../errors/index.js';
import { ADDON_PACKAGE_FILES } from '../../addons/addon-package.js';
import { FIXTURES_FILE } from '../fixtures.js';
import { CliError, EXIT, UsageError, formatBytes, formatMs, table, type Reporter } from '../cli-io.js';
import type { Command } from '../command.js';
import { DevSession, type DevState } from '../dev-session.js';
import { DEV_PAGE_CSS, DEV_PAGE_HTML, DEV_PAGE_JS } from '../dev-page.js';
import type { EntryRun } from '../local-run.js';

const DEFAULT_PORT = 4100;
/** Saves come in bursts (an editor writes, renames, touches): one run for the burst. */
const DEBOUNCE_MS = 120;
const MAX_BODY_BYTES = 1024 * 1024;

const PAGE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-src 'self'",
  "frame-ancestors 'none'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join('; ');

function row(e: EntryRun): string[] {
  return [
    e.kind,
    e.name,
    e.status === 'ok' ? 'ok' : `${e.status} ${e.code ?? ''}`.trim(),
    formatMs(e.durationMs),
    formatMs(e.cpuTimeMs),
    formatBytes(e.memoryBytes),
    formatBytes(e.outputBytes),
  ];
}

/** The terminal's account of one run: every entry's time, CPU, memory and output size. */
export function printRun(state: DevState, out: Reporter): void {
  const time = new Date(state.at).toLocaleTimeString();
  out.line(
    `[${time}] run ${state.revision} (${state.reason}): ${state.addon.name ?? '?'} ${state.addon.version ?? ''}`,
  );
  for (const p of state.problems) out.line(`  ✗ ${p.field}: ${p.message}`);
  if (state.entries.length > 0) {
    for (const line of table([
      ['KIND', 'NAME', 'STATUS', 'TIME', 'CPU', 'MEMORY', 'OUTPUT'],
      ...state.entries.map(row),
    ])) {
      out.line(`  ${line}`);
    }
  }
  for (const e of state.entries) {
    if (e.status !== 'ok' && e.message) out.line(`  ${e.kind} ${e.name}: ${e.message}`);
    for (const log of e.logs.slice(0, 5)) out.line(`  ${e.kind} ${e.name} ${log.level}: ${log.message}`);
  }
  for (const w of state.warnings) out.line(`  warning: ${w}`);
}

function send(
  res: http.ServerResponse,
  status: number,
  type: string,
  body: string,
  headers: Record<string, string> = {},
) {
  res.writeHead(status, {
    'content-type': type,
    'cache-control': 'no-store',
    'x-content-type-options': 'nosniff',
    ...headers,
  });
  res.end(body);
}

const json = (res: http.ServerResponse, status: number, value: unknown) =>
  send(res, status, 'application/json; charset=utf-8', JSON.stringify(value));

async function readBody(req: http.IncomingMessage): Promise<string> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) throw new CliError('body too large');
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Listens on 127.0.0.1: the given port, or the first free one from 4100 when none was given. */
async function listen(server: http.Server, port: number | null): Promise<number> {
  const candidates = port === null ? Array.from({ length: 20 }, (_, i) => DEFAULT_PORT + i) : [port];
  for (const candidate of candidates) {
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(candidate, '127.0.0.1', () => {
          server.off('error', reject);
          resolve();
        });
      });
      return (server.address() as AddressInfo).port;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
    }
  }
  throw new CliError(
    port === null
      ? `Ports ${DEFAULT_PORT}-${DEFAULT_PORT + 19} are all taken; choose one with --port.`
      : `Port ${port} is taken; choose another with --port (0: any free port).`,
  );
}

export const devCommand: Command = {
  words: ['addon', 'dev'],
  summary: 'Run an addon locally and preview its widgets in a browser; every save re-runs it.',
  usage: '<dir> [--port <n>] [--fixtures <file>] [--network]',
  options: {
    port: { type: 'string' },
    fixtures: { type: 'string' },
    network: { type: 'boolean' },
  },
  arity: { min: 1, max: 1 },
  details: `
Runs every function and widget of the addon in <dir> (and each handler with a sample event) in the
real sandbox under the production limits, as "themepress addon validate" does, and prints each
call's time, CPU time, memory and output size. Then it serves a preview page on
http://127.0.0.1:4100 (the next free port when taken): each widget in a sandboxed frame, rendered
under the server's output rules (scoped CSS, neutralised tags, a nonce CSP), and a form per
function to call it with any input. Saving manifest.json, index.js, fixtures.json or addon.wasm
re-runs everything and the page re-renders by itself; problems (manifest, exports, load errors)
show on the page and in the terminal until fixed. Storage, events, addon calls and HTTP are the
in-memory fakes of the local run (storage survives saves); fixtures.json gives the samples (see
"themepress addon validate --help"). Stop with Ctrl-C.

Options:
  --port <n>         the preview port (default 4100, else the next free one; 0: any free port)
  --fixtures <file>  samples from this file instead of <dir>/fixtures.json
  --network          let ctx.http.fetch calls without a fixture reach the network

When the widget looks right: "themepress addon publish <dir>", then
"themepress addon install <name>" (see their --help).

Example:
  themepress addon dev ./my-addon`,
  async run({ positionals, values, out }) {
    let port: number | null = null;
    if (values.port !== undefined) {
      port = Number(values.port);
      if (!Number.isInteger(port) || port < 0 || port > 65535) {
        throw new UsageError(
          '--port: expected a port number from 0 to 65535.',
          'themepress addon dev --help',
        );
      }
    }
    const directory = path.resolve(positionals[0]);
    const session = new DevSession({
      directory,
      fixturesFile: values.fixtures as string | undefined,
      network: values.network === true,
    });
    const listeners = new Set<http.ServerResponse>();
    const notify = (state: DevState, call?: EntryRun) => {
      if (call) {
        const [, name, status, time, cpu, memory, output] = row(call);
        out.line(
          `[${new Date(state.at).toLocaleTimeString()}] call ${name}: ${status}, time ${time}, CPU ${cpu}, memory ${memory}, output ${output}`,
        );
        if (call.status !== 'ok' && call.message) out.line(`  ${call.message}`);
      } else printRun(state, out);
      for (const res of listeners) res.write(`data: ${JSON.stringify({ revision: state.revision })}\n\n`);
    };

    let bound = 0;
    const server = http.createServer((req, res) => {
      void (async () => {
        // Only this machine's own names: a page elsewhere that rebinds its DNS name to 127.0.0.1
        // must not read the preview or call functions.
        const host = req.headers.host ?? '';
        if (host !== `127.0.0.1:${bound}` && host !== `localhost:${bound}`) {
          return json(res, 421, {
            error: { code: 'FORBIDDEN', message: `Open http://127.0.0.1:${bound}/ instead.` },
          });
        }
        const url = new URL(req.url ?? '/', 'http://127.0.0.1');
        if (req.method === 'GET' && url.pathname === '/') {
          return send(res, 200, 'text/html; charset=utf-8', DEV_PAGE_HTML, {
            'content-security-policy': PAGE_CSP,
          });
        }
        if (req.method === 'GET' && url.pathname === '/preview.js') {
          return send(res, 200, 'text/javascript; charset=utf-8', DEV_PAGE_JS);
        }
        if (req.method === 'GET' && url.pathname === '/preview.css') {
          return send(res, 200, 'text/css; charset=utf-8', DEV_PAGE_CSS);
        }
        if (req.method === 'GET' && url.pathname === '/api/state') return json(res, 200, session.state);
        if (req.method === 'GET' && url.pathname === '/api/events') {
          res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
          res.write(`data: ${JSON.stringify({ revision: session.state.revision })}\n\n`);
          listeners.add(res);
          req.on('close', () => listeners.delete(res));
          return;
        }
        const widget = /^\/widgets\/([^/]+)$/.exec(url.pathname);
        if (req.method === 'GET' && widget) {
          const name = decodeURIComponent(widget[1]);
          const rendered = session.widget(name);
          if (!rendered)
            return json(res, 404, {
              error: { code: 'NOT_FOUND', message: `No render of widget "${name}" in the last run.` },
            });
          const nonce = newNonce();
          return send(res, 200, 'text/html; charset=utf-8', widgetDocument(rendered, name, nonce), {
            'content-security-policy': widgetCsp(nonce),
          });
        }
        const fn = /^\/api\/functions\/([^/]+)$/.exec(url.pathname);
        if (req.method === 'POST' && fn) {
          // JSON only: a form another site posts to this port is a simple request; this is not.
          if (!(req.headers['content-type'] ?? '').startsWith('application/json')) {
            return json(res, 415, {
              error: { code: 'BAD_USER_INPUT', message: 'Send JSON: { "input": ... }.' },
            });
          }
          let body: { input?: unknown };
          try {
            body = JSON.parse(await readBody(req)) as { input?: unknown };
          } catch {
            return json(res, 400, { error: { code: 'BAD_USER_INPUT', message: 'The body is not JSON.' } });
          }
          const name = decodeURIComponent(fn[1]);
          try {
            const run = await session.call(name, body.input ?? {});
            notify(session.state, run);
            return json(res, 200, run);
          } catch (error) {
            const code = error instanceof AppError ? error.code : 'INTERNAL_SERVER_ERROR';
            return json(res, error instanceof AppError ? httpStatusByErrorCode[error.code] : 500, {
              error: { code, message: (error as Error).message },
            });
          }
        }
        return json(res, 404, {
          error: { code: 'NOT_FOUND', message: `No route ${req.method} ${url.pathname}` },
        });
      })().catch((error: unknown) => {
        if (!res.headersSent)
          json(res, 500, { error: { code: 'INTERNAL_SERVER_ERROR', message: String(error) } });
      });
    });

    out.progress(`Starting the sandbox for ${directory}…`);
    await session.start();
    let watcher: ReturnType<typeof watch> | null = null;
    try {
      notify(await session.reload('start'));
      bound = await listen(server, port);
      out.line('');
      out.line(`Preview: http://127.0.0.1:${bound}/  (re-renders on every save; Ctrl-C stops)`);
      out.line('');
      const watched = new Set(
        [...Object.values(ADDON_PACKAGE_FILES), FIXTURES_FILE]
          .map((file) => path.join(directory, file))
          .concat(values.fixtures ? [path.resolve(values.fixtures as string)] : []),
      );
      let timer: NodeJS.Timeout | null = null;
      const changed = new Set<string>();
      watcher = watch(directory, { recursive: true }, (_event, file) => {
        // Only what a run reads: editors' temporary and backup files come and go on every save.
        const name = String(file ?? '');
        if (!watched.has(path.resolve(directory, name))) return;
        changed.add(name);
        if (timer) clearTimeout(timer);
        timer = setTimeout(() => {
          const files = [...changed].sort().join(', ');
          changed.clear();
          void session.reload(`${files} changed`).then(notify, (error: unknown) => out.warn(String(error)));
        }, DEBOUNCE_MS);
      });
      await new Promise<void>((resolve) => {
        process.once('SIGINT', resolve);
        process.once('SIGTERM', resolve);
      });
    } finally {
      watcher?.close();
      for (const res of listeners) res.end();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await session.close();
    }
    out.line('Stopped.');
    return EXIT.ok;
  },
};
