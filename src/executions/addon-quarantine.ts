import { Counter, Gauge } from 'prom-client';
import type { Database } from '../infrastructure/database/database.js';
import type { PubSub } from '../infrastructure/pub-sub/pub-sub.js';
import type { Metrics } from '../infrastructure/metrics/metrics.js';
import { AddonQuarantinedError, ErrorCode, ForbiddenError } from '../errors/index.js';
import { requireAuthenticated, resolveSiteId, type Actor } from '../auth/actor.js';
import {
  AddonQuarantineRepository,
  type QuarantineKey,
  type QuarantineRecord,
  type QuarantineRules,
  type QuarantineState,
} from './addon-quarantine.repository.js';

export const QUARANTINE_CHANNEL = 'quarantine.changed';

/** The quarantine's pub/sub topic: a breaker changed state (its row is read again). */
export interface QuarantineTopics {
  [QUARANTINE_CHANNEL]: { addonVersionId: string; siteId: string };
}

/**
 * Outcomes that count against a version: it exhausted a limit (wall time, CPU, memory) or took its
 * worker down. The caller's mistakes, the addon's own errors and cancelled dependency calls do not.
 */
export const TRIPPING_CODES: ReadonlySet<string> = new Set([
  ErrorCode.ExecutionTimeout,
  ErrorCode.MemoryLimitExceeded,
  ErrorCode.SandboxCrashed,
]);

/** Outcomes that say nothing about the addon's code: a probe ending so is handed back. */
const INCONCLUSIVE_CODES: ReadonlySet<string> = new Set([
  ErrorCode.TooManyConcurrentCalls,
  ErrorCode.ServiceUnavailable,
  ErrorCode.InternalServerError,
  ErrorCode.ExecutionCancelled,
]);

export interface QuarantineOptions extends QuarantineRules {
  enabled: boolean;
  /** How often every instance re-reads the breakers that are not closed (pub/sub may lose a message). */
  pollMs: number;
}

export const DEFAULT_QUARANTINE_OPTIONS: QuarantineOptions = {
  enabled: true,
  threshold: 5,
  windowMs: 60_000,
  baseBackoffMs: 30_000,
  maxBackoffMs: 15 * 60_000,
  forgiveAfterMs: 60 * 60_000,
  pollMs: 2_000,
};

/** A state change, told once, by the instance that made it. */
export interface QuarantineChange {
  addonId: string;
  addonName: string;
  version: string;
  addonVersionId: string;
  siteId: string;
  from: QuarantineState;
  to: QuarantineState;
  reason: string | null;
  trips: number;
  /** OPEN: seconds until a probe may run. */
  retryAfterSeconds: number | null;
}

/** What {@link AddonQuarantine.admit} decided for a call: run it, as the breaker's probe or not. */
export interface Admission {
  probe: boolean;
}

const ADMITTED: Admission = Object.freeze({ probe: false });
/** After losing a probe race, refuse locally this long rather than asking PostgreSQL per call. */
const PROBE_RACE_BACKOFF_MS = 1_000;

interface Known {
  record: QuarantineRecord;
  /** Epoch ms until which this instance refuses without asking (lost a probe race). */
  quietUntil: number;
}

const keyOf = (versionId: string, siteId: string) => `${versionId}/${siteId}`;

/**
 * Circuit breakers per addon version and site, shared by every instance through PostgreSQL: a
 * version whose calls on a site keep exhausting their limits or crashing workers is refused there
 * (ADDON_QUARANTINED with a retry-after) for a backoff that doubles with each trip; then one call,
 * on whichever instance claims it, runs as the probe, and its outcome closes or reopens the
 * breaker. Other sites of the same version are not affected.
 *
 * The hot path costs a Map lookup: each instance keeps the breakers that are not closed, re-read
 * every {@link QuarantineOptions.pollMs} and at once when another instance announces a change.
 * Only failures that count, probes and transitions touch the database.
 */
export class AddonQuarantine {
  private readonly known = new Map<string, Known>();
  private readonly repository: AddonQuarantineRepository;
  private readonly options: QuarantineOptions;
  private readonly transitions: Counter<'to'>;
  private readonly refusals: Counter;
  private timer: NodeJS.Timeout | null = null;
  private unsubscribe: (() => void) | null = null;
  private polling: Promise<void> | null = null;

