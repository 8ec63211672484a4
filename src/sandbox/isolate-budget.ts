import { totalmem } from 'node:os';

/** Share of the machine's memory the isolates of all workers may keep by default. */
export const DEFAULT_ISOLATE_MEMORY_SHARE = 0.25;
/** Floor of a worker's default budget, in MB, so a small container still keeps a useful number. */
const MIN_DEFAULT_BUDGET_MB = 256;

/**
 * The default per-worker budget of measured isolate memory, in MB: a quarter of the machine's
 * memory split over the workers (the API process, PostgreSQL and the OS need the rest), at least
 * 256 MB. What an isolate takes: docs/decisions/0007-isolate-per-version-and-site.md.
 */
export function defaultIsolateMemoryBudgetMb(workers: number, machineBytes = totalmem()): number {
  const perWorker = (machineBytes * DEFAULT_ISOLATE_MEMORY_SHARE) / Math.max(1, workers) / (1024 * 1024);
  return Math.max(MIN_DEFAULT_BUDGET_MB, Math.floor(perWorker));
}
