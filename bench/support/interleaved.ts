import autocannon from 'autocannon';

/** One load scenario: a name and the autocannon request it repeats. */
export interface Scenario {
  name: string;
  request: Pick<autocannon.Options, 'url' | 'method' | 'headers' | 'body'>;
}

/** A scenario's result over all rounds. */
export interface InterleavedRow {
  name: string;
  /** Median of the per-round throughputs. */
  rps: number;
  /** Median over rounds of this scenario's throughput divided by the baseline's in the same round. */
  ratio: number;
  /** Medians of the per-round latency percentiles, in ms. */
  p50: number;
  p99: number;
  errors: number;
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
};

/**
 * Runs the scenarios in short alternating rounds (the first one is the baseline), rotating which
 * goes first, and reports medians. On a shared machine a neighbour's burst lasts seconds: measured
 * one after the other, two 5-second runs differ by 2x; interleaved, both see the same weather.
 */
export async function interleaved(
  scenarios: Scenario[],
  options: { rounds: number; seconds: number; connections?: number },
): Promise<InterleavedRow[]> {
  const samples = scenarios.map(() => ({
    rps: [] as number[],
    p50: [] as number[],
    p99: [] as number[],
    errors: 0,
  }));
  const ratios = scenarios.map(() => [] as number[]);
  for (let round = 0; round < options.rounds; round += 1) {
    const rps = new Array<number>(scenarios.length);
    for (let k = 0; k < scenarios.length; k += 1) {
      const index = (round + k) % scenarios.length;
      const result = await autocannon({
        connections: options.connections ?? 10,
        duration: options.seconds,
        ...scenarios[index].request,
      });
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
    ratio: median(ratios[i]),
    p50: median(samples[i].p50),
    p99: median(samples[i].p99),
    errors: samples[i].errors,
  }));
}
