import type { DbClient } from '../infrastructure/database/database.js';

/** The rows {@link VisibilityResolver} reads: which addons a developer owns. */
export class VisibilityRepository {
  constructor(private readonly db: DbClient) {}

  /** Ids of the addons a developer owns. */
  async addonIdsOwnedBy(developerId: string): Promise<string[]> {
    const rows = await this.db.addon.findMany({ where: { ownerId: developerId }, select: { id: true } });
    return rows.map((r) => r.id);
  }
}
