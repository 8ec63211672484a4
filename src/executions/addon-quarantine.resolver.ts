import { Arg, Ctx, ID, Query, Resolver } from 'type-graphql';
import type { GraphQLContext } from '../graphql/context.js';
import { AddonQuarantineStatus } from './addon-quarantine.type.js';

@Resolver(() => AddonQuarantineStatus)
export class AddonQuarantineResolver {
  @Query(() => [AddonQuarantineStatus], {
    description:
      "Addon versions quarantined on the caller's site (admins: on every site, or the one named), newest change first.",
    complexity: 10,
  })
  addonQuarantines(
    @Arg('siteId', () => ID, { nullable: true, description: 'Admin keys only: one site.' })
    siteId: string | null,
    @Ctx() ctx: GraphQLContext,
  ) {
    return ctx.services.quarantine.list(ctx.actor, siteId);
  }
}
