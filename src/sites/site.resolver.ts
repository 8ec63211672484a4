import { Arg, Ctx, ID, Mutation, Query, Resolver } from 'type-graphql';
import type { GraphQLContext } from '../graphql/context.js';
import { Site } from './site.type.js';

@Resolver(() => Site)
export class SiteResolver {
  @Query(() => [Site], { description: 'Every site (admin).' })
  sites(@Ctx() ctx: GraphQLContext) {
    return ctx.services.sites.list(ctx.actor);
  }

  @Query(() => Site, { description: 'One site: a site key may read its own.' })
  site(@Arg('id', () => ID) id: string, @Ctx() ctx: GraphQLContext) {
    return ctx.services.sites.get(ctx.actor, id);
  }

  @Mutation(() => Site, { description: 'Creates a site (admin).' })
  createSite(
    @Arg('name', () => String) name: string,
    @Arg('domain', () => String, { nullable: true }) domain: string | null,
    @Ctx() ctx: GraphQLContext,
  ) {
    return ctx.services.sites.create(ctx.actor, { name, domain });
  }
}
