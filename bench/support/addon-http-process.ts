// The original design's baseline: one Node HTTP process per addon, called over HTTP for each
// execution. It runs the same function as the sandboxed addon (no isolation at all).
import { createServer } from 'node:http';

const echo = (data: unknown) => ({ ok: true, echo: data });

const server = createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const { data } = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { data: unknown };
    const body = JSON.stringify({ result: echo(data) });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.send?.({ port: (server.address() as { port: number }).port });
});
