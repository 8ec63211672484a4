import type { Database, DbClient } from '../infrastructure/database/database.js';
import type { CapabilityScope, HostCapabilities } from '../sandbox/index.js';
import { AppError, ErrorCode, ForbiddenError, NotFoundError, ValidationError } from '../errors/index.js';
import { AddonStorageRepository, compareKeys } from '../storage/addon-storage.repository.js';
import { jsonValueProblem } from '../shared/storable-text.js';
import { idempotencyKeyProblem, type EventService } from '../events/event.service.js';
import type { InstallationLookup } from '../installations/installation-lookup.js';
import type { AddonBundleCache } from './addon-bundle.cache.js';
import type { ExecutionService } from './execution.service.js';
import type { ExecutionEffects, ExecutionEffectsRegistry } from './execution-effects.js';

/** Per addon and site: total bytes and keys ctx.storage may hold. */
export const STORAGE_QUOTA_BYTES = 10 * 1024 * 1024;
export const STORAGE_QUOTA_KEYS = 10_000;

/**
 * The host side of the addon SDK. The sandbox pool has already checked the permission and the
 * argument types. Storage writes and emitted events are not written here: they join the calling
 * execution's {@link ExecutionEffects}, committed together when the call succeeds; reads see them
 * over what PostgreSQL holds (through the call's transaction when it runs in one: lifecycle hooks).
 */
export class AddonHostCapabilities implements HostCapabilities {
  private executions: ExecutionService | null = null;

  constructor(
    private readonly deps: {
      database: Database;
      bundles: AddonBundleCache;
      lookup: InstallationLookup;
      events: EventService;
      effects: ExecutionEffectsRegistry;
    },
  ) {}

  /** Completes the cycle pool -> capabilities -> executions -> pool once everything exists. */
  attach(executions: ExecutionService): void {
    this.executions = executions;
  }

  /** The sandbox runs a call again from the start after its worker was killed: forget its first run. */
  discardCallEffects(scope: CapabilityScope): boolean {
    return scope.executionId !== undefined && this.deps.effects.forget(scope.executionId);
  }

  /** The effects of the call asking. */
  private effects(scope: CapabilityScope): ExecutionEffects {
    const effects = this.deps.effects.get(scope.executionId);
    if (!effects) {
      throw new AppError(
        ErrorCode.AddonError,
        'This call has already returned: SDK calls it did not await are not part of its effects.',
      );
    }
    return effects;
  }

  private db(scope: CapabilityScope): DbClient {
    return this.deps.effects.get(scope.executionId)?.transaction ?? this.deps.database.prisma;
  }

  private storage(scope: CapabilityScope) {
    return {
      effects: this.effects(scope),
      repository: new AddonStorageRepository(this.db(scope)),
      where: { addonId: scope.addonId, siteId: scope.siteId },
    };
  }

  async storageGet(scope: CapabilityScope, key: string): Promise<unknown | null> {
    storableOrThrow({ key });
    const { effects, repository, where } = this.storage(scope);
    const written = effects.storageState(where.addonId, where.siteId, key);
    if (written) return written.deleted ? null : written.value;
    return repository.get(where, key);
  }

  async storageSet(scope: CapabilityScope, key: string, value: unknown): Promise<void> {
    storableOrThrow({ key, value });
    const { effects, repository, where } = this.storage(scope);
    const size = Buffer.byteLength(JSON.stringify(value));
    // What the scope will hold once this call commits: the stored rows it has not touched, plus
    // its own writes.
    const changes = effects.storageChanges(where.addonId, where.siteId);
    const stored = await repository.usedBytes(where, [key, ...changes.keys()]);
    let bytes = stored.bytes + size;
    let keys = stored.keys + 1;
    for (const change of changes.values()) {
      if (change.key === key || change.deleted) continue;
      bytes += change.sizeBytes;
      keys += 1;
    }
    if (bytes > STORAGE_QUOTA_BYTES) {
      throw new AppError(
        ErrorCode.StorageQuotaExceeded,
        `ctx.storage.set: this addon's storage on this site would hold ${bytes} bytes; the quota is ${STORAGE_QUOTA_BYTES}.`,
      );
    }
    if (keys > STORAGE_QUOTA_KEYS) {
      throw new AppError(
        ErrorCode.StorageQuotaExceeded,
        `ctx.storage.set: at most ${STORAGE_QUOTA_KEYS} keys are allowed.`,
      );
    }
    effects.setStorage({ ...where, key, deleted: false, value, sizeBytes: size });
  }