  constructor(
    private readonly deps: {
      database: Database;
      pubSub: PubSub<QuarantineTopics>;
      metrics: Metrics;
      onChange?: (change: QuarantineChange) => void;
      onError?: (error: unknown, message: string) => void;
    },
    options: Partial<QuarantineOptions> = {},
  ) {
    this.options = { ...DEFAULT_QUARANTINE_OPTIONS, ...options };
    this.repository = new AddonQuarantineRepository(deps.database.prisma);
    const registers = [deps.metrics.registry];
    this.transitions = new Counter({
      name: 'addon_quarantine_transitions_total',
      help: 'Addon circuit breaker state changes made by this instance, by new state (OPEN, HALF_OPEN, CLOSED).',
      labelNames: ['to'] as const,
      registers,
    });
    this.refusals = new Counter({
      name: 'addon_quarantine_refusals_total',
      help: 'Addon calls refused with ADDON_QUARANTINED by this instance.',
      registers,
    });
    const known = this.known;
    new Gauge({
      name: 'addon_quarantines_open',
      help: 'Addon versions quarantined on a site (breakers OPEN or HALF_OPEN), cluster-wide as this instance last read them.',
      registers,
      collect() {
        this.set(known.size);
      },
    });
  }

  /** Loads the breakers that are not closed and keeps them current. */
  async start(): Promise<void> {
    if (!this.options.enabled || this.timer) return;
    this.unsubscribe = this.deps.pubSub.listen(QUARANTINE_CHANNEL, ({ addonVersionId, siteId }) => {
      void this.reload(addonVersionId, siteId);
    }).stop;
    this.timer = setInterval(() => void this.poll(), this.options.pollMs);
    this.timer.unref();
    await this.poll();
  }

  close(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.unsubscribe?.();
    this.unsubscribe = null;
  }

  /**
   * Whether a call of `key.addonVersionId` on `key.siteId` may run: synchronously `ADMITTED` when
   * its breaker is closed; a probe claim (a promise) when its backoff is over; else throws
   * ADDON_QUARANTINED with the seconds to wait. `timeoutMs` (the call's time limit) is read only
   * for a probe, whose lease must outlast it.
   */
  admit(key: QuarantineKey, timeoutMs: () => number): Admission | Promise<Admission> {
    // Nothing quarantined anywhere (the usual case): no key to build.
    if (this.known.size === 0) return ADMITTED;
    const known = this.known.get(keyOf(key.addonVersionId, key.siteId));
    if (!known) return ADMITTED;
    const now = Date.now();
    const { record } = known;
    const until = record.state === 'OPEN' ? record.openUntil : record.probeUntil;
    const waitMs = Math.max(until ? until.getTime() - now : 0, known.quietUntil - now);
    if (waitMs > 0) throw this.refusal(record, waitMs);
    return this.claimProbe(key, known, timeoutMs);
  }

  /**
   * Counts a call's outcome: `status` is SUCCESS or its error code; `blamed` is false for a worker
   * crash that other versions' calls shared (it may not be this version's doing). Closed breakers
   * only hear of failures that count (one statement each); a probe's outcome closes or reopens
   * its breaker.
   */
  async observe(key: QuarantineKey, admission: Admission, status: string, blamed = true): Promise<void> {
    if (!this.options.enabled) return;
    const trips = TRIPPING_CODES.has(status) && blamed;
    try {
      if (admission.probe) {
        const { addonVersionId, siteId } = key;
        if (INCONCLUSIVE_CODES.has(status) || (TRIPPING_CODES.has(status) && !blamed)) {
          await this.repository.releaseProbe(addonVersionId, siteId);
          await this.announce(addonVersionId, siteId);
          return;
        }
        const row = trips
          ? await this.repository.reopen(addonVersionId, siteId, status, this.options)
          : await this.repository.close(addonVersionId, siteId);
        if (row) await this.changed('HALF_OPEN', row);
        return;
      }
      if (!trips) return;
      const opened = await this.repository.recordFailure(key, status, this.options);
      if (opened) await this.changed('CLOSED', opened);
    } catch (error) {
      this.deps.onError?.(error, 'could not update an addon circuit breaker');
    }
  }

