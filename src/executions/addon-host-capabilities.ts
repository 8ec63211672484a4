import type { Prisma } from '../generated/prisma/client.js';
import type { Database, DbClient } from '../infrastructure/database/database.js';
import type { CapabilityScope, HostCapabilities } from '../sandbox/index.js';
import { AppError, ErrorCode, ForbiddenError, NotFoundError, ValidationError } from '../errors/index.js';
import { AddonStorageRepository } from '../storage/addon-storage.repository.js';
import { jsonValueProblem } from '../shared/storable-text.js';
import type { EventService } from '../events/event.service.js';
import type { InstallationLookup } from '../installations/installation-lookup.js';
import type { AddonBundleCache } from './addon-bundle.cache.js';
import type { ExecutionService } from './execution.service.js';

/** Per addon and site: total bytes and keys ctx.storage may hold. */
export const STORAGE_QUOTA_BYTES = 10 * 1024 * 1024;
export const STORAGE_QUOTA_KEYS = 10_000;

/**
 * The host side of the addon SDK. The sandbox pool has already checked the permission and the
 * argument types; this class does the work against PostgreSQL, inside the caller's transaction
 * when the run belongs to one (lifecycle hooks), so a failed hook leaves nothing behind.
 */
export class AddonHostCapabilities implements HostCapabilities {
  private readonly transactions = new Map<string, Prisma.TransactionClient>();
  private executions: ExecutionService | null = null;

  constructor(
    private readonly deps: {
      database: Database;
      bundles: AddonBundleCache;
      lookup: InstallationLookup;
      events: EventService;
    },
  ) {}

  /** Completes the cycle pool -> capabilities -> executions -> pool once everything exists. */
  attach(executions: ExecutionService): void {
    this.executions = executions;
  }

  /** Runs `work` with capability calls of request `requestId` bound to transaction `tx`. */
  async withTransaction<T>(
    requestId: string,
    tx: Prisma.TransactionClient,
    work: () => Promise<T>,
  ): Promise<T> {
    this.transactions.set(requestId, tx);
    try {
      return await work();
    } finally {
      this.transactions.delete(requestId);
    }
  }

  private db(scope: CapabilityScope): DbClient {
    return (scope.requestId && this.transactions.get(scope.requestId)) || this.deps.database.prisma;
  }

  private storage(scope: CapabilityScope) {
    return {
      repository: new AddonStorageRepository(this.db(scope)),
      key: { addonId: scope.addonId, siteId: scope.siteId },
    };
  }

  storageGet(scope: CapabilityScope, key: string): Promise<unknown | null> {
    storableOrThrow({ key });
    const { repository, key: where } = this.storage(scope);
    return repository.get(where, key);
  }

  async storageSet(scope: CapabilityScope, key: string, value: unknown): Promise<void> {
    storableOrThrow({ key, value });
    const { repository, key: where } = this.storage(scope);
    const size = Buffer.byteLength(JSON.stringify(value));
    const used = await repository.usedBytes(where, key);
    if (used.bytes + size > STORAGE_QUOTA_BYTES) {
      throw new AppError(
        ErrorCode.StorageQuotaExceeded,
        `ctx.storage.set: this addon's storage on this site would hold ${used.bytes + size} bytes; the quota is ${STORAGE_QUOTA_BYTES}.`,
      );
    }
    if (used.keys + 1 > STORAGE_QUOTA_KEYS) {
      throw new AppError(
        ErrorCode.StorageQuotaExceeded,
        `ctx.storage.set: at most ${STORAGE_QUOTA_KEYS} keys are allowed.`,
      );
    }
    await repository.set(where, key, value, size);
  }

  storageDelete(scope: CapabilityScope, key: string): Promise<boolean> {
    storableOrThrow({ key });
    const { repository, key: where } = this.storage(scope);
    return repository.delete(where, key);
  }

  storageList(scope: CapabilityScope, opts: { prefix?: string; limit?: number; cursor?: string }) {
    storableOrThrow({ prefix: opts.prefix, cursor: opts.cursor });
    const { repository, key: where } = this.storage(scope);
    return repository.list(where, { prefix: opts.prefix, cursor: opts.cursor, limit: opts.limit ?? 100 });
  }

  async emitEvent(scope: CapabilityScope, name: string, data: unknown): Promise<{ id: string }> {
    const { manifest } = await this.deps.bundles.load(scope.versionId, this.db(scope));
    const event = await this.deps.events.emitFromAddon(
      this.db(scope),
      { addonId: scope.addonId, addonName: scope.addonName, manifest },
      { name, data, siteId: scope.siteId, requestId: scope.requestId },
    );
    return { id: event.id };
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
