import autocannon from 'autocannon';
import { readFileSync } from 'node:fs';
import { median } from './bench-server.js';

/** One load scenario: a name and the autocannon request it repeats. */
export interface Scenario {
  name: string;
  request: Pick<autocannon.Options, 'url' | 'method' | 'headers' | 'body'>;
  /** The server process whose CPU time this scenario is charged (default: the options' `serverPid`). */
  serverPid?: number;
}

/** A scenario's result over all rounds. */
export interface InterleavedRow {
  name: string;
  /** Median of the per-round throughputs. */
  rps: number;
  /** The throughput of each round, in round order (for ratios paired by round). */
  roundRps: number[];
  /** Median over rounds of this scenario's throughput divided by the baseline's in the same round. */
  ratio: number;
  /** Medians of the per-round latency percentiles, in ms. */
  p50: number;
  p99: number;
  errors: number;
  /**
   * Medians of the per-round CPU time per request, in microseconds, of the server process and of
   * its child processes (the sandbox workers), when `serverPid` was given and /proc can tell.
   */
  cpu: { server: number; children: number } | null;
}

/** A CPU-per-request table cell: whole microseconds, or a dash where /proc could not tell. */
export const cpuCell = (micros: number | undefined): string =>
  micros === undefined ? '–' : micros.toFixed(0);

/**
 * CPU time (user + system) of a process and, apart, of its direct children, in microseconds, read
 * from /proc; null where there is no /proc (the columns are then left out).
 */
function processCpu(pid: number): { self: number; children: number } | null {
  const ticks = (p: string) => {
    const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // utime and stime, in clock ticks (USER_HZ, 100 on Linux).
    return (Number(fields[11]) + Number(fields[12])) * 10_000;
  };
  try {
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8')
      .trim()
      .split(/\s+/)
      .filter(Boolean);
    let childTotal = 0;
    for (const child of children) {
      try {
        childTotal += ticks(child);
      } catch {
        // exited meanwhile (a replaced worker): its time is lost, which the median absorbs
      }
    }
    return { self: ticks(String(pid)), children: childTotal };
  } catch {
    return null;
  }
}

/**
 * Runs the scenarios in short alternating rounds (the first one is the baseline), rotating which
 * goes first, and reports medians. On a shared machine a neighbour's burst lasts seconds: measured
 * one after the other, two 5-second runs differ by 2x; interleaved, both see the same weather.
 */
export async function interleaved(
  scenarios: Scenario[],
  options: { rounds: number; seconds: number; connections?: number; serverPid?: number },
): Promise<InterleavedRow[]> {
  const samples = scenarios.map(() => ({
    rps: [] as number[],
    p50: [] as number[],
    p99: [] as number[],
    cpuServer: [] as number[],
    cpuChildren: [] as number[],
    errors: 0,
  }));
  const ratios = scenarios.map(() => [] as number[]);
  for (let round = 0; round < options.rounds; round += 1) {
    const rps = new Array<number>(scenarios.length);
    for (let k = 0; k < scenarios.length; k += 1) {
      const index = (round + k) % scenarios.length;
      const pid = scenarios[index].serverPid ?? options.serverPid;
      const before = pid === undefined ? null : processCpu(pid);
      const result = await autocannon({
        connections: options.connections ?? 10,
        duration: options.seconds,
        ...scenarios[index].request,
      });
      const after = pid === undefined ? null : processCpu(pid);
      if (before && after && result.requests.total > 0) {
        samples[index].cpuServer.push((after.self - before.self) / result.requests.total);
        samples[index].cpuChildren.push((after.children - before.children) / result.requests.total);
      }
      rps[index] = result.requests.average;
      samples[index].rps.push(result.requests.average);
      samples[index].p50.push(result.latency.p50);
      samples[index].p99.push(result.latency.p99);
      samples[index].errors += result.errors + result.non2xx;
    }
    for (let i = 0; i < scenarios.length; i += 1) ratios[i].push(rps[i] / rps[0]);
  }
  return scenarios.map((scenario, i) => ({
    name: scenario.name,
    rps: median(samples[i].rps),
    roundRps: samples[i].rps,
    ratio: median(ratios[i]),
    p50: median(samples[i].p50),
    p99: median(samples[i].p99),
    errors: samples[i].errors,
    cpu:
      samples[i].cpuServer.length === 0
        ? null
        : { server: median(samples[i].cpuServer), children: median(samples[i].cpuChildren) },
  }));
}
