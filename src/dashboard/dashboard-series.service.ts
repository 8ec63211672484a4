import type { Database } from '../infrastructure/database/database.js';
import type { Actor } from '../auth/actor.js';
import { ForbiddenError, ValidationError } from '../errors/index.js';
import { isUuid } from '../shared/ids.js';
import type { Visibility, VisibilityResolver } from '../auth/visibility.js';
import { DashboardSeriesRepository, type ExecutionSlotRow } from './dashboard-series.repository.js';

/** One point every 5 s over the last 15 minutes: 180 points per line. */
export const SERIES_STEP_SECONDS = 5;
export const SERIES_WINDOW_SECONDS = 15 * 60;
const SLOTS = SERIES_WINDOW_SECONDS / SERIES_STEP_SECONDS;
/** Lines per chart: more would be unreadable; the rest are counted in `hiddenAddons`. */
export const MAX_CHART_ADDONS = 8;
/** Per slot, at most this many per-site rows are kept (per-addon rows always are). */
const MAX_SITE_ROWS_PER_SLOT = 5000;
/** The sampler stops after this long without a dashboard asking, and starts again on demand. */
const IDLE_STOP_MS = 30 * 60_000;

interface Point {
  executions: number;
  errors: number;
  p95Ms: number | null;
}

interface Slot {
  /** By addon id, over every site. */
  addons: Map<string, Point>;
  /** By `${siteId} ${addonId}`. */
  sites: Map<string, Point>;
  /** Sampled at the end of the slot; absent for slots before sampling began. */
  backlog: { addons: Map<string, number>; sites: Map<string, number> } | null;
}

/** One addon's lines; `null` where there is nothing to say (no runs, no sample). */
export interface AddonSeries {
  addonId: string;
  addonName: string;
  executionsPerSecond: number[];
  p95Ms: (number | null)[];
  errorRate: (number | null)[];
  deliveryBacklog: (number | null)[];
}

export interface DashboardSeries {
  stepSeconds: number;
  /** Start of each slot. */
  timestamps: Date[];
  addons: AddonSeries[];
  /** Addons with activity in the window beyond the {@link MAX_CHART_ADDONS} shown. */
  hiddenAddons: number;
}

const siteKey = (siteId: string, addonId: string) => `${siteId} ${addonId}`;

/**
 * The dashboard's charts: executions per second, p95 latency, error rate and delivery backlog per
 * addon over the last 15 minutes, in 5-second slots. A sampler (running while dashboards ask, in
 * every instance that is asked) reads the execution records of the last two slots every 5 s (the
 * records are shared by every instance; re-reading a slot once catches records written late) and
 * the delivery backlog, and keeps 15 minutes of per-addon and per-site figures in memory, so a
 * dashboard's refresh costs no query and the work does not grow with the number of viewers. When
 * it starts it reads the whole window once; the backlog, which has no history, starts then.
 */
export class DashboardSeriesService {
  private readonly slots = new Map<number, Slot>();
  private readonly names = new Map<string, string>();
  private timer: NodeJS.Timeout | null = null;
  private ticking: Promise<void> | null = null;
  private lastAsked = 0;
  private filledUpTo: number | null = null;
  private closed = false;

  constructor(private readonly deps: { database: Database; visibility: VisibilityResolver }) {}

  /** The lines a caller may see: an admin everything (or one site's), a site key its own site's, a developer its addons'. */
  async series(actor: Actor, args: { siteId?: string | null } = {}): Promise<DashboardSeries> {
    const visibility = await this.deps.visibility.of(actor);
    const requested = args.siteId || null;
    if (requested && !isUuid(requested)) {
      throw ValidationError.of('arguments', [{ field: 'siteId', message: 'is not a site id' }]);
    }
    if (visibility.kind === 'site' && requested && requested !== visibility.siteId) {
      throw new ForbiddenError('A site key sees its own statistics only.');
    }
    this.lastAsked = Date.now();
    await this.ensureRunning();
    return this.build(visibility, visibility.kind === 'site' ? visibility.siteId : requested);
  }

