// A key that subscribes without reading: one site opens as many WebSocket connections and
// subscriptions to its own events as the server lets it, stops reading them, and emits events;
// meanwhile another site's dashboard receives its own events and a third caller asks
// `{ __typename }`. Reported: what the server kept (API RSS), what the others waited, and what the
// flooding key was allowed. The floor row runs the same emits with no subscriber of the flooding
// site. `BENCH_LIVE_BASE=<other build>/dist/src/main.js` adds that build's server, same load.
// The bench server's rate limits are out of reach (see startBenchServer): this is what the other
// bounds leave a key allowed to subscribe and emit as fast as it likes.
import { loadavg } from 'node:os';
import WebSocket from 'ws';
import { gql, givenBenchSite, machine, percentile, rssMb, startBenchServer } from './support/bench-server.js';
import { EMIT, post } from './events-common.js';
import { runMain } from './support/run-main.js';

const SOCKETS = Number(process.env.BENCH_LIVE_SOCKETS ?? 32);
const SUBSCRIPTIONS = Number(process.env.BENCH_LIVE_SUBSCRIPTIONS ?? 32);
const EVENTS = Number(process.env.BENCH_LIVE_EVENTS ?? 400);
const PAD = 'x'.repeat(8 * 1024);
const PROBE_EVERY_MS = 100;

interface Row {
  label: string;
  rssBeforeMb: number;
  rssPeakMb: number;
  honestP50: number;
  honestP99: number;
  honestReceived: string;
  typenameP99: number;
  floodSeconds: number;
  notes: string;
}

