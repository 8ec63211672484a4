import { mkdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PGlite } from '@electric-sql/pglite';
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

export interface EmbeddedPostgresOptions {
  /** Folder that keeps the data between runs (created if missing), e.g. `.data/pglite`. */
  dataDir: string;
  /** Port on 127.0.0.1; defaults to 0, a free port chosen by the OS. */
  port?: number;
  /** How long a second client waits for the connection slot before it is reset; default 10 s. */
  queueTimeoutMs?: number;
  /** Receives PostgreSQL's own output and start/stop notices. */
  log?: (message: string) => void;
}

export interface EmbeddedPostgres {
  /** `postgresql://postgres@127.0.0.1:<port>/postgres`, for `pg`, `@prisma/adapter-pg` and migrations. */
  readonly connectionString: string;
  /** Closes the client connection, flushes the data to `dataDir` and stops. Safe to call twice. */
  stop(): Promise<void>;
}

/**
 * Starts PostgreSQL compiled to WebAssembly (PGlite) with its data in `dataDir`, served over the
 * PostgreSQL wire protocol on 127.0.0.1, so that nothing needs to be installed for `npm start`.
 *
 * ONE CONNECTION AT A TIME. PGlite is a single session underneath, and pglite-socket's server feeds
 * it each protocol message as it arrives, so two connected clients would break each other's
 * statements (a simple query from one drops the other's unnamed prepared statement). The server
 * therefore serves one client connection at a time (`maxConnections: 1`). A client that connects
 * while the slot is taken waits, queued, until the current one disconnects, and is reset
 * (`ECONNRESET`) after `queueTimeoutMs`. In practice:
 * - use one `pg.Pool` with `max: 1` for everything: Prisma (`new PrismaPg(pool)`), migrations
 *   (`applyPendingMigrations(pool)`) and status checks (`migrationStatus(pool)`);
 * - opening and closing clients one after another is fine (the next waits for the slot), but a
 *   second client while the pool holds its connection waits up to the pool's idle timeout.
 *
 * The first start in an empty `dataDir` runs initdb (about 6 s here); later starts take about 1.5 s.
 * Two processes must not share a `dataDir`.
 */
export async function startEmbeddedPostgres(opts: EmbeddedPostgresOptions): Promise<EmbeddedPostgres> {
  const dataDir = path.resolve(opts.dataDir);
  const queueTimeoutMs = opts.queueTimeoutMs ?? 10_000;
  await mkdir(dataDir, { recursive: true });
  const forward = (text: string): boolean => {
    opts.log?.(text.trimEnd());
    // Handled: PGlite would otherwise print PostgreSQL's notices to the console.
    return true;
  };
  // pg_trgm: the catalogue search index needs it (migration add_addon_search_index).
  const db = await PGlite.create({ dataDir, onStdout: forward, onStderr: forward, extensions: { pg_trgm } });
  const backend = new PGLiteSocketServer({ db, host: '127.0.0.1', port: 0, maxConnections: 1 });
  const front = net.createServer();
  const waiting: net.Socket[] = [];
  const open = new Set<net.Socket>();
  let serving = false;
  let stopped = false;

  // pglite-socket refuses a connection while it still holds the previous one, and it releases that
  // slot only after its socket has fully closed, shortly after the client saw the disconnect: half of
  // all "pool.end(), then a new pool" sequences failed. This front queues clients instead and hands
  // the next one over once the backend reports the slot free.
  const backendIdle = async (): Promise<void> => {
    while (backend.getStats().activeConnections > 0 && !stopped) await sleep(2);
  };
  const serveNext = async (): Promise<void> => {
    if (serving || stopped) return;
    const client = waiting.shift();
    if (!client) return;
    serving = true;
    try {
      await backendIdle();
      if (client.destroyed || stopped) return;
      const [host, port] = splitHostPort(backend.getServerConn());
      const upstream = net.connect({ host, port, noDelay: true });
      open.add(upstream);
      await new Promise<void>((resolve) => {
        const done = () => {
          client.destroy();
          upstream.destroy();
          open.delete(upstream);
          resolve();
        };
        for (const socket of [client, upstream]) {
          socket.once('close', done);
          socket.on('error', done);
        }
        client.pipe(upstream);
        upstream.pipe(client);
      });
    } finally {
      serving = false;
      void serveNext();
    }
  };
  front.on('connection', (client) => {
    client.setNoDelay(true);
    client.on('error', () => client.destroy());
    open.add(client);
    waiting.push(client);
    const timer = setTimeout(() => {
      if (waiting.includes(client)) client.destroy();
    }, queueTimeoutMs).unref();
    client.once('close', () => {
      clearTimeout(timer);
      open.delete(client);
      const index = waiting.indexOf(client);
      if (index >= 0) waiting.splice(index, 1);
    });
    void serveNext();
  });

  try {
    await backend.start();
    await new Promise<void>((resolve, reject) => {
      front.once('error', reject);
      front.listen(opts.port ?? 0, '127.0.0.1', () => resolve());
    });
  } catch (error) {
    front.close();
    await backend.stop();
    await db.close();
    throw error;
  }
  const { port } = front.address() as net.AddressInfo;
  const connectionString = `postgresql://postgres@127.0.0.1:${port}/postgres`;
  opts.log?.(`embedded PostgreSQL (PGlite) listening on 127.0.0.1:${port}, data in ${dataDir}`);

  let stopping: Promise<void> | undefined;
  return {
    connectionString,
    stop() {
      stopping ??= (async () => {
        stopped = true;
        const frontClosed = new Promise<void>((resolve) => front.close(() => resolve()));
        for (const socket of open) socket.destroy();
        await frontClosed;
        // The backend rolls back an open transaction of the last client; no query may reach the
        // database once close() has started.
        await backend.stop();
        // close() shuts PostgreSQL down cleanly (checkpoint), so the next start finds every commit.
        await db.close();
        opts.log?.('embedded PostgreSQL stopped');
      })();
      return stopping;
    },
  };
}

function splitHostPort(hostPort: string): [string, number] {
  const index = hostPort.lastIndexOf(':');
  return [hostPort.slice(0, index), Number(hostPort.slice(index + 1))];
}
