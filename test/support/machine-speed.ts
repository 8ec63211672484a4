import { performance } from 'node:perf_hooks';

/**
 * Microseconds that machine took for {@link referenceWork} (bench/RESULTS.md, "Machine
 * calibration": JSON parse + stringify of the 1 KB benchmark payload, back to back).
 */
const REFERENCE_WORK_US = 5.2;
/** The most a limit grows on a slower machine: a stall of seconds must still fail. */
const MAX_SLOWDOWN = 4;

/** The machine calibration's reference work: JSON parse + stringify of a 1 KB payload. */
function referenceWork(text: string): void {
  JSON.stringify(JSON.parse(text));
}

/**
 * How much slower than the reference machine this one runs the reference work (at least 1): the
 * fastest of five rounds, so that other processes' load counts as little as it can.
 */
function measureSlowdown(): number {
  const items = Array.from({ length: 10 }, (_, i) => ({
    sku: `SKU-${1000 + i}`,
    name: `Product number ${i} with a name`,
    qty: i + 1,
    price: 12.5 * (i + 1),
  }));
  const text = JSON.stringify({ items });
  for (let i = 0; i < 300; i += 1) referenceWork(text);
  let fastestUs = Infinity;
  for (let round = 0; round < 5; round += 1) {
    const started = performance.now();
    for (let i = 0; i < 300; i += 1) referenceWork(text);
    fastestUs = Math.min(fastestUs, ((performance.now() - started) * 1000) / 300);
  }
  return Math.min(MAX_SLOWDOWN, Math.max(1, fastestUs / REFERENCE_WORK_US));
}

let measured: number | null = null;

/**
 * How much slower than the calibration machine (where the tests' time limits were set) this one
 * is, from 1 to 4: tests that bound latencies scale those bounds by it. Measured once per process.
 */
export function machineSlowdown(): number {
  measured ??= measureSlowdown();
  return measured;
}
