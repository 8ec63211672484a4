import { performance } from 'node:perf_hooks';
import { machineSlowdown } from './machine-speed.js';

/** How often the server's liveness is probed while a request runs. */
export const PROBE_INTERVAL_MS = 20;
/** The slowest answer a probe may get, on the machine the limit was set on. */
const REFERENCE_LIMIT_MS = 100;
/**
 * The slowest answer a probe may get while the server works on hostile input: 100 ms on the
 * machine that limit was set on, scaled by how much slower this one is (at most 4 times).
 */
export const LIVENESS_LIMIT_MS = Math.round(REFERENCE_LIMIT_MS * machineSlowdown());

export interface ProbeReport<T> {
  result: T;
  /** Runs of `work` it took (see {@link whileProbingLiveness}). */
  runs: number;
  /** Probes sent while `work` ran. */
  probes: number;
  /**
   * The slowest probe: from when it was due (not when it was sent) to its answer, or, when less,
   * the CPU time this process spent over that span (see {@link whileProbingLiveness}).
   */
  slowestMs: number;
}

const cpuMs = () => {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1000;
};

/**
 * Runs `work` while `GET /livez` is probed every {@link PROBE_INTERVAL_MS} on a fixed schedule.
 * Each probe's latency counts from when it was due, so an event loop blocked between two probes
 * (the server runs in this process) shows as the time it was blocked, not as one late fast answer.
 *
 * Test machines are shared. A probe is also late when other processes hold the CPUs, so its
 * latency is the lesser of the wall time and the CPU time this process spent meanwhile (from the
 * previous probe's start): a blocked loop spends the whole span on the CPU, a starved process does
 * not. A run still over {@link LIVENESS_LIMIT_MS} is repeated, up to `attempts` runs in all (so
 * `work` must be repeatable), and the first run under the limit is reported.
 */
export async function whileProbingLiveness<T>(
  baseUrl: string,
  work: () => Promise<T>,
  attempts = 3,
): Promise<ProbeReport<T>> {
  let report: ProbeReport<T> | null = null;
  for (let run = 1; run <= attempts; run += 1) {
    report = { ...(await probeOnce(baseUrl, work)), runs: run };
    if (report.slowestMs < LIVENESS_LIMIT_MS) break;
  }
  return report!;
}

async function probeOnce<T>(baseUrl: string, work: () => Promise<T>): Promise<Omit<ProbeReport<T>, 'runs'>> {
  const start = performance.now();
  let running = true;
  let probes = 0;
  let slowest = 0;
  const pending: Promise<void>[] = [];
  let timer: NodeJS.Timeout | null = null;
  let nextDue = start;
  // CPU time when the previous probe started: the span a late probe covers begins there.
  let cpuAtLastProbe = cpuMs();
  const latency = (due: number, cpuSince: number) => Math.min(performance.now() - due, cpuMs() - cpuSince);
  const schedule = (k: number) => {
    const due = start + k * PROBE_INTERVAL_MS;
    nextDue = due;
    timer = setTimeout(
      () => {
        if (!running) return;
        probes += 1;
        const cpuSince = cpuAtLastProbe;
        cpuAtLastProbe = cpuMs();
        pending.push(
          fetch(`${baseUrl}/livez`).then(async (response) => {
            await response.arrayBuffer();
            if (response.status !== 200) throw new Error(`/livez answered ${response.status}`);
            slowest = Math.max(slowest, latency(due, cpuSince));
          }),
        );
        // The next probe is due on the grid, however late this one ran.
        const next = Math.max(k + 1, Math.ceil((performance.now() - start) / PROBE_INTERVAL_MS));
        schedule(next);
      },
      Math.max(0, due - performance.now()),
    );
  };
  schedule(0);
  let result: T;
  try {
    result = await work();
  } finally {
    running = false;
    if (timer) clearTimeout(timer);
    // A probe that was due but never got to run (the loop was busy until now) was late by this much.
    if (performance.now() > nextDue) slowest = Math.max(slowest, latency(nextDue, cpuAtLastProbe));
    await Promise.all(pending);
  }
  return { result, probes, slowestMs: slowest };
}