  /**
   * The breakers that are not closed on the caller's site (an admin: every site, or the one
   * named), from the database. Developer keys manage no site.
   */
  async list(actor: Actor, siteId: string | null): Promise<QuarantineRecord[]> {
    requireAuthenticated(actor);
    if (actor.kind === 'developer') throw new ForbiddenError('Developer keys see no site quarantines.');
    const site = actor.kind === 'admin' && !siteId ? null : resolveSiteId(actor, siteId);
    return this.repository.listBySite(site);
  }

  /** What this instance knows of one breaker (null: closed), without a query. */
  peek(addonVersionId: string, siteId: string): QuarantineRecord | null {
    return this.known.get(keyOf(addonVersionId, siteId))?.record ?? null;
  }

  /** Seconds until a call of this breaker may run again (0 when a probe may run now). */
  static retryAfterSeconds(record: QuarantineRecord, now = Date.now()): number {
    const until = record.state === 'OPEN' ? record.openUntil : record.probeUntil;
    return until ? Math.max(0, Math.ceil((until.getTime() - now) / 1000)) : 0;
  }

  private refusal(record: QuarantineRecord, waitMs: number): AddonQuarantinedError {
    this.refusals.inc();
    return new AddonQuarantinedError(
      record.addonName,
      record.version,
      Math.max(1, Math.ceil(waitMs / 1000)),
      record.lastReason,
    );
  }

  private async claimProbe(key: QuarantineKey, known: Known, timeoutMs: () => number): Promise<Admission> {
    // Others on this instance are refused while the claim is out, and for a moment if it is lost.
    known.quietUntil = Date.now() + PROBE_RACE_BACKOFF_MS;
    // The lease outlives the call's own deadline and the supervisor's grace before another may probe.
    const row = await this.repository.claimProbe(key.addonVersionId, key.siteId, timeoutMs() + 5_000);
    if (!row) {
      const current = this.known.get(keyOf(key.addonVersionId, key.siteId)) ?? known;
      throw this.refusal(current.record, PROBE_RACE_BACKOFF_MS);
    }
    await this.changed(known.record.state as QuarantineState, row);
    return { probe: true };
  }

  /** Records a transition this instance made: local state, the other instances, metrics, the log. */
  private async changed(from: QuarantineState, row: QuarantineRecord): Promise<void> {
    const to = row.state as QuarantineState;
    this.remember(row);
    this.transitions.labels({ to }).inc();
    this.deps.onChange?.({
      addonId: row.addonId,
      addonName: row.addonName,
      version: row.version,
      addonVersionId: row.addonVersionId,
      siteId: row.siteId,
      from,
      to,
      reason: row.lastReason,
      trips: row.trips,
      retryAfterSeconds: to === 'OPEN' ? AddonQuarantine.retryAfterSeconds(row) : null,
    });
    await this.announce(row.addonVersionId, row.siteId);
  }

  private announce(addonVersionId: string, siteId: string): Promise<void> {
    return this.deps.pubSub.publish(QUARANTINE_CHANNEL, { addonVersionId, siteId }).catch(() => undefined);
  }

  private remember(row: QuarantineRecord): void {
    const key = keyOf(row.addonVersionId, row.siteId);
    if (row.state === 'CLOSED') this.known.delete(key);
    else this.known.set(key, { record: row, quietUntil: this.known.get(key)?.quietUntil ?? 0 });
  }

  private async reload(addonVersionId: string, siteId: string): Promise<void> {
    try {
      const row = await this.repository.find(addonVersionId, siteId);
      if (row) this.remember(row);
      else this.known.delete(keyOf(addonVersionId, siteId));
    } catch (error) {
      this.deps.onError?.(error, 'could not read an addon circuit breaker');
    }
  }

  private poll(): Promise<void> {
    this.polling ??= (async () => {
      try {
        const rows = await this.repository.listNotClosed();
        const seen = new Set<string>();
        for (const row of rows) {
          seen.add(keyOf(row.addonVersionId, row.siteId));
          this.remember(row);
        }
        for (const key of this.known.keys()) if (!seen.has(key)) this.known.delete(key);
      } catch (error) {
        this.deps.onError?.(error, 'could not read the addon circuit breakers');
      } finally {
        this.polling = null;
      }
    })();
    return this.polling;
  }
}
