import type { Database } from '../infrastructure/database/database.js';
import { decodeTimeCursor, encodeTimeCursor } from '../shared/time-cursor.js';
import { actorScope, requireAuthenticated, type Actor } from '../auth/actor.js';
import { ForbiddenError, ValidationError } from '../errors/index.js';
import { isUuid } from '../shared/ids.js';
import { AddonRepository } from '../addons/addon.repository.js';
import { ExecutionRepository } from './execution.repository.js';

export interface ExecutionQueryArgs {
  siteId?: string | null;
  addon?: string | null;
  entry?: string | null;
  status?: string | null;
  kind?: string | null;
  first?: number | null;
  after?: string | null;
}

/** Lists execution records: a site sees its own, a developer its addons', an admin everything. */
export class ExecutionQueryService {
  constructor(private readonly database: Database) {}

  async list(actor: Actor, args: ExecutionQueryArgs) {
    requireAuthenticated(actor);
    const first = args.first ?? 20;
    if (!Number.isInteger(first) || first < 1 || first > 100) {
      throw ValidationError.of('arguments', [{ field: 'first', message: 'must be from 1 to 100' }]);
    }
    let siteId = args.siteId ?? null;
    let addonId: string | null = null;
    if (args.addon) {
      const addon = await new AddonRepository(this.database.prisma).findByIdOrName(args.addon);
      if (!addon) return { rows: [], hasNextPage: false, encode: encodeTimeCursor };
      if (actor.kind === 'developer' && addon.ownerId !== actor.developerId) {
        throw new ForbiddenError('A developer key sees executions of its own addons only.');
      }
      addonId = addon.id;
    } else if (actor.kind === 'developer') {
      throw ValidationError.of('arguments', [
        { field: 'addon', message: 'is required with a developer key' },
      ]);
    }
    if (actor.kind === 'site') {
      if (siteId && siteId !== actor.siteId)
        throw new ForbiddenError('A site key sees its own executions only.');
      siteId = actor.siteId;
    }
    if (siteId && !isUuid(siteId)) return { rows: [], hasNextPage: false, encode: encodeTimeCursor };
    const rows = await this.database.scan(actorScope(actor), (db) =>
      new ExecutionRepository(db).list({
        siteId,
        addonId,
        entry: args.entry,
        status: args.status,
        kind: args.kind,
        before: args.after ? decodeTimeCursor(args.after) : null,
        take: first + 1,
      }),
    );
    return { rows: rows.slice(0, first), hasNextPage: rows.length > first, encode: encodeTimeCursor };
  }
}