  async storageDelete(scope: CapabilityScope, key: string): Promise<boolean> {
    storableOrThrow({ key });
    const { effects, repository, where } = this.storage(scope);
    const written = effects.storageState(where.addonId, where.siteId, key);
    const existed = written ? !written.deleted : await repository.has(where, key);
    if (existed || written) effects.setStorage({ ...where, key, deleted: true });
    return existed;
  }

  async storageList(scope: CapabilityScope, opts: { prefix?: string; limit?: number; cursor?: string }) {
    storableOrThrow({ prefix: opts.prefix, cursor: opts.cursor });
    const { effects, repository, where } = this.storage(scope);
    const limit = opts.limit ?? 100;
    const { prefix, cursor } = opts;
    const inRange = (key: string) =>
      (!prefix || key.startsWith(prefix)) && (cursor === undefined || compareKeys(key, cursor) > 0);
    const changes = [...effects.storageChanges(where.addonId, where.siteId).values()].filter((c) =>
      inRange(c.key),
    );
    if (changes.length === 0) return repository.list(where, { prefix, cursor, limit });
    // The stored page, long enough that the call's deletes cannot leave it short, merged with the
    // call's own writes, in the same (code point) order.
    const deletes = changes.filter((c) => c.deleted).length;
    const page = await repository.list(where, { prefix, cursor, limit: limit + deletes });
    const keys = new Set(page.keys);
    for (const change of changes) {
      if (change.deleted) keys.delete(change.key);
      else keys.add(change.key);
    }
    let merged = [...keys].sort(compareKeys);
    // Keys written by the call that sort after the end of a partial stored page belong to later pages.
    if (page.cursor !== null) merged = merged.filter((key) => compareKeys(key, page.cursor!) <= 0);
    const more = merged.length > limit || page.cursor !== null;
    const out = merged.slice(0, limit);
    return { keys: out, cursor: more && out.length > 0 ? out[out.length - 1] : null };
  }

  async emitEvent(
    scope: CapabilityScope,
    name: string,
    data: unknown,
    options: { idempotencyKey?: string } = {},
  ): Promise<{ id: string; duplicate: boolean }> {
    const effects = this.effects(scope);
    const key = options.idempotencyKey ?? null;
    if (key !== null) {
      const problem = idempotencyKeyProblem(key, 'idempotencyKey');
      if (problem) throw ValidationError.of('ctx.events.emit options', [problem]);
      const earlier =
        effects.emitted(scope.siteId, scope.addonName, key)?.event ??
        (await this.deps.events.findByIdempotencyKey(scope.siteId, scope.addonName, key, this.db(scope)));
      if (earlier) return { id: earlier.id, duplicate: true };
    }
    const { manifest } = await this.deps.bundles.load(scope.versionId, this.db(scope));
    const event = this.deps.events.prepareFromAddon(
      { addonId: scope.addonId, addonName: scope.addonName, manifest },
      { name, data, siteId: scope.siteId, requestId: scope.requestId },
    );
    this.deps.events.admitSiteEvent(scope.siteId, 'ctx.events.emit', scope.addonId);
    effects.addEvent({ event, idempotencyKey: key }, Buffer.byteLength(JSON.stringify(event.data)));
    return { id: event.id, duplicate: false };
  }

  async callAddon(
    scope: CapabilityScope,
    addonName: string,
    functionName: string,
    data: unknown,
  ): Promise<unknown> {
    if (!this.executions) throw new Error('AddonHostCapabilities used before attach()');
    const { manifest } = await this.deps.bundles.load(scope.versionId, this.db(scope));
    if (!(addonName in manifest.dependencies)) {
      throw new ForbiddenError(`ctx.addons.call: "${addonName}" is not a declared dependency.`);
    }
    let target;
    try {
      target = await this.deps.lookup.require(scope.siteId, addonName, this.db(scope));
    } catch (error) {
      if (error instanceof NotFoundError) {
        throw new AppError(
          ErrorCode.NotFound,
          `ctx.addons.call: "${addonName}" is not installed on this site.`,
        );
      }
      throw error;
    }
    return this.executions.runFunction(target, functionName, data, {
      callDepth: scope.callDepth + 1,
      requestId: scope.requestId,
      db: this.db(scope),
      // The dependency's effects commit with this call's (see ExecutionEffects).
      parentExecutionId: scope.executionId,
      // Nothing outlives its caller: the dependency gets what is left of the caller's time.
      deadlineAt: scope.deadlineAt,
    });
  }
}

/** Keys and values PostgreSQL could not store are the addon's error (BAD_USER_INPUT), not a failed query. */
function storableOrThrow(fields: Record<string, unknown>): void {
  for (const [field, value] of Object.entries(fields)) {
    if (value === undefined) continue;
    const problem = jsonValueProblem(value, field);
    if (problem) throw ValidationError.of('ctx.storage call', [problem]);
  }
}
