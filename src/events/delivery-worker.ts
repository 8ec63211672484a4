import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { performance } from 'node:perf_hooks';
import type { Database } from '../infrastructure/database/database.js';
import { AddonQuarantinedError, AppError, ErrorCode } from '../errors/index.js';
import type { InstallationLookup, ResolvedInstallation } from '../installations/installation-lookup.js';
import type { AddonBundleCache } from '../executions/addon-bundle.cache.js';
import type { ExecutionService } from '../executions/execution.service.js';
import type { PubSub } from '../infrastructure/pub-sub/pub-sub.js';
import {
  DeliveryRepository,
  type ClaimedDelivery,
  type FlowCursor,
  type DeliveryOutcome,
  type DeliveryRecord,
  type NewAttempt,
} from './delivery.repository.js';
import { DELIVERIES_DUE_CHANNEL } from './event.service.js';
import { resolveHandler } from './event-name.js';
import { toLiveDelivery, type EventTopics } from './live-payloads.js';

export interface DeliveryWorkerOptions {
  concurrency: number;
  maxAttempts: number;
  backoffBaseMs: number;
  backoffMaxMs: number;
  leaseMs: number;
  pollMs: number;
}

/** What an addon handler receives as its first argument. */
export interface HandlerEvent {
  id: string;
  /** The event id again: the same on every attempt, so handlers can drop repeats. */
  idempotencyKey: string;
  name: string;
  source: string;
  sourceAddonId: string | null;
  siteId: string;
  data: unknown;
  createdAt: string;
  deliveryId: string;
  attempt: number;
}

/**
 * How long finished attempts wait to be stored together: one statement per batch, whose planning
 * and commit cost PostgreSQL the same for one outcome or fifty.
 */
const OUTCOME_LINGER_MS = 25;

/** The run never reached the handler and never will (uninstalled, disabled, no longer handled). */
class PermanentFailure extends Error {}

/** Delay before attempt `attempt + 1`: exponential, capped, with "equal jitter" (half fixed, half random). */
export function backoffDelay(attempt: number, baseMs: number, maxMs: number, random = Math.random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt - 1, 30));
  return Math.round(ceiling / 2 + random() * (ceiling / 2));
}

/**
 * Runs stored deliveries in this instance; every instance runs one and they share the work through
 * PostgreSQL:
 * - claims due rows in batches with FOR UPDATE SKIP LOCKED, each claim a lease renewed while the
 *   row waits and while its handler runs; a killed instance's leases expire and other workers take
 *   the rows over;
 * - claims ahead: up to `concurrency` handlers run while up to five times as many claimed rows
 *   wait, so a finished handler's slot is refilled without waiting for the next claim's round trip,
 *   and claims come in batches of at least twice `concurrency` while rows are held;
 * - at most a quarter of the running handlers of one addon, and at most `concurrency` rows held (running
 *   or waiting) by one addon, so a slow or broken subscriber cannot hold up the others;
 * - claims take turns across (site, addon) flows, a flow with nothing running starts first, and one
 *   site's rows of an addon hold at most three quarters of the addon's rows and all but one of its
 *   running slots (where the share has room), so a site flooding an addon it shares with other
 *   sites, or making its handler hang, delays its own deliveries, not theirs;
 * - one site's rows, across its addons, hold at most three quarters of the running handlers (from
 *   8 up) and leave a claim's batch of room among the rows held, so a site whose many addons hang
 *   cannot take every slot either;
 * - failures retry with exponential backoff and jitter, up to `maxAttempts`, then DEAD;
 * - woken at once through the pub/sub when deliveries are stored, by its own timer for retries, and
 *   polls as a fallback.
 * Outcomes are written in batches (one statement per batch, at most {@link OUTCOME_LINGER_MS} late).
 */