  /** Stops the sampler (at shutdown). */
  close(): void {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  private async ensureRunning(): Promise<void> {
    if (this.closed) return;
    if (!this.timer) {
      this.timer = setInterval(() => {
        if (Date.now() - this.lastAsked > IDLE_STOP_MS) {
          clearInterval(this.timer!);
          this.timer = null;
          return;
        }
        void this.tick().catch(() => undefined);
      }, SERIES_STEP_SECONDS * 1000);
      this.timer.unref();
    }
    // The first answer waits for the window to be read; later ones use what the sampler has.
    if (this.filledUpTo === null || this.filledUpTo < currentSlot() - 2) await this.tick();
  }

  /** Reads the slots completed since the last tick (the last two at least), and samples the backlog. */
  private tick(): Promise<void> {
    if (this.ticking) return this.ticking;
    this.ticking = (async () => {
      const now = currentSlot();
      const from =
        this.filledUpTo === null || this.filledUpTo < now - SLOTS ? now - SLOTS : this.filledUpTo - 1;
      const repository = new DashboardSeriesRepository(this.deps.database.prisma);
      const [rows, backlog] = await Promise.all([
        repository.executionSlots(slotStart(from), slotStart(now), SERIES_STEP_SECONDS),
        repository.backlog(),
      ]);
      for (let slot = from; slot < now; slot += 1) {
        const existing = this.slots.get(slot);
        this.slots.set(slot, { addons: new Map(), sites: new Map(), backlog: existing?.backlog ?? null });
      }
      this.store(rows);
      const sampled: NonNullable<Slot['backlog']> = { addons: new Map(), sites: new Map() };
      for (const row of backlog) {
        this.names.set(row.addonId, row.addonName);
        if (row.siteId === null) sampled.addons.set(row.addonId, row.backlog);
        else if (sampled.sites.size < MAX_SITE_ROWS_PER_SLOT)
          sampled.sites.set(siteKey(row.siteId, row.addonId), row.backlog);
      }
      this.slots.get(now - 1)!.backlog = sampled;
      for (const slot of this.slots.keys()) if (slot < now - SLOTS) this.slots.delete(slot);
      this.filledUpTo = now;
    })().finally(() => {
      this.ticking = null;
    });
    return this.ticking;
  }

  private store(rows: ExecutionSlotRow[]): void {
    for (const row of rows) {
      const slot = this.slots.get(row.slot);
      if (!slot) continue;
      this.names.set(row.addonId, row.addonName);
      const point = { executions: row.executions, errors: row.errors, p95Ms: row.p95Ms };
      if (row.siteId === null) slot.addons.set(row.addonId, point);
      else if (slot.sites.size < MAX_SITE_ROWS_PER_SLOT)
        slot.sites.set(siteKey(row.siteId, row.addonId), point);
    }
  }

  private build(visibility: Visibility, siteId: string | null): DashboardSeries {
    const end = this.filledUpTo ?? currentSlot();
    const indexes = Array.from({ length: SLOTS }, (_, i) => end - SLOTS + i);
    const allowed = (addonId: string) => visibility.kind !== 'addons' || visibility.addonIds.has(addonId);
    const pointOf = (slot: Slot | undefined, addonId: string) =>
      siteId ? slot?.sites.get(siteKey(siteId, addonId)) : slot?.addons.get(addonId);
    const backlogOf = (slot: Slot | undefined, addonId: string): number | null => {
      if (!slot?.backlog) return null;
      return (
        (siteId ? slot.backlog.sites.get(siteKey(siteId, addonId)) : slot.backlog.addons.get(addonId)) ?? 0
      );
    };

    // Which addons have anything to show, busiest first.
    const activity = new Map<string, number>();
    for (const index of indexes) {
      const slot = this.slots.get(index);
      if (!slot) continue;
      const points = siteId ? slot.sites : slot.addons;
      for (const [key, point] of points) {
        const addonId = siteId ? key.slice(siteId.length + 1) : key;
        if (siteId && !key.startsWith(`${siteId} `)) continue;
        if (allowed(addonId)) activity.set(addonId, (activity.get(addonId) ?? 0) + point.executions);
      }
      const backlog = siteId ? slot.backlog?.sites : slot.backlog?.addons;
      for (const [key, count] of backlog ?? []) {
        const addonId = siteId ? key.slice(siteId.length + 1) : key;
        if (siteId && !key.startsWith(`${siteId} `)) continue;
        if (allowed(addonId) && count > 0) activity.set(addonId, (activity.get(addonId) ?? 0) + count);
      }
    }
    const ranked = [...activity.entries()]
      .sort((a, b) => b[1] - a[1] || (this.names.get(a[0]) ?? '').localeCompare(this.names.get(b[0]) ?? ''))
      .map(([addonId]) => addonId);
    const shown = ranked.slice(0, MAX_CHART_ADDONS);

    const addons = shown.map((addonId): AddonSeries => {
      const series: AddonSeries = {
        addonId,
        addonName: this.names.get(addonId) ?? addonId,
        executionsPerSecond: [],
        p95Ms: [],
        errorRate: [],
        deliveryBacklog: [],
      };
      for (const index of indexes) {
        const slot = this.slots.get(index);
        const point = pointOf(slot, addonId);
        series.executionsPerSecond.push((point?.executions ?? 0) / SERIES_STEP_SECONDS);
        series.p95Ms.push(point?.p95Ms ?? null);
        series.errorRate.push(point && point.executions > 0 ? point.errors / point.executions : null);
        series.deliveryBacklog.push(backlogOf(slot, addonId));
      }
      return series;
    });
    return {
      stepSeconds: SERIES_STEP_SECONDS,
      timestamps: indexes.map(slotStart),
      addons,
      hiddenAddons: ranked.length - shown.length,
    };
  }
}

function currentSlot(): number {
  return Math.floor(Date.now() / 1000 / SERIES_STEP_SECONDS);
}

function slotStart(slot: number): Date {
  return new Date(slot * SERIES_STEP_SECONDS * 1000);
}
