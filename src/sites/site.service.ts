import type { Database } from '../infrastructure/database/database.js';
import { requireAdmin, requireAuthenticated, type Actor } from '../auth/actor.js';
import { ForbiddenError, NotFoundError, ValidationError, type FieldProblem } from '../errors/index.js';
import { SiteRepository, type SiteRecord } from './site.repository.js';

const DOMAIN =
  /^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$/;

/** Sites are the tenants; admins create them and issue their keys. */
export class SiteService {
  constructor(private readonly database: Database) {}

  private get sites(): SiteRepository {
    return new SiteRepository(this.database.prisma);
  }

  async create(actor: Actor, input: { name: unknown; domain?: unknown }): Promise<SiteRecord> {
    requireAdmin(actor);
    const problems: FieldProblem[] = [];
    const name = typeof input.name === 'string' ? input.name.trim() : '';
    if (!name || name.length > 100) problems.push({ field: 'name', message: 'must be 1-100 characters' });
    let domain: string | null = null;
    if (input.domain !== undefined && input.domain !== null) {
      domain = typeof input.domain === 'string' ? input.domain.trim().toLowerCase() : '';
      if (!DOMAIN.test(domain))
        problems.push({ field: 'domain', message: 'must be a host name such as shop.example.com' });
    }
    if (problems.length > 0) throw ValidationError.of('site', problems);
    return this.sites.create({ name, domain });
  }

  list(actor: Actor): Promise<SiteRecord[]> {
    requireAdmin(actor);
    return this.sites.list();
  }

  /** A site key sees its own site; admins see any. */
  async get(actor: Actor, id: string): Promise<SiteRecord> {
    requireAuthenticated(actor);
    if (actor.kind === 'developer' || (actor.kind === 'site' && actor.siteId !== id)) {
      throw new ForbiddenError('This key cannot read that site.');
    }
    const site = await this.sites.findById(id);
    if (!site) throw new NotFoundError('Site', id);
    return site;
  }
}
