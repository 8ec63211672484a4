// Issue 4 benchmark: cached widget renders through GraphQL and REST against `{ __typename }` on one
// server (same run, same connections), and the p50 of uncached renders of a checkout form.
// Run: node --no-node-snapshot dist/bench/widget-render.js (BENCH_SECONDS, default 5).
import autocannon from 'autocannon';
import { performance } from 'node:perf_hooks';
import {
  createPlainClient,
  machine,
  percentile,
  startBenchServer,
  givenBenchSite,
} from './support/bench-server.js';
import { cpuCell, interleaved } from './support/interleaved.js';
import {
  bodies,
  CHECKOUT_CONFIG,
  CHECKOUT_CONTEXT,
  CHECKOUT_MANIFEST,
  CHECKOUT_SOURCE,
  publishAndInstall,
} from './support/fixtures.js';

const DURATION = Number(process.env.BENCH_SECONDS ?? 8);
/** Alternating rounds, so every request type sees the same machine load (see support/interleaved). */
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 8);
const UNCACHED_RENDERS = Number(process.env.BENCH_UNCACHED ?? 200);

interface Row {
  name: string;
  rps: number;
  p50: number;
  p99: number;
  errors: number;
}

async function cannon(name: string, opts: autocannon.Options): Promise<Row> {
  const result = await autocannon({ connections: 10, duration: DURATION, ...opts });
  return {
    name,
    rps: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.non2xx,
  };
}

