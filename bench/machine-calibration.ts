// Machine calibration: what this machine charges for work done right after a process wakes,
// measured next to the same work done back to back. An addon call wakes a sandbox worker that slept
// since its last call; `{ __typename }` has no such hop, so the ratios of the other sections depend
// on this cost as well as on the code. A second table times a round trip to another process: the
// floor any process-isolated design pays per call, next to what the sandbox pool pays; a third, the
// same round trips at the execution benchmark's open-loop rates.
// Run: node --no-node-snapshot dist/bench/machine-calibration.js
import { fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import ivm from 'isolated-vm';
import { openLoop } from './events-common.js';
import { machine, median, percentile } from './support/bench-server.js';
import { createEchoPool } from './support/echo-pool.js';
import { OPEN_LOOP_RATES, PAYLOAD as BENCH_PAYLOAD } from './support/fixtures.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const PAYLOAD = JSON.stringify(BENCH_PAYLOAD);
/** Calls that warm the pool up before the open loop. */
const WARM_CALLS = 5000;
/** The pause that lets a process fall asleep between two measured operations. */
const IDLE_MS = 1;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Timings {
  /** Median wall time back to back, µs. */
  hot: number;
  /** Median wall time right after the process slept {@link IDLE_MS}, µs. */
  afterIdle: number;
  /** Mean CPU time of this process per operation after sleeping (user + system), µs. */
  cpuAfterIdle: number;
}

/**
 * Times `op` back to back, and each time after the process slept for {@link IDLE_MS}. An operation
 * that returns a promise (a round trip to another process) is awaited; a synchronous one is timed
 * without any await, so nothing but the operation falls inside the measure.
 */
async function hotAndAfterIdle(op: () => unknown, count: number): Promise<Timings> {
  const timeOnce = async (): Promise<number> => {
    const t0 = performance.now();
    const pending = op();
    if (pending instanceof Promise) await pending;
    return (performance.now() - t0) * 1000;
  };
  const hot: number[] = [];
  const afterIdle: number[] = [];
  let cpu = 0;
  for (let i = 0; i < 200; i += 1) await timeOnce();
  for (let i = 0; i < count; i += 1) hot.push(await timeOnce());
  for (let i = 0; i < count; i += 1) {
    await sleep(IDLE_MS);
    const cpu0 = process.cpuUsage();
    afterIdle.push(await timeOnce());
    const used = process.cpuUsage(cpu0);
    cpu += used.user + used.system;
  }
  return { hot: median(hot), afterIdle: median(afterIdle), cpuAfterIdle: cpu / count };
}

/** A forked child that echoes IPC messages ('json' serialization, as the sandbox workers use). */
async function startIpcEcho() {
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'support/ipc-echo-process.js');
  const child = fork(script, [], { serialization: 'json', stdio: ['ignore', 'ignore', 'inherit', 'ipc'] });
  await new Promise((resolve) => child.once('message', resolve));
  // IPC keeps order, so answers settle the calls first in, first out (an open loop may overlap calls).
  const answers: (() => void)[] = [];
  child.on('message', () => answers.shift()?.());
  const message = { t: 'exec', inputJson: PAYLOAD };
  const echo = () =>
    new Promise<void>((resolve) => {
      answers.push(resolve);
      child.send(message);
    });
  return { echo, stop: () => child.kill() };
}