/** A graphql-ws socket with `key`; resolves once acknowledged, or with the close code. */
async function openSocket(url: string, key: string): Promise<{ socket: WebSocket; closed: number | null }> {
  const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/graphql`, 'graphql-transport-ws');
  const state = { socket, closed: null as number | null };
  await new Promise((resolve, reject) => {
    socket.once('open', resolve);
    socket.once('error', reject);
  });
  await new Promise<void>((resolve) => {
    socket.once('message', () => resolve());
    socket.once('close', (code) => {
      state.closed = code;
      resolve();
    });
    socket.send(JSON.stringify({ type: 'connection_init', payload: { authorization: `Bearer ${key}` } }));
  });
  return state;
}

async function scenario(label: string, hostile: boolean, mainJs?: string): Promise<Row> {
  const server = await startBenchServer({ mainJs });
  const pid = server.process.pid!;
  const sockets: WebSocket[] = [];
  try {
    const flooder = await givenBenchSite(server.url, server.adminKey);
    const honest = await givenBenchSite(server.url, server.adminKey);
    // The honest dashboard: its own site's events, with the time each was sent.
    const dashboard = await openSocket(server.url, honest.siteKey);
    sockets.push(dashboard.socket);
    const latencies: number[] = [];
    dashboard.socket.on('message', (data) => {
      const message = JSON.parse(String(data)) as {
        type: string;
        payload?: { data?: { events?: { data: { t: number } } } };
      };
      const sent = message.payload?.data?.events?.data.t;
      if (message.type === 'next' && sent) latencies.push(Date.now() - sent);
    });
    dashboard.socket.send(
      JSON.stringify({
        id: 'd',
        type: 'subscribe',
        payload: { query: 'subscription { events(names: ["order.*"]) { data } }' },
      }),
    );
    let refusedSockets = 0;
    let refusedOperations = 0;
    let interrupted = 0;
    if (hostile) {
      for (let s = 0; s < SOCKETS; s += 1) {
        const { socket, closed } = await openSocket(server.url, flooder.siteKey);
        sockets.push(socket);
        if (closed !== null) {
          refusedSockets += 1;
          continue;
        }
        socket.on('message', (data) => {
          const text = String(data);
          if (text.includes('TOO_MANY_LIVE_OPERATIONS')) refusedOperations += 1;
          if (text.includes('LIVE_STREAM_INTERRUPTED')) interrupted += 1;
        });
        for (let i = 0; i < SUBSCRIPTIONS; i += 1) {
          const query = `subscription { s${s}x${i}: events(names: ["flood.*"]) { id name data } }`;
          socket.send(JSON.stringify({ id: String(i), type: 'subscribe', payload: { query } }));
        }
      }
      await new Promise((r) => setTimeout(r, 1000));
      // From here on the flooding key reads nothing.
      for (const socket of sockets.slice(1)) socket.pause();
    }
    await new Promise((r) => setTimeout(r, 500));
    const rssBeforeMb = rssMb(pid);
    let rssPeakMb = rssBeforeMb;
    const sampler = setInterval(() => (rssPeakMb = Math.max(rssPeakMb, rssMb(pid))), 100);
    // The others, throughout: the honest site emits, a third caller asks `{ __typename }`.
    let running = true;
    const typename: number[] = [];
    let honestSent = 0;
    const probes = (async () => {
      while (running) {
        const t = Date.now();
        await post(server.url, honest.siteKey, EMIT, { n: 'order.created', d: { t } });
        honestSent += 1;
        const started = performance.now();
        await gql(server.url, server.adminKey, '{ __typename }');
        typename.push(performance.now() - started);
        await new Promise((r) => setTimeout(r, PROBE_EVERY_MS));
      }
    })();
    const started = performance.now();
    for (let i = 0; i < EVENTS; i += 10) {
      await Promise.all(
        Array.from({ length: Math.min(10, EVENTS - i) }, (_, j) =>
          post(server.url, flooder.siteKey, EMIT, { n: 'flood.item', d: { i: i + j, pad: PAD } }),
        ),
      );
    }
    const floodSeconds = (performance.now() - started) / 1000;
    await new Promise((r) => setTimeout(r, 2000));
    running = false;
    await probes;
    await new Promise((r) => setTimeout(r, 500));
    clearInterval(sampler);
    // The flooding key reads again: subscriptions the server ended say so after what they held.
    for (const socket of sockets.slice(1)) socket.resume();
    await new Promise((r) => setTimeout(r, 3000));
    latencies.sort((a, b) => a - b);
    typename.sort((a, b) => a - b);
    const accepted = hostile ? SOCKETS - refusedSockets : 0;
    return {
      label,
      rssBeforeMb,
      rssPeakMb,
      honestP50: percentile(latencies, 50),
      honestP99: percentile(latencies, 99),
      honestReceived: `${latencies.length} of ${honestSent}`,
      typenameP99: percentile(typename, 99),
      floodSeconds,
      notes: hostile
        ? `flooding key: ${accepted} of ${SOCKETS} sockets accepted (${refusedSockets} closed 1013), ${accepted * SUBSCRIPTIONS - refusedOperations} subscriptions running (${refusedOperations} refused TOO_MANY_LIVE_OPERATIONS), ${interrupted} ended LIVE_STREAM_INTERRUPTED (seen once it read again)`
        : 'no subscriber of the flooding site',
    };
  } finally {
    for (const socket of sockets) socket.terminate();
    await server.stop();
  }
}

async function main(): Promise<void> {
  console.log(`\n## A key that subscribes without reading (${await machine()})\n`);
  console.log(
    `One server per row (default settings), its own database. The flooding site opens ${SOCKETS} WebSocket connections with ${SUBSCRIPTIONS} distinct subscriptions to its own events each (as many as the server accepts), stops reading them, and emits ${EVENTS} events of 8 KB (10 in flight). Throughout, another site emits one event every ${PROBE_EVERY_MS} ms to its own dashboard socket (latency: emit to receipt) and a third caller asks \`{ __typename }\`. RSS: the API process, before the emits and its peak.\n`,
  );
  const base = process.env.BENCH_LIVE_BASE;
  const load = loadavg()[0].toFixed(1);
  const rows: Row[] = [await scenario('floor: no subscriber of the flooding site', false)];
  if (base) rows.push(await scenario(`flood, base build (${base})`, true, base));
  rows.push(await scenario('flood, this build', true));
  console.log(
    '| row | API RSS before MB | API RSS peak MB | dashboard p50 ms | dashboard p99 ms | dashboard events | `{ __typename }` p99 ms | flood emitted in s | notes |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |');
  for (const r of rows)
    console.log(
      `| ${r.label} | ${r.rssBeforeMb.toFixed(0)} | ${r.rssPeakMb.toFixed(0)} | ${r.honestP50.toFixed(0)} | ${r.honestP99.toFixed(0)} | ${r.honestReceived} | ${r.typenameP99.toFixed(1)} | ${r.floodSeconds.toFixed(1)} | ${r.notes} |`,
    );
  console.log(`\n(load average over 1 minute: ${load} before, ${loadavg()[0].toFixed(1)} after)`);
}

runMain(main);
