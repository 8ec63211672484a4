// Machine calibration: what this machine charges for work done right after a process wakes,
// measured next to the same work done back to back. An addon call wakes a sandbox worker that slept
// since its last call; `{ __typename }` has no such hop, so the ratios of the other sections depend
// on this cost as well as on the code.
// Run: node --no-node-snapshot dist/bench/machine-calibration.js
import { performance } from 'node:perf_hooks';
import ivm from 'isolated-vm';
import { machine, median } from './support/bench-server.js';
import { PAYLOAD as BENCH_PAYLOAD } from './support/fixtures.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const PAYLOAD = JSON.stringify(BENCH_PAYLOAD);
/** The pause that lets a process fall asleep between two measured operations. */
const IDLE_MS = 1;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Median wall time of `op` in microseconds: back to back (`hot`), and each after the process slept
 * for {@link IDLE_MS} (`afterIdle`).
 */
async function hotAndAfterIdle(op: () => void, count: number): Promise<{ hot: number; afterIdle: number }> {
  const hot: number[] = [];
  const afterIdle: number[] = [];
  for (let i = 0; i < 200; i += 1) op();
  for (let i = 0; i < count; i += 1) {
    const t0 = performance.now();
    op();
    hot.push((performance.now() - t0) * 1000);
  }
  for (let i = 0; i < count; i += 1) {
    await sleep(IDLE_MS);
    const t0 = performance.now();
    op();
    afterIdle.push((performance.now() - t0) * 1000);
  }
  return { hot: median(hot), afterIdle: median(afterIdle) };
}

async function main(): Promise<void> {
  const json = () => JSON.stringify(JSON.parse(PAYLOAD));
  const isolate = new ivm.Isolate({ memoryLimit: 64 });
  const context = await isolate.createContext();
  const echo = (await context.eval('(input) => JSON.stringify({ ok: true, echo: JSON.parse(input) })', {
    reference: true,
  })) as ivm.Reference<(input: string) => string>;
  const call = () => void echo.applySync(undefined, [PAYLOAD], { arguments: { copy: true }, timeout: 1000 });

  const jsonRuns: Array<{ hot: number; afterIdle: number }> = [];
  const ivmRuns: Array<{ hot: number; afterIdle: number }> = [];
  for (let round = 0; round < ROUNDS; round += 1) {
    jsonRuns.push(await hotAndAfterIdle(json, 300));
    ivmRuns.push(await hotAndAfterIdle(call, 300));
  }
  isolate.dispose();

  const row = (name: string, runs: Array<{ hot: number; afterIdle: number }>) => {
    const hot = median(runs.map((r) => r.hot));
    const idle = median(runs.map((r) => r.afterIdle));
    return `| ${name} | ${hot.toFixed(1)} | ${idle.toFixed(1)} | ${(idle / hot).toFixed(1)}× |`;
  };
  console.log(
    [
      `## Machine calibration (${await machine()})`,
      '',
      `The same work timed back to back and right after the process slept ${IDLE_MS} ms (medians of ${ROUNDS} rounds of 300).`,
      'Under the closed loop of the execution benchmark a sandbox worker sleeps between calls, so an addon',
      'call pays part of its cost at the "after sleeping" rate; `{ __typename }` has no such hop. Comparing',
      'this table between machines tells how much of a change in the throughput ratios is the machine.',
      '',
      '| work | back to back µs | after sleeping µs | cost of waking |',
      '| --- | ---: | ---: | ---: |',
      row('JSON parse + stringify of the 1 KB benchmark payload', jsonRuns),
      row('isolated-vm call of an echo function with that payload (applySync, timeout)', ivmRuns),
    ].join('\n'),
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
