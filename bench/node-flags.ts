// Node flags of the server: V8's background thread pool at 1 (npm start, the Dockerfile and the
// sandbox workers) against Node's default of 4, two servers side by side in alternating rounds.
import autocannon from 'autocannon';
import { openLoop, post } from './events-common.js';
import { bodies, operations, publishEcho } from './support/fixtures.js';
import {
  givenBenchSite,
  machine,
  median,
  percentile,
  startBenchServer,
  type BenchServer,
} from './support/bench-server.js';

const RATE = 1000;
const SECONDS = 3;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);

interface Variant {
  name: string;
  poolSize: number;
  server?: BenchServer;
  siteKey?: string;
  latencies: { typename: number[]; execute: number[] };
  rps: number[];
}

async function main(): Promise<void> {
  const variants: Variant[] = [
    {
      name: '`--v8-pool-size=1` (this server: npm start, Dockerfile, workers)',
      poolSize: 1,
      latencies: { typename: [], execute: [] },
      rps: [],
    },
    {
      name: "`--v8-pool-size=4` (Node's default)",
      poolSize: 4,
      latencies: { typename: [], execute: [] },
      rps: [],
    },
  ];
  try {
    for (const variant of variants) {
      variant.server = await startBenchServer({
        nodeArgs: [`--v8-pool-size=${variant.poolSize}`],
        env: { SANDBOX_WORKER_V8_POOL_SIZE: String(variant.poolSize) },
      });
      const { devKey, siteKey } = await givenBenchSite(variant.server.url, variant.server.adminKey);
      await publishEcho(variant.server.url, { devKey, siteKey }, 'bench-echo');
      variant.siteKey = siteKey;
    }
    // Round 0 warms both servers up (JIT, isolates) and is not counted.
    for (let round = 0; round < ROUNDS; round += 1) {
      for (let k = 0; k < variants.length; k += 1) {
        const variant = variants[(round + k) % variants.length];
        const { url } = variant.server!;
        const key = variant.siteKey!;
        for (const op of ['typename', 'execute'] as const) {
          const { query, variables } =
            op === 'typename' ? operations.typename : operations.execute('bench-echo');
          const send = () => post(url, key, query, variables);
          const result = await openLoop(RATE, SECONDS, send);
          if (round > 0) variant.latencies[op].push(...result.latencies);
        }
        const saturated = await autocannon({
          url: `${url}/graphql`,
          method: 'POST',
          connections: 10,
          duration: 1,
          headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
          body: bodies.execute('bench-echo'),
        });
        if (round > 0) variant.rps.push(saturated.requests.average);
      }
    }
  } finally {
    await Promise.all(variants.map((variant) => variant.server?.stop()));
  }
  const fmt = (n: number) => n.toFixed(2);
  const rows = variants.flatMap((variant) =>
    (['typename', 'execute'] as const).map((op) => {
      const sorted = [...variant.latencies[op]].sort((a, b) => a - b);
      return `| ${variant.name} | ${op === 'typename' ? '`{ __typename }`' : 'warm `executeAddonFunction`'} | ${sorted.length} | ${fmt(percentile(sorted, 50))} | ${fmt(percentile(sorted, 99))} | ${fmt(percentile(sorted, 99.9))} | ${fmt(sorted.at(-1) ?? NaN)} | ${op === 'execute' ? median(variant.rps).toFixed(0) : '–'} |`;
    }),
  );
  console.log(
    [
      `## Node flags: V8 background threads (${await machine()})`,
      '',
      `Two servers side by side, one started with each value for the API process and its sandbox workers`,
      `(\`SANDBOX_WORKER_V8_POOL_SIZE\`). ${ROUNDS - 1} alternating rounds (after one of warm-up) of ${SECONDS} s per`,
      `operation in an open loop at ${RATE} requests/s, latencies pooled over the rounds; then 1 s of`,
      'executions under autocannon (10 connections) per round, median.',
      '',
      '| V8 pool | operation | requests | p50 ms | p99 ms | p99.9 ms | max ms | executions/s at saturation |',
      '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...rows,
      '',
    ].join('\n'),
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