async function main(): Promise<void> {
  // Rate limiting is another feature; the benchmark measures rendering.
  const server = await startBenchServer({ env: { RATE_LIMIT_DEFAULT: '0' } });
  try {
    const { url, adminKey } = server;
    const { devKey, siteKey } = await givenBenchSite(url, adminKey);
    await publishAndInstall(url, { devKey, siteKey }, CHECKOUT_MANIFEST, CHECKOUT_SOURCE);

    const headers = { 'content-type': 'application/json', authorization: `Bearer ${siteKey}` };
    const config = CHECKOUT_CONFIG;
    const context = CHECKOUT_CONTEXT;
    const typename = bodies.typename;
    const renderQuery = bodies.renderWidget;
    const fieldQuery = bodies.widgetRender;
    const restPath = `/api/widgets/bench-checkout/checkout-form?config=${encodeURIComponent(JSON.stringify(config))}&context=${encodeURIComponent(JSON.stringify(context))}`;

    // Warm up: the first render fills the cache; every request below is a cache hit.
    for (const body of [renderQuery, fieldQuery]) {
      const r = await fetch(`${url}/graphql`, { method: 'POST', headers, body });
      if (!r.ok) throw new Error(`warm-up failed: ${await r.text()}`);
    }
    if (!(await fetch(`${url}${restPath}`, { headers })).ok) throw new Error('REST warm-up failed');
    await cannon('warm-up', { url: `${url}/graphql`, method: 'POST', headers, body: typename, duration: 2 });

    const rows = await interleaved(
      [
        {
          name: '`{ __typename }` (GraphQL)',
          request: { url: `${url}/graphql`, method: 'POST', headers, body: typename },
        },
        {
          name: 'cached render, `Query.renderWidget` (GraphQL)',
          request: { url: `${url}/graphql`, method: 'POST', headers, body: renderQuery },
        },
        {
          name: 'cached render, `widget { render }` (GraphQL)',
          request: { url: `${url}/graphql`, method: 'POST', headers, body: fieldQuery },
        },
        {
          name: 'cached render, `GET /api/widgets/...` (REST)',
          request: { url: `${url}${restPath}`, method: 'GET', headers },
        },
      ],
      {
        rounds: ROUNDS,
        seconds: Math.max(1, Math.round(DURATION / ROUNDS)),
        serverPid: server.process.pid,
      },
    );

    // Uncached: distinct configs, one at a time, end to end over HTTP on one kept-alive connection.
    // Each uncached render is followed by a cached one (the same request again): the server does
    // almost nothing for it, so its latency is this machine's floor for an HTTP round trip.
    const client = createPlainClient(url);
    const latencies: number[] = [];
    const floor: number[] = [];
    /** The server's own time for each uncached render (its Server-Timing header). */
    const serverTimes: number[] = [];
    for (let i = 0; i < UNCACHED_RENDERS; i += 1) {
      const path = `/api/widgets/bench-checkout/checkout-form?config=${encodeURIComponent(JSON.stringify({ ...config, amount: i + 1 }))}&context=${encodeURIComponent(JSON.stringify({ sessionId: `s${i}` }))}`;
      for (const bucket of [latencies, floor]) {
        const started = performance.now();
        const response = await client.get(path, headers);
        const body = JSON.parse(response.body) as { cached?: boolean };
        bucket.push(performance.now() - started);
        if (response.status !== 200 || body.cached !== (bucket === floor)) {
          throw new Error(`render ${i} failed or was (un)cached unexpectedly: ${response.body}`);
        }
        if (bucket === latencies) {
          serverTimes.push(
            Number(/dur=([\d.]+)/.exec(String(response.headers['server-timing']))?.[1] ?? NaN),
          );
        }
      }
    }
    client.close();
    // The same uncached render through fetch, for comparison with earlier runs.
    const viaFetch: number[] = [];
    for (let i = 0; i < UNCACHED_RENDERS / 2; i += 1) {
      const path = `/api/widgets/bench-checkout/checkout-form?config=${encodeURIComponent(JSON.stringify({ ...config, amount: 100_000 + i }))}&context=${encodeURIComponent(JSON.stringify({ sessionId: `f${i}` }))}`;
      const started = performance.now();
      const response = await fetch(`${url}${path}`, { headers });
      const body = (await response.json()) as { cached?: boolean };
      viaFetch.push(performance.now() - started);
      if (!response.ok || body.cached !== false) throw new Error(`fetch render ${i} failed or was cached`);
    }
    floor.sort((a, b) => a - b);
    viaFetch.sort((a, b) => a - b);
    latencies.sort((a, b) => a - b);
    serverTimes.sort((a, b) => a - b);
    const metrics = await (await fetch(`${url}/metrics`)).text();
    const serverSum = Number(
      /^widget_render_time_seconds_sum\{[^}]*\} ([\d.e-]+)/m.exec(metrics)?.[1] ?? NaN,
    );
    const serverCount = Number(/^widget_render_time_seconds_count\{[^}]*\} (\d+)/m.exec(metrics)?.[1] ?? NaN);
    const sandboxSum = Number(
      /^addon_response_time_seconds_sum\{[^}]*function_name="widget:checkout-form"\} ([\d.e-]+)/m.exec(
        metrics,
      )?.[1] ?? NaN,
    );
    const sandboxCount = Number(
      /^addon_response_time_seconds_count\{[^}]*function_name="widget:checkout-form"\} (\d+)/m.exec(
        metrics,
      )?.[1] ?? NaN,
    );

    console.log(`\n### Widget rendering (${await machine()})\n`);
    console.log(
      `One server (NODE_ENV=production, PostgreSQL + Redis), autocannon 10 connections; ${ROUNDS} alternating rounds of ${Math.max(1, Math.round(DURATION / ROUNDS))} s per request, rotating which goes first; medians (the ratio is the median of the per-round ratios).\n`,
    );
    console.log('| request | req/s | vs `{ __typename }` | p50 ms | p99 ms | errors | server CPU µs/req |');
    console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
    for (const row of rows) {
      const ratio = `${Math.round(row.ratio * 100)} %`;
      console.log(
        `| ${row.name} | ${Math.round(row.rps)} | ${ratio} | ${row.p50} | ${row.p99} | ${row.errors} | ${cpuCell(row.cpu?.server)} |`,
      );
    }
    console.log(
      "\nServer CPU per request is read from /proc around each round (medians): it moves less with the machine's noise than throughput does.",
    );
    console.log(
      '\nA repeated cached render through GraphQL is answered from the response cache (src/graphql/plugins/response-cache.ts): the response graphql-js gave the same operation, variables and caller scope, served again while the renders it was built from are current.',
    );
    const ms = (sorted: number[], p: number) => percentile(sorted, p).toFixed(2);
    console.log(
      `\nUncached render of the checkout form, ${UNCACHED_RENDERS} sequential renders of distinct configs ` +
        `(REST, node:http on one kept-alive connection):\n\n` +
        '| measure | p50 ms | p90 ms | p99 ms |\n| --- | ---: | ---: | ---: |\n' +
        `| uncached render, end to end | ${ms(latencies, 50)} | ${ms(latencies, 90)} | ${ms(latencies, 99)} |\n` +
        `| uncached render, time in the server (Server-Timing: request in to response out) | ${ms(serverTimes, 50)} | ${ms(serverTimes, 90)} | ${ms(serverTimes, 99)} |\n` +
        `| the same request again (a cache hit: this machine's HTTP round-trip floor) | ${ms(floor, 50)} | ${ms(floor, 90)} | ${ms(floor, 99)} |\n` +
        `| uncached render, end to end through \`fetch\` (${viaFetch.length} renders) | ${ms(viaFetch, 50)} | ${ms(viaFetch, 90)} | ${ms(viaFetch, 99)} |\n\n` +
        `Server-side render (widget_render_time_seconds, every uncached render above) mean ` +
        `${((serverSum / serverCount) * 1000).toFixed(2)} ms, of which the sandbox run (addon_response_time_seconds) ` +
        `${((sandboxSum / sandboxCount) * 1000).toFixed(2)} ms.`,
    );
  } finally {
    await server.stop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
