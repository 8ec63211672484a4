import type { DbClient } from '../infrastructure/database/database.js';
import { AppError, ErrorCode } from '../errors/index.js';
import type { EventService, PendingEvent } from '../events/event.service.js';
import type { StorageChange } from '../events/effects.repository.js';

/**
 * Bytes of storage values and event data one call (with the dependency calls it makes) may hold
 * until it commits: what the API process keeps in memory for it.
 */
export const MAX_EFFECT_BYTES_PER_CALL = 8 * 1024 * 1024;

const storageKey = (addonId: string, siteId: string, key: string) => `${addonId}\u0000${siteId}\u0000${key}`;

/**
 * The storage writes and emitted events of one call, held until the call ends: committed in one
 * statement when it succeeds, dropped when it fails. Reads of the call (and of the dependency
 * calls it makes) see them. A dependency call (`ctx.addons.call`) gets a layer of its own on top
 * of its caller's: merged into the caller's when it succeeds, so it commits with the call that
 * made it, and dropped when it fails, even if the caller carries on.
 */
export class ExecutionEffects {
  private readonly storage = new Map<string, StorageChange>();
  private readonly events: PendingEvent[] = [];
  /** Bytes held by this layer and the layers it was merged from. */
  private bytes = 0;
  /** Bytes this layer itself reserved (counted at the root), given back by {@link forget}. */
  private own = 0;
  /** Set when the call ended: SDK calls still arriving then belong to no commit. */
  private ended = false;
  /** Whether a dependency call's effects were merged into this layer. */
  hasMergedDependencies = false;

  constructor(
    readonly parent: ExecutionEffects | null,
    /** The transaction the call runs in (lifecycle hooks), else null: reads and the commit use it. */
    readonly db: DbClient | null,
  ) {}

  /** This layer, then its caller's, out to the outermost call's. */
  private *layers(): Generator<ExecutionEffects> {
    yield this;
    if (this.parent) yield* this.parent.layers();
  }

  /** The outermost call's transaction, if any. */
  get transaction(): DbClient | null {
    return this.parent ? this.parent.transaction : this.db;
  }

  /** The state of a key after this call's writes so far; undefined when the call has not touched it. */
  storageState(addonId: string, siteId: string, key: string): StorageChange | undefined {
    const id = storageKey(addonId, siteId, key);
    for (const layer of this.layers()) {
      const change = layer.storage.get(id);
      if (change) return change;
    }
    return undefined;
  }

  /** Every key of (addon, site) this call has written or deleted, in its latest state. */
  storageChanges(addonId: string, siteId: string): Map<string, StorageChange> {
    const out = new Map<string, StorageChange>();
    // Outermost first, so a dependency's writes override its caller's.
    for (const layer of [...this.layers()].reverse()) {
      for (const change of layer.storage.values()) {
        if (change.addonId === addonId && change.siteId === siteId) out.set(change.key, change);
      }
    }
    return out;
  }

  setStorage(change: StorageChange): void {
    this.assertOpen();
    const id = storageKey(change.addonId, change.siteId, change.key);
    const previous = this.storage.get(id);
    this.reserve(sizeOf(change) - (previous ? sizeOf(previous) : 0));
    this.storage.set(id, change);
  }

  /** An event this call emitted with `idempotencyKey` on the site, as `source`. */
  emitted(siteId: string, source: string, idempotencyKey: string): PendingEvent | undefined {
    for (const layer of this.layers()) {
      const found = layer.events.find(
        (e) => e.idempotencyKey === idempotencyKey && e.event.siteId === siteId && e.event.source === source,
      );
      if (found) return found;
    }
    return undefined;
  }

  addEvent(pending: PendingEvent, dataBytes: number): void {
    this.assertOpen();
    this.reserve(dataBytes);
    this.events.push(pending);
  }

  /**
   * Drops what this layer holds, for a call the sandbox runs again from the start (its worker was
   * killed under it): the second run must not see or commit the first run's writes and events.
   */
  forget(): void {
    this.storage.clear();
    this.events.length = 0;
    this.root().bytes -= this.own;
    this.own = 0;
  }

