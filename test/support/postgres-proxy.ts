import { createServer, Socket, type Server } from 'node:net';

/** A TCP proxy to PostgreSQL that a test can cut and restore, as if the database went away. */
export async function startPostgresProxy(
  port = 0,
): Promise<{ port: number; cut(): Promise<void>; restore(): Promise<void>; close(): Promise<void> }> {
  let server: Server;
  const sockets = new Set<Socket>();
  const listen = (p: number) =>
    new Promise<number>((resolve) => {
      server = createServer((client) => {
        const upstream = new Socket();
        upstream.connect(5432, '127.0.0.1');
        client.pipe(upstream).pipe(client);
        for (const s of [client, upstream]) {
          sockets.add(s);
          s.on('error', () => undefined);
          s.on('close', () => sockets.delete(s));
        }
      });
      server.listen(p, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
    });
  const actual = await listen(port);
  const proxy = {
    port: actual,
    async cut() {
      // close() resolves once every connection is gone, so the open ones are destroyed first.
      const closed = new Promise((r) => server.close(r));
      for (const s of sockets) s.destroy();
      await closed;
    },
    async restore() {
      await listen(actual);
    },
    async close() {
      await proxy.cut();
    },
  };
  return proxy;
}
