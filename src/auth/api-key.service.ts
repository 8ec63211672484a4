import { ApiKeyRole } from '../generated/prisma/client.js';
import { ValidationError, UnauthenticatedError } from '../errors/index.js';
import type { Database } from '../infrastructure/database/database.js';
import { ApiKeyRepository, type ApiKeyRecord } from './api-key.repository.js';
import { requireAdmin, type Actor } from './actor.js';
import {
  parseAuthorizationHeader,
  displayPrefix,
  generateApiKey,
  hashApiKey,
  API_KEY_PREFIX,
} from './api-key.js';
import { RefreshingCache } from '../shared/refreshing-cache.js';

export interface CreateApiKeyInput {
  role: 'admin' | 'developer' | 'site';
  name?: string | null;
  siteId?: string | null;
  /** Developer keys act for this developer; it is created on first use. */
  developerName?: string | null;
}

export interface CreatedApiKey {
  /** The only time the key is visible: it is stored hashed. */
  key: string;
  record: ApiKeyRecord;
}

const roleByName = {
  admin: ApiKeyRole.ADMIN,
  developer: ApiKeyRole.DEVELOPER,
  site: ApiKeyRole.SITE,
} as const;
const MAX_CACHED_KEYS = 10_000;

/**
 * Counts a database look-up of a key against its caller before it is made; throws (a
 * RateLimitedError) to refuse it. Unknown keys are never cached, so each one is a read.
 */
export type KeyLookupAdmission = () => Promise<void>;

/** How long past its TTL a cached key may still be answered while it is re-read. */
const MAX_STALE_KEY_MS = 5_000;

/** Issues API keys and turns a presented key into an {@link Actor}. */
export class ApiKeyService {
  private readonly repository: ApiKeyRepository;
  /**
   * hash -> actor; avoids a database round trip on every request. A key in use is re-read in the
   * background when its entry expires, so requests never wait on that read; null when caching is off.
   */
  private readonly cache: RefreshingCache<Actor> | null;

  constructor(
    private readonly database: Database,
    cacheSeconds: number,
  ) {
    this.repository = new ApiKeyRepository(database.prisma);
    const ttlMs = cacheSeconds * 1000;
    this.cache =
      ttlMs > 0
        ? new RefreshingCache((hash) => this.readActor(hash), {
            ttlMs,
            staleMs: Math.min(ttlMs, MAX_STALE_KEY_MS),
            maxEntries: MAX_CACHED_KEYS,
            maxBytes: 8 * 1024 * 1024,
          })
        : null;
  }

  /**
   * Resolves an `Authorization` header. No header, an empty one or `Bearer` alone: anonymous. A
   * header that is not `Bearer <key>`, or an unknown or revoked key: {@link UnauthenticatedError}
   * saying which, never a silent downgrade to anonymous.
   */
  async authenticateHeader(header: string | undefined, admitLookup?: KeyLookupAdmission): Promise<Actor> {
    const parsed = parseAuthorizationHeader(header);
    if (parsed.kind === 'none') return { kind: 'anonymous' };
    if (parsed.kind === 'malformed') throw new UnauthenticatedError(parsed.message);
    return this.authenticate(parsed.key, admitLookup);
  }

  /**
   * Resolves a raw key (also used by WebSocket `connection_init`). `admitLookup` runs before a key
   * this instance has not cached is read from the database, and may refuse by throwing.
   */
  async authenticate(key: string, admitLookup?: KeyLookupAdmission): Promise<Actor> {
    if (!key.startsWith(API_KEY_PREFIX) || key.length > 200)
      throw new UnauthenticatedError(`Invalid API key: ThemePress keys start with "${API_KEY_PREFIX}".`);
    const hash = hashApiKey(key);
    const cached = this.cache?.peek(hash);
    if (cached !== undefined) return cached;
    await admitLookup?.();
    return this.cache === null ? this.readActor(hash) : this.cache.get(hash);
  }

  private async readActor(hash: string): Promise<Actor> {
    const record = await this.repository.findActiveByHash(hash);
    if (!record) throw new UnauthenticatedError('Invalid API key.');
    return toActor(record);
  }

  /** Creates a key; only admins may (the CLI acts as admin with direct database access). */
  async create(actor: Actor, input: CreateApiKeyInput): Promise<CreatedApiKey> {
    requireAdmin(actor);
    const role = roleByName[input.role];
    if (!role) {
      throw ValidationError.of('API key', [{ field: 'role', message: 'must be admin, developer or site' }]);
    }
    if (input.role === 'site' && !input.siteId) {
      throw ValidationError.of('API key', [{ field: 'siteId', message: 'is required for a site key' }]);
    }
    if (input.role === 'developer' && !input.developerName) {
      throw ValidationError.of('API key', [
        { field: 'developerName', message: 'is required for a developer key' },
      ]);
    }
    if (input.developerName && !/^[A-Za-z0-9][A-Za-z0-9 ._-]{0,99}$/.test(input.developerName)) {
      throw ValidationError.of('API key', [
        {
          field: 'developerName',
          message: 'must be 1-100 letters, digits, spaces, dots, dashes or underscores',
        },
      ]);
    }
    const key = generateApiKey();
    const record = await this.database.transaction(async (tx) => {
      const repository = new ApiKeyRepository(tx);
      const developer =
        input.role === 'developer' ? await repository.findOrCreateDeveloper(input.developerName!) : null;
      if (input.role === 'site') await assertSiteExists(tx, input.siteId!);
      return repository.create({
        name: input.name?.trim() || `${input.role} key`,
        prefix: displayPrefix(key),
        hash: hashApiKey(key),
        role,
        siteId: input.role === 'site' ? input.siteId : null,
        developerId: developer?.id ?? null,
      });
    });
    return { key, record };
  }

  /**
   * Revokes a key at once on this instance; other instances stop accepting it within the cache TTL
   * (plus, for a key in use, the few milliseconds its background re-read takes; at most
   * MAX_STALE_KEY_MS more for a key idle since its entry expired).
   */
  async revoke(actor: Actor, id: string): Promise<ApiKeyRecord> {
    requireAdmin(actor);
    const record = await this.repository.revoke(id);
    this.cache?.clear();
    return record;
  }

  list(actor: Actor): Promise<ApiKeyRecord[]> {
    requireAdmin(actor);
    return this.repository.list({});
  }

  /** Makes the bootstrap admin key from the environment valid (idempotent on every start). */
  async ensureBootstrapAdmin(key: string): Promise<void> {
    await this.repository.upsertByHash({
      name: 'bootstrap admin (ADMIN_API_KEY)',
      prefix: displayPrefix(key),
      hash: hashApiKey(key),
      role: ApiKeyRole.ADMIN,
    });
  }
}

async function assertSiteExists(tx: Parameters<Parameters<Database['transaction']>[0]>[0], siteId: string) {
  const site = await tx.site.findUnique({ where: { id: siteId }, select: { id: true } }).catch(() => null);
  if (!site)
    throw ValidationError.of('API key', [{ field: 'siteId', message: `no site has id "${siteId}"` }]);
}

function toActor(record: ApiKeyRecord): Actor {
  switch (record.role) {
    case ApiKeyRole.ADMIN:
      return { kind: 'admin', keyId: record.id };
    case ApiKeyRole.DEVELOPER:
      return { kind: 'developer', keyId: record.id, developerId: record.developerId! };
    case ApiKeyRole.SITE:
      return { kind: 'site', keyId: record.id, siteId: record.siteId! };
  }
}