  /** Ends the call: later SDK calls are refused. */
  end(): void {
    this.ended = true;
  }

  /** A dependency call succeeded: its effects become its caller's. */
  mergeIntoParent(): void {
    const parent = this.parent!;
    parent.assertOpen();
    parent.hasMergedDependencies = true;
    parent.own += this.own;
    for (const [id, change] of this.storage) parent.storage.set(id, change);
    parent.events.push(...this.events);
    // The parent's byte count already includes this layer's (see reserve).
  }

  /** What to commit (the outermost call, once it ended). */
  contents(): { events: PendingEvent[]; storage: StorageChange[] } {
    return { events: this.events, storage: [...this.storage.values()] };
  }

  private reserve(bytes: number): void {
    const root = this.root();
    if (root.bytes + bytes > MAX_EFFECT_BYTES_PER_CALL) {
      throw new AppError(
        ErrorCode.StorageQuotaExceeded,
        `One call may hold at most ${MAX_EFFECT_BYTES_PER_CALL} bytes of storage writes and event data until it commits.`,
      );
    }
    root.bytes += bytes;
    this.own += bytes;
  }

  private root(): ExecutionEffects {
    return this.parent ? this.parent.root() : this;
  }

  private assertOpen(): void {
    if (this.ended) {
      throw new AppError(
        ErrorCode.AddonError,
        'This call has already returned: SDK calls it did not await are not part of its effects.',
      );
    }
  }
}

function sizeOf(change: StorageChange): number {
  return change.deleted ? 0 : change.sizeBytes;
}

/**
 * The effects of the calls running now, by execution id (see CapabilityScope.executionId): the
 * execution service opens and settles them, the host capabilities read and add to them.
 */
export class ExecutionEffectsRegistry {
  private readonly running = new Map<string, ExecutionEffects>();

  constructor(private readonly deps: { events: EventService; root: DbClient }) {}

  /**
   * Opens the effects of a call. A dependency call names its caller (`parentId`); an outermost
   * call may run inside a transaction (`db`).
   */
  begin(
    executionId: string,
    opts: { parentId?: string | null; db?: DbClient | null } = {},
  ): ExecutionEffects {
    const parent = opts.parentId ? (this.running.get(opts.parentId) ?? null) : null;
    if (opts.parentId && !parent) {
      // Its caller returned without waiting for it: nothing could commit what it does.
      throw new AppError(
        ErrorCode.AddonError,
        'The call that made this dependency call has already returned.',
      );
    }
    const effects = new ExecutionEffects(parent, parent ? null : (opts.db ?? null));
    this.running.set(executionId, effects);
    return effects;
  }

  /** The open effects of a running call. */
  get(executionId: string | undefined): ExecutionEffects | undefined {
    return executionId === undefined ? undefined : this.running.get(executionId);
  }

  /**
   * The call succeeded: a dependency call's effects join its caller's; an outermost call's are
   * committed (in its transaction, if it has one) before this resolves.
   * @throws whatever the commit throws: then nothing was committed.
   */
  async settle(executionId: string, effects: ExecutionEffects): Promise<void> {
    effects.end();
    this.running.delete(executionId);
    if (effects.parent) {
      effects.mergeIntoParent();
      return;
    }
    await this.deps.events.commit(effects.db ?? this.deps.root, effects.contents());
  }

  /**
   * The sandbox will run a still-open call again from the start: drops what it holds so far.
   * Refused (false) while a dependency call it made is still open, or when a dependency's effects
   * were merged into it: those cannot be taken back layer by layer.
   */
  forget(executionId: string): boolean {
    const effects = this.running.get(executionId);
    if (!effects || effects.hasMergedDependencies) return false;
    for (const other of this.running.values()) if (other.parent === effects) return false;
    effects.forget();
    return true;
  }

  /** The call failed (or its commit did): its effects are dropped. */
  discard(executionId: string, effects: ExecutionEffects): void {
    effects.end();
    if (this.running.get(executionId) === effects) this.running.delete(executionId);
  }
}
