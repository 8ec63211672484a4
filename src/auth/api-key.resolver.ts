import { Arg, Ctx, ID, Mutation, Query, Resolver } from 'type-graphql';
import type { GraphQLContext } from '../graphql/context.js';
import { ApiKeyRole } from '../generated/prisma/enums.js';
import { ApiKey, CreatedApiKey, Viewer } from './api-key.type.js';

@Resolver(() => ApiKey)
export class ApiKeyResolver {
  @Query(() => Viewer, { description: 'The role behind the Authorization header.' })
  viewer(@Ctx() ctx: GraphQLContext): Viewer {
    const { actor } = ctx;
    return {
      role: actor.kind,
      siteId: actor.kind === 'site' ? actor.siteId : null,
      developerId: actor.kind === 'developer' ? actor.developerId : null,
    };
  }

  @Query(() => [ApiKey], { description: 'All keys (admin).' })
  apiKeys(@Ctx() ctx: GraphQLContext) {
    return ctx.services.apiKeys.list(ctx.actor);
  }

  @Mutation(() => CreatedApiKey, { description: 'Issues a key (admin).' })
  async createApiKey(
    @Arg('role', () => ApiKeyRole) role: ApiKeyRole,
    @Arg('name', () => String, { nullable: true }) name: string | null,
    @Arg('siteId', () => ID, { nullable: true }) siteId: string | null,
    @Arg('developerName', () => String, { nullable: true }) developerName: string | null,
    @Ctx() ctx: GraphQLContext,
  ) {
    const created = await ctx.services.apiKeys.create(ctx.actor, {
      role: role.toLowerCase() as 'admin' | 'developer' | 'site',
      name,
      siteId,
      developerName,
    });
    return { key: created.key, apiKey: created.record };
  }

  @Mutation(() => ApiKey, { description: 'Revokes a key (admin).' })
  revokeApiKey(@Arg('id', () => ID) id: string, @Ctx() ctx: GraphQLContext) {
    return ctx.services.apiKeys.revoke(ctx.actor, id);
  }
}
