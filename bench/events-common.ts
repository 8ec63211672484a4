// Shared parts of the events benchmarks: a minimal graphql-ws subscriber (the benchmark process
// hosts up to a thousand of them, so no client library overhead per message) and an open-loop load
// generator.
import { Agent, request } from 'node:http';
import WebSocket from 'ws';
import { performance } from 'node:perf_hooks';

export const EMIT = 'mutation($n: String!, $d: JSON!) { emitEvent(name: $n, data: $d) { id } }';

/** One graphql-ws connection with one subscription; calls `onData` with each `next` payload's data. */
export function rawSubscriber(
  httpUrl: string,
  key: string,
  query: string,
  variables: Record<string, unknown>,
  onData: (data: Record<string, unknown>) => void,
): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`${httpUrl.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
    socket.on('open', () =>
      socket.send(JSON.stringify({ type: 'connection_init', payload: { apiKey: key } })),
    );
    socket.on('message', (raw) => {
      const message = JSON.parse(String(raw)) as {
        type: string;
        payload?: { data?: Record<string, unknown> };
      };
      if (message.type === 'connection_ack') {
        socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query, variables } }));
        resolve(socket);
      } else if (message.type === 'next' && message.payload?.data) onData(message.payload.data);
      else if (message.type === 'ping') socket.send(JSON.stringify({ type: 'pong' }));
    });
    socket.on('error', reject);
  });
}

/** Keep-alive connections for open-loop load (node:http; fetch would add its own overhead). */
const agent = new Agent({ keepAlive: true, maxSockets: 64 });

/** POSTs one GraphQL operation; rejects on GraphQL errors. */
export function post(
  url: string,
  key: string,
  query: string,
  variables: Record<string, unknown>,
): Promise<unknown> {
  const body = JSON.stringify({ query, variables });
  return new Promise((resolve, reject) => {
    const req = request(
      `${url}/graphql`,
      {
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(body),
          authorization: `Bearer ${key}`,
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { errors?: unknown };
          if (parsed.errors) reject(new Error(JSON.stringify(parsed.errors)));
          else resolve(parsed);
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Open loop at a fixed rate: calls `send(i)` `rate` times a second for `seconds`, each call at its
 * own scheduled time (evenly spaced, 1 ms timer resolution), without waiting for answers, so a slow
 * server shows up as latency rather than as a lower rate. Resolves once every call has settled,
 * with each call's latency from its send and the number that failed.
 */
export async function openLoop(
  rate: number,
  seconds: number,
  send: (i: number) => Promise<unknown>,
): Promise<{ latencies: number[]; failures: number }> {
  const total = Math.round(rate * seconds);
  const latencies: number[] = [];
  const pending: Promise<void>[] = [];
  let failures = 0;
  const start = performance.now();
  for (let i = 0; i < total;) {
    for (; i < total && start + (i * 1000) / rate <= performance.now(); i += 1) {
      const sent = performance.now();
      pending.push(
        send(i).then(
          () => void latencies.push(performance.now() - sent),
          () => void (failures += 1),
        ),
      );
    }
    const wait = start + (i * 1000) / rate - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  }
  await Promise.all(pending);
  return { latencies, failures };
}

export function summary(latencies: number[]) {
  const sorted = [...latencies].sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN;
  return { count: sorted.length, p50: at(50), p90: at(90), p99: at(99), max: sorted.at(-1) ?? NaN };
}

export const ms = (n: number) => (Number.isFinite(n) ? n.toFixed(2) : '-');
