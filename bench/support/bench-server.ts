import { readFileSync } from 'node:fs';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { Agent, request } from 'node:http';
import { generateApiKey } from '../../src/auth/api-key.js';
import { createTestDatabase } from '../../test/support/test-database.js';
import { freePort } from '../../test/support/free-port.js';

const mainJs = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/main.js');

export interface BenchServer {
  url: string;
  adminKey: string;
  databaseUrl: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

/**
 * Starts the real server as its own process (production mode, logs off) so the load generator in
 * this process does not share its event loop. A fresh database unless `databaseUrl` is given
 * (a second instance of the same deployment).
 */
export async function startBenchServer(
  options: {
    databaseUrl?: string;
    adminKey?: string;
    env?: Record<string, string>;
    nodeArgs?: string[];
    /** The server's entry point: another build's `dist/src/main.js` (default: this build's). */
    mainJs?: string;
    /** The Node that runs it (default: this one). */
    nodePath?: string;
  } = {},
): Promise<BenchServer> {
  const database = options.databaseUrl ? null : await createTestDatabase();
  const databaseUrl = options.databaseUrl ?? database!.url;
  const adminKey = options.adminKey ?? generateApiKey();
  const port = await freePort();
  // The flags of `npm start` and the Dockerfile: benchmarks measure the server as it is run.
  const flags = [
    '--no-node-snapshot',
    '--max-semi-space-size=32',
    '--v8-pool-size=1',
    ...(options.nodeArgs ?? []),
  ];
  const child = spawn(options.nodePath ?? process.execPath, [...flags, options.mainJs ?? mainJs], {
    env: {
      ...process.env,
      NODE_ENV: 'production',
      LOG_LEVEL: 'silent',
      HOST: '127.0.0.1',
      PORT: String(port),
      DATABASE_URL: databaseUrl,
      REDIS_URL: process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379',
      ADMIN_API_KEY: adminKey,
      // Load generators exceed any sensible per-key limit; the limiter's own cost is still paid.
      RATE_LIMIT_DEFAULT: '10000000',
      ...options.env,
    },
    stdio: ['ignore', process.env.BENCH_SERVER_STDOUT ? 'inherit' : 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    try {
      if ((await fetch(`${url}/readyz`)).ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error('server did not become ready in 60 s');
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    adminKey,
    databaseUrl,
    process: child,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await exited;
      }
      await database?.drop();
    },
  };
}

/** Sends one GraphQL operation and returns its data, throwing on errors. */
export async function gql<T = Record<string, unknown>>(
  url: string,
  key: string | null,
  query: string,
  variables?: Record<string, unknown>,
): Promise<T> {
  const response = await fetch(`${url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as { data?: T; errors?: unknown[] };
  if (body.errors || !body.data) throw new Error(`GraphQL error: ${JSON.stringify(body.errors)}`);
  return body.data;
}

/** A developer key, and a site with its key, on a bench server (admin key): what most benchmarks set up. */
export async function givenBenchSite(
  url: string,
  adminKey: string,
): Promise<{ devKey: string; siteId: string; siteKey: string }> {
  const keyOf = async (variables: Record<string, unknown>) =>
    (
      await gql<{ createApiKey: { key: string } }>(
        url,
        adminKey,
        'mutation($r: ApiKeyRole!, $s: ID, $d: String) { createApiKey(role: $r, siteId: $s, developerName: $d) { key } }',
        variables,
      )
    ).createApiKey.key;
  const devKey = await keyOf({ r: 'DEVELOPER', d: 'bench' });
  const siteId = (
    await gql<{ createSite: { id: string } }>(url, adminKey, 'mutation { createSite(name: "bench") { id } }')
  ).createSite.id;
  return { devKey, siteId, siteKey: await keyOf({ r: 'SITE', s: siteId }) };
}

export interface PlainResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/**
 * A sequential HTTP client on one kept-alive connection, built on node:http. Latency benchmarks
 * use it rather than `fetch`, whose own per-request work (streams, Headers objects) adds several
 * hundred microseconds on this machine and would be counted as the server's.
 */
export function createPlainClient(baseUrl: string): {
  get(path: string, headers?: Record<string, string>): Promise<PlainResponse>;
  close(): void;
} {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  return {
    get(path, headers = {}) {
      return new Promise((resolve, reject) => {
        const req = request(`${baseUrl}${path}`, { agent, headers }, (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (chunk: string) => (body += chunk));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
          res.on('error', reject);
        });
        req.on('error', reject);
        req.end();
      });
    },
    close: () => agent.destroy(),
  };
}

/** The resident set of process `pid` in MB (Linux /proc). */
export function rssMb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
}

/** Percentile of sorted numbers. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

/** Median of numbers in any order (the mean of the two middle ones for an even count). */
export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Machine description for result headers. */
export async function machine(): Promise<string> {
  const os = await import('node:os');
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  return `${os.cpus().length} × ${cpu}, ${Math.round(os.totalmem() / 2 ** 30)} GiB RAM, Node ${process.version}, ${os.platform()} ${os.release()}`;
}