export class DeliveryWorker {
  readonly id = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  private readonly running = new Map<string, ClaimedDelivery>();
  private readonly runningPerAddon = new Map<string, number>();
  /** Running handlers by (site, addon) flow. */
  private readonly runningPerFlow = new Map<string, number>();
  /** Claimed rows waiting for a free slot, oldest first. */
  private readonly waiting: ClaimedDelivery[] = [];
  /** Rows running or waiting, by addon. */
  private readonly heldPerAddon = new Map<string, number>();
  /** Rows running or waiting, by (site, addon) flow. */
  private readonly heldPerFlow = new Map<string, number>();
  /** Running handlers, and rows running or waiting, by site. */
  private readonly runningPerSite = new Map<string, number>();
  private readonly heldPerSite = new Map<string, number>();
  private readonly perAddon: number;
  private readonly perAddonHeld: number;
  private readonly perFlow: number;
  private readonly perFlowHeld: number;
  private readonly perSite: number;
  private readonly perSiteHeld: number;
  private readonly maxHeld: number;
  private readonly minBatch: number;
  /** Where the next claim's walk over the (site, addon) flows starts. */
  private flowCursor: FlowCursor | null = null;
  private starting = false;
  private stopped = true;
  private claiming: Promise<void> | null = null;
  private claimAgain = false;
  private timers: NodeJS.Timeout[] = [];
  private retryTimer: { at: number; timer: NodeJS.Timeout } | null = null;
  private unsubscribe: (() => void) | null = null;
  private pending: { outcome: DeliveryOutcome; attempt: NewAttempt | null }[] = [];
  private pendingAttempts: NewAttempt[] = [];
  private flushTimer: NodeJS.Timeout | null = null;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    private readonly deps: {
      database: Database;
      pubSub: PubSub<EventTopics>;
      executions: ExecutionService;
      lookup: InstallationLookup;
      bundles: AddonBundleCache;
      options: DeliveryWorkerOptions;
      onError?: (error: unknown, message: string) => void;
    },
  ) {
    // A quarter: one addon's deliveries leave most of its own call slots (16 by default) to its
    // other callers, and most of the handlers to the other addons.
    this.perAddon = Math.max(1, Math.floor(deps.options.concurrency / 4));
    this.perAddonHeld = deps.options.concurrency;
    // One site's rows of an addon leave part of the addon's share to its other sites (where the
    // share has room for it): rows a site made hang cannot take every slot of an addon it shares.
    this.perFlow = this.perAddon >= 2 ? this.perAddon - 1 : this.perAddon;
    this.perFlowHeld =
      this.perAddonHeld >= 4 ? this.perAddonHeld - Math.floor(this.perAddonHeld / 4) : this.perAddonHeld;
    // A claim costs PostgreSQL a plan and a walk over the queue index's recently dead entries
    // whatever its size: under load, fewer and larger claims leave it more CPU for the rest.
    this.maxHeld = deps.options.concurrency * 6;
    this.minBatch = deps.options.concurrency * 2;
    // A site's addons together leave a quarter of the handlers to the other sites (from 8 up, as
    // the flow share: below, a lone busy site would lose too much), and room for a claim's batch
    // among the rows held: a claim only runs with that much room.
    const concurrency = deps.options.concurrency;
    this.perSite = concurrency >= 8 ? concurrency - Math.floor(concurrency / 4) : concurrency;
    this.perSiteHeld = this.maxHeld - this.minBatch;
  }

  private get repository() {
    return new DeliveryRepository(this.deps.database.prisma);
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    const { options } = this.deps;
    this.unsubscribe = this.deps.pubSub.listen(DELIVERIES_DUE_CHANNEL, () => this.wake()).stop;
    const poll = setInterval(() => this.wake(), options.pollMs);
    const renew = setInterval(() => void this.renewLeases(), Math.max(100, Math.floor(options.leaseMs / 3)));
    poll.unref();
    renew.unref();
    this.timers.push(poll, renew);
    this.wake();
  }

  /** Claims more work if there are free slots (coalesces concurrent calls into one claim loop). */
  wake(): void {
    if (this.stopped) return;
    if (this.claiming) {
      this.claimAgain = true;
      return;
    }
    this.claiming = this.claimLoop().finally(() => {
      this.claiming = null;
    });
  }

  /** Number of handlers running in this instance now. */
  get inFlight(): number {
    return this.running.size;
  }

  private async claimLoop(): Promise<void> {
    do {
      this.claimAgain = false;
      const held = this.running.size + this.waiting.length;
      const free = this.maxHeld - held;
      // Claim in batches: one claim per finished handler would make the claim query the bottleneck.
      // With rows still held, their completions will wake the loop again.
      if (free <= 0 || this.stopped || (held > 0 && free < this.minBatch)) return;
      // Addons and flows at their share are left out; the others get what room they have left.
      const busy: string[] = [];
      const addonRoom: { addonId: string; room: number }[] = [];
      for (const [addonId, n] of this.heldPerAddon) {
        if (n >= this.perAddonHeld) busy.push(addonId);
        else addonRoom.push({ addonId, room: this.perAddonHeld - n });
      }
      const busyFlows: FlowCursor[] = [];
      const flowRoom: (FlowCursor & { room: number })[] = [];
      for (const [flow, n] of this.heldPerFlow) {
        if (n >= this.perFlowHeld) busyFlows.push(parseFlow(flow));
        else flowRoom.push({ ...parseFlow(flow), room: this.perFlowHeld - n });
      }
      const busySiteIds: string[] = [];
      const siteRoom: { siteId: string; room: number }[] = [];
      for (const [siteId, n] of this.heldPerSite) {
        if (n >= this.perSiteHeld) busySiteIds.push(siteId);
        else siteRoom.push({ siteId, room: this.perSiteHeld - n });
      }
      let claimed: ClaimedDelivery[];
      try {
        const claim = await DeliveryRepository.claimFast(this.deps.database.pool, {
          workerId: this.id,
          limit: free,
          perAddon: this.perAddonHeld,
          busyAddonIds: busy,
          busyFlows,
          perFlow: this.perFlowHeld,
          addonRoom,
          flowRoom,
          busySiteIds,
          perSite: this.perSiteHeld,
          siteRoom,
          leaseMs: this.deps.options.leaseMs,
          cursor: this.flowCursor,
        });
        claimed = claim.claimed;
        this.flowCursor = claim.cursor;
      } catch (error) {
        this.deps.onError?.(error, 'could not claim deliveries');
        return;
      }
      for (const row of claimed) this.accept(row);
      this.startWaiting();
      if (claimed.length === free) this.claimAgain = true;
    } while (this.claimAgain && !this.stopped);
  }

  /** A row this worker now holds: it waits for a slot. */
  private accept(row: ClaimedDelivery): void {
    if (row.previousStatus === 'RUNNING') {
      // The previous holder stopped renewing its lease (killed, or hung): that attempt is lost.
      this.pendingAttempts.push({
        deliveryId: row.id,
        attempt: row.attempts - 1,
        status: 'LEASE_EXPIRED',
        durationMs: this.deps.options.leaseMs,
        error: `Claimed by ${row.previousClaimedBy ?? 'another worker'}, whose lease expired before it finished.`,
        claimedBy: row.previousClaimedBy,
        startedAt: new Date(Date.now() - this.deps.options.leaseMs),
      });
    }
    this.heldPerAddon.set(row.addonId, (this.heldPerAddon.get(row.addonId) ?? 0) + 1);
    const flow = flowOf(row);
    this.heldPerFlow.set(flow, (this.heldPerFlow.get(flow) ?? 0) + 1);
    this.heldPerSite.set(row.siteId, (this.heldPerSite.get(row.siteId) ?? 0) + 1);
    this.waiting.push(row);
    this.publish([this.asRecord(row)]);
  }

  /**
   * Starts waiting rows while slots are free, skipping addons already at their share. A row of a
   * flow with nothing running goes first: a site's delivery of a shared addon does not wait behind
   * another site's rows of it claimed earlier.
   */
  private startWaiting(): void {
    // A row that finishes at once (DEAD without a run) calls back in here: the outer loop goes on.
    if (this.starting) return;
    this.starting = true;
    try {
      while (this.running.size < this.deps.options.concurrency && !this.stopped) {
        const index = this.nextToStart();
        if (index < 0) return;
        const [row] = this.waiting.splice(index, 1);
        this.begin(row);
      }
    } finally {
      this.starting = false;
    }
  }

  /**
   * Index in `waiting` of the row to start next; -1 when every waiting row's addon or flow is at
   * its share.
   */
  private nextToStart(): number {
    let first = -1;
    for (let i = 0; i < this.waiting.length; i += 1) {
      const row = this.waiting[i];
      if ((this.runningPerAddon.get(row.addonId) ?? 0) >= this.perAddon) continue;
      if ((this.runningPerSite.get(row.siteId) ?? 0) >= this.perSite) continue;
      const runningOfFlow = this.runningPerFlow.get(flowOf(row)) ?? 0;
      if (runningOfFlow >= this.perFlow) continue;
      if (runningOfFlow === 0) return i;
      if (first < 0) first = i;
    }
    return first;
  }

  private begin(row: ClaimedDelivery): void {
    const { maxAttempts } = row;
    this.running.set(row.id, row);
    this.runningPerAddon.set(row.addonId, (this.runningPerAddon.get(row.addonId) ?? 0) + 1);
    const flow = flowOf(row);
    this.runningPerFlow.set(flow, (this.runningPerFlow.get(flow) ?? 0) + 1);
    this.runningPerSite.set(row.siteId, (this.runningPerSite.get(row.siteId) ?? 0) + 1);
    const done = (outcome: DeliveryOutcome, attempt: NewAttempt | null) => {
      this.running.delete(row.id);
      decrement(this.runningPerAddon, row.addonId);
      decrement(this.runningPerFlow, flow);
      decrement(this.runningPerSite, row.siteId);
      decrement(this.heldPerAddon, row.addonId);
      decrement(this.heldPerFlow, flow);
      decrement(this.heldPerSite, row.siteId);
      this.enqueue(outcome, attempt);
      this.startWaiting();
      this.wake();
    };
    if (row.attempts > maxAttempts) {
      // Leases kept expiring (a handler that takes its instance down?): stop trying.
      done(
        {
          id: row.id,
          attempts: row.attempts,
          status: 'DEAD',
          delayMs: null,
          error: 'Gave up: the last attempt never finished.',
        },
        null,
      );
      return;
    }
    void this.execute(row).then(({ outcome, attempt }) => done(outcome, attempt));
  }

  private async execute(row: ClaimedDelivery): Promise<{ outcome: DeliveryOutcome; attempt: NewAttempt }> {
    const startedAt = new Date();
    const started = performance.now();
    const attemptOf = (status: string, error: string | null): NewAttempt => ({
      deliveryId: row.id,
      attempt: row.attempts,
      status,
      durationMs: performance.now() - started,
      error,
      claimedBy: this.id,
      startedAt,
    });
    try {
      const { target, handler, bundle } = await this.resolve(row);
      const input: HandlerEvent = {
        id: row.eventId,
        idempotencyKey: row.eventId,
        name: row.eventName,
        source: row.eventSource,
        sourceAddonId: row.eventSourceAddonId,
        siteId: row.siteId,
        data: row.eventData,
        createdAt: new Date(row.eventCreatedAt).toISOString(),
        deliveryId: row.id,
        attempt: row.attempts,
      };
      await this.deps.executions.run({
        target,
        bundle,
        entry: { kind: 'handler', name: handler },
        input,
        requestId: `delivery-${row.id}-${row.attempts}`,
      });
      return {
        outcome: { id: row.id, attempts: row.attempts, status: 'SUCCEEDED', delayMs: null, error: null },
        attempt: attemptOf('SUCCEEDED', null),
      };
    } catch (error) {
      const message = (error instanceof Error ? error.message : String(error)).slice(0, 1000);
      const code =
        error instanceof PermanentFailure
          ? 'NOT_DELIVERABLE'
          : error instanceof AppError
            ? error.code
            : ErrorCode.InternalServerError;
      const attempt = attemptOf(code, message);
      if (error instanceof PermanentFailure) {
        return {
          outcome: { id: row.id, attempts: row.attempts, status: 'DEAD', delayMs: null, error: message },
          attempt,
        };
      }
      if (error instanceof AddonQuarantinedError) {
        // The handler's version is quarantined on this site: the delivery waits the breaker out
        // instead of spending its attempts (and going DEAD) while nothing could run it.
        return {
          outcome: {
            id: row.id,
            attempts: row.attempts,
            status: 'PENDING',
            delayMs: error.retryAfterSeconds * 1000 + Math.round(Math.random() * 1000),
            uncount: true,
            error: message,
          },
          attempt,
        };
      }
      if (code === ErrorCode.TooManyConcurrentCalls) {
        // The addon is saturated by other callers: not the handler's failure, so not counted.
        return {
          outcome: {
            id: row.id,
            attempts: row.attempts,
            status: 'PENDING',
            delayMs: 50 + Math.round(Math.random() * 200),
            uncount: true,
            error: message,
          },
          attempt,
        };
      }
      if (row.attempts >= row.maxAttempts) {
        return {
          outcome: { id: row.id, attempts: row.attempts, status: 'DEAD', delayMs: null, error: message },
          attempt,
        };
      }
      const { backoffBaseMs, backoffMaxMs } = this.deps.options;
      return {
        outcome: {
          id: row.id,
          attempts: row.attempts,
          status: 'PENDING',
          delayMs: backoffDelay(row.attempts, backoffBaseMs, backoffMaxMs),
          error: message,
        },
        attempt,
      };
    }
  }

  /** The installation, version and handler the delivery runs with now (the pinned version may have changed). */
  private async resolve(row: ClaimedDelivery) {
    let target: ResolvedInstallation;
    try {
      target = await this.deps.lookup.require(row.siteId, row.addonId);
    } catch (error) {
      if (
        error instanceof AppError &&
        (error.code === ErrorCode.NotFound || error.code === ErrorCode.Conflict)
      ) {
        throw new PermanentFailure(`Not delivered: ${error.message}`);
      }
      throw error;
    }
    const { bundle, manifest } = await this.deps.bundles.load(target.installation.addonVersionId);
    const handler = resolveHandler(manifest.events.handles, row.eventName);
    if (!handler) {
      throw new PermanentFailure(
        `Not delivered: version ${bundle.version} of "${bundle.addonName}" no longer handles "${row.eventName}".`,
      );
    }
    return { target, handler, bundle };
  }

  private enqueue(outcome: DeliveryOutcome, attempt: NewAttempt | null): void {
    this.pending.push({ outcome, attempt });
    if (outcome.status === 'PENDING' && outcome.delayMs !== null)
      this.wakeAt(Date.now() + outcome.delayMs + 5);
    if (this.pending.length >= 200) void this.flush();
    else if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => void this.flush(), OUTCOME_LINGER_MS);
    }
  }

  /** Writes buffered outcomes and attempts; resolves when they are stored. */
  flush(): Promise<void> {
    if (this.flushTimer) {
      clearTimeout(this.flushTimer);
      this.flushTimer = null;
    }
    const batch = this.pending;
    const attempts = [...this.pendingAttempts, ...batch.flatMap((b) => (b.attempt ? [b.attempt] : []))];
    this.pending = [];
    this.pendingAttempts = [];
    if (batch.length === 0 && attempts.length === 0) return this.flushing;
    this.flushing = this.flushing.then(async () => {
      try {
        const changed = await DeliveryRepository.completeFast(
          this.deps.database.pool,
          batch.map((b) => b.outcome),
          attempts,
          (error) => this.deps.onError?.(error, 'could not store a delivery outcome'),
        );
        this.publish(changed);
      } catch (error) {
        // The rows stay RUNNING; their leases expire and they are tried again (at least once).
        this.deps.onError?.(error, 'could not store delivery outcomes');
      }
    });
    return this.flushing;
  }

  private publish(rows: DeliveryRecord[]): void {
    for (const row of rows) {
      this.deps.pubSub
        .publish('deliveries', toLiveDelivery(row))
        .catch((error: unknown) => this.deps.onError?.(error, 'could not publish a delivery change'));
    }
  }

  private asRecord(row: ClaimedDelivery): DeliveryRecord {
    return {
      id: row.id,
      eventId: row.eventId,
      eventName: row.eventName,
      siteId: row.siteId,
      installationId: row.installationId,
      addonId: row.addonId,
      addonName: row.addonName,
      handler: row.handler,
      status: row.status,
      attempts: row.attempts,
      maxAttempts: row.maxAttempts,
      nextAttemptAt: row.nextAttemptAt,
      lockedUntil: row.lockedUntil,
      claimedBy: row.claimedBy,
      lastError: row.lastError,
      createdAt: row.createdAt,
      updatedAt: row.updatedAt,
      completedAt: row.completedAt,
    };
  }

  /** Wakes at `at` (a retry becoming due), unless an earlier wake-up is already set. */
  private wakeAt(at: number): void {
    if (this.stopped) return;
    if (this.retryTimer && this.retryTimer.at <= at) return;
    if (this.retryTimer) clearTimeout(this.retryTimer.timer);
    const timer = setTimeout(
      () => {
        this.retryTimer = null;
        this.wake();
      },
      Math.max(0, at - Date.now()),
    );
    timer.unref();
    this.retryTimer = { at, timer };
  }

  private async renewLeases(): Promise<void> {
    const held = [...this.running.keys(), ...this.waiting.map((row) => row.id)];
    if (held.length === 0) return;
    try {
      await this.repository.renew(this.id, held, this.deps.options.leaseMs);
    } catch (error) {
      this.deps.onError?.(error, 'could not renew delivery leases');
    }
  }

  /**
   * Stops claiming and starting, gives running handlers up to `graceMs` to finish, hands the rest
   * and every waiting row back (due at once, the interrupted or unstarted attempt not counted) and
   * stores every outcome.
   */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.unsubscribe?.();
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    if (this.retryTimer) clearTimeout(this.retryTimer.timer);
    this.retryTimer = null;
    await this.claiming;
    const deadline = Date.now() + graceMs;
    while (this.running.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    await this.flush();
    const held = [...this.running.keys(), ...this.waiting.splice(0).map((row) => row.id)];
    if (held.length > 0) {
      await this.repository
        .release(this.id, held)
        .catch((error: unknown) => this.deps.onError?.(error, 'could not release deliveries'));
    }
  }
}

function decrement(counts: Map<string, number>, key: string): void {
  const left = (counts.get(key) ?? 1) - 1;
  if (left > 0) counts.set(key, left);
  else counts.delete(key);
}

/** The (site, addon) flow a delivery belongs to. */
function flowOf(row: ClaimedDelivery): string {
  return `${row.siteId}/${row.addonId}`;
}

function parseFlow(flow: string): FlowCursor {
  const [siteId, addonId] = flow.split('/');
  return { siteId, addonId };
}