async function main(): Promise<void> {
  const json = () => JSON.stringify(JSON.parse(PAYLOAD));
  const isolate = new ivm.Isolate({ memoryLimit: 64 });
  const context = await isolate.createContext();
  const echo = (await context.eval('(input) => JSON.stringify({ ok: true, echo: JSON.parse(input) })', {
    reference: true,
  })) as ivm.Reference<(input: string) => string>;
  const call = () => void echo.applySync(undefined, [PAYLOAD], { arguments: { copy: true }, timeout: 1000 });

  const jsonRuns: Timings[] = [];
  const ivmRuns: Timings[] = [];
  for (let round = 0; round < ROUNDS; round += 1) {
    jsonRuns.push(await hotAndAfterIdle(json, 300));
    ivmRuns.push(await hotAndAfterIdle(call, 300));
  }
  isolate.dispose();

  const ipc = await startIpcEcho();
  const pool = createEchoPool();
  await pool.pool.start();
  const ipcRuns: Timings[] = [];
  const poolRuns: Timings[] = [];
  for (let round = 0; round < ROUNDS; round += 1) {
    ipcRuns.push(await hotAndAfterIdle(ipc.echo, 300));
    poolRuns.push(await hotAndAfterIdle(pool.execute, 300));
  }
  // The same round trips at the open-loop rates of the execution benchmark, once the JIT has
  // optimised both sides (as the closed loop before that benchmark's open loop leaves them).
  for (let i = 0; i < WARM_CALLS; i += 1) await pool.execute();
  const rateRows: string[] = [];
  for (const rate of OPEN_LOOP_RATES) {
    const echoLatencies: number[] = [];
    const poolLatencies: number[] = [];
    const timed = async (call: () => Promise<unknown>, into: number[]) => {
      const { latencies, failures } = await openLoop(rate, 1, call);
      if (failures > 0) throw new Error(`${failures} calls failed at ${rate}/s`);
      into.push(...latencies);
    };
    for (let round = 0; round < 2 * ROUNDS; round += 1) {
      await timed(ipc.echo, echoLatencies);
      await timed(pool.execute, poolLatencies);
    }
    const cells = [echoLatencies, poolLatencies].flatMap((latencies) => {
      const sorted = latencies.sort((a, b) => a - b);
      return [50, 90, 99].map((p) => (percentile(sorted, p) * 1000).toFixed(0));
    });
    rateRows.push(`| ${rate}/s | ${cells.join(' | ')} |`);
  }
  ipc.stop();
  await pool.pool.close();

  /** A table row of medians over the rounds; round trips (`digits` 0) also show the CPU column. */
  const row = (name: string, runs: Timings[], digits = 1) => {
    const hot = median(runs.map((r) => r.hot));
    const idle = median(runs.map((r) => r.afterIdle));
    const cells = [name, hot.toFixed(digits), idle.toFixed(digits), `${(idle / hot).toFixed(1)}×`];
    if (digits === 0) cells.push(median(runs.map((r) => r.cpuAfterIdle)).toFixed(0));
    return `| ${cells.join(' | ')} |`;
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
      '',
      `Round trips to another process, timed the same way. The first row is the floor of any design that`,
      'runs addons in another process: a Node child that sends each IPC message straight back. The second is',
      "the sandbox pool's own call (IPC to a worker, the isolate call, checks and bookkeeping on both sides).",
      'An `executeAddonFunction` below saturation pays the second row at the "after sleeping" rate on top',
      "of the API's work for `{ __typename }`. The last column is the calling process's CPU time per round",
      "trip after sleeping: its own work and the kernel's for the IPC write and read.",
      '',
      '| round trip | back to back µs | after sleeping µs | cost of waking | caller CPU µs after sleeping |',
      '| --- | ---: | ---: | ---: | ---: |',
      row('Node IPC echo of the 1 KB payload (child_process.fork, JSON serialization)', ipcRuns, 0),
      row('`SandboxPool.execute` of the echo addon with that payload (2 workers)', poolRuns, 0),
      '',
      `The same two round trips at the fixed rates of the execution benchmark's open loop (calls sent on`,
      `schedule whatever the answers; ${2 * ROUNDS} alternating rounds of 1 s each, after ${WARM_CALLS} calls`,
      'that let the JIT optimise both processes). Unlike back to back, both processes sleep between',
      "calls at these rates: the pool's p50 at a rate is what an execution pays over HTTP above",
      "`{ __typename }` before any of the API's own work for it.",
      '',
      '| rate | IPC echo p50 µs | p90 µs | p99 µs | `SandboxPool.execute` p50 µs | p90 µs | p99 µs |',
      '| ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...rateRows,
    ].join('\n'),
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
