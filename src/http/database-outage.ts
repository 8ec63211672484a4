import { isDatabaseUnavailable } from '../errors/index.js';

/** The subset of a pino logger the outage log uses. */
interface OutageLogger {
  error(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
}

/**
 * Logs a database outage once when it starts and once when it ends, instead of one error line per
 * failing request, batch and poll. While it lasts, the database is probed every `probeMs`; the
 * first probe that answers ends it.
 */
export class DatabaseOutage {
  private since: number | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;

  constructor(
    private readonly probe: () => Promise<unknown>,
    private readonly logger: () => OutageLogger | null | undefined,
    private readonly probeMs = 1000,
  ) {}

  /** True while an outage is known. */
  get down(): boolean {
    return this.since !== null;
  }

  /**
   * Takes note of `error` when it says the database cannot be reached (then true: the caller
   * logs nothing more); false for any other error.
   */
  report(error: unknown): boolean {
    if (!isDatabaseUnavailable(error)) return false;
    if (this.since === null && !this.closed) {
      this.since = Date.now();
      this.logger()?.error(
        { err: error },
        'PostgreSQL is unavailable: requests that need it are answered 503 SERVICE_UNAVAILABLE until it is back',
      );
      this.schedule();
    }
    return true;
  }

  /** Stops probing (server shutdown). */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private schedule(): void {
    if (this.closed) return;
    this.timer = setTimeout(() => void this.check(), this.probeMs);
    this.timer.unref();
  }

  private async check(): Promise<void> {
    this.timer = null;
    try {
      await this.probe();
    } catch {
      this.schedule();
      return;
    }
    const lasted = this.since === null ? 0 : Date.now() - this.since;
    this.since = null;
    this.logger()?.info({ outageMs: lasted }, 'PostgreSQL is available again');
  }
}
