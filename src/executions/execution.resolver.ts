import { toConnection } from '../graphql/connection.js';
import { Arg, Ctx, ID, Int, Mutation, Query, Resolver } from 'type-graphql';
import { GraphQLJSON } from 'graphql-scalars';
import type { GraphQLContext } from '../graphql/context.js';
import { Execution, ExecutionConnection } from './execution.type.js';

const addonArg = { description: 'Addon id or unique name.' };
const siteArg = { nullable: true, description: 'Admin keys name the site; site keys use their own.' };

@Resolver(() => Execution)
export class ExecutionResolver {
  @Mutation(() => GraphQLJSON, {
    nullable: true,
    description: "Runs an addon function for the caller's site.",
    complexity: 20,
  })
  executeAddonFunction(
    @Arg('addonId', () => ID, addonArg) addonId: string,
    @Arg('function', () => String) functionName: string,
    @Arg('data', () => GraphQLJSON) data: unknown,
    @Arg('siteId', () => ID, siteArg) siteId: string | null,
    @Ctx() ctx: GraphQLContext,
  ) {
    return ctx.services.executions.executeFunction(ctx.actor, {
      addon: addonId,
      functionName,
      data,
      siteId,
      readonlyOnly: false,
      requestId: ctx.requestId,
    });
  }

  @Query(() => GraphQLJSON, {
    name: 'executeAddonFunction',
    nullable: true,
    description: 'Runs a readonly addon function (the manifest marks it readonly).',
    complexity: 20,
  })
  executeReadonlyAddonFunction(
    @Arg('addonId', () => ID, addonArg) addonId: string,
    @Arg('function', () => String) functionName: string,
    @Arg('data', () => GraphQLJSON) data: unknown,
    @Arg('siteId', () => ID, siteArg) siteId: string | null,
    @Ctx() ctx: GraphQLContext,
  ) {
    return ctx.services.executions.executeFunction(ctx.actor, {
      addon: addonId,
      functionName,
      data,
      siteId,
      readonlyOnly: true,
      requestId: ctx.requestId,
    });
  }

  @Query(() => ExecutionConnection, {
    description: 'Execution records, newest first, with filters.',
    complexity: ({ args, childComplexity }) => 1 + (args.first ?? 20) * childComplexity,
  })
  async executions(
    @Arg('addon', () => String, { nullable: true, description: 'Addon id or name.' }) addon: string | null,
    @Arg('siteId', () => ID, { nullable: true }) siteId: string | null,
    @Arg('entry', () => String, { nullable: true, description: 'Function or widget name.' })
    entry: string | null,
    @Arg('kind', () => String, { nullable: true }) kind: string | null,
    @Arg('status', () => String, { nullable: true, description: 'SUCCESS or an error code.' })
    status: string | null,
    @Arg('first', () => Int, { nullable: true, defaultValue: 20 }) first: number,
    @Arg('after', () => String, { nullable: true }) after: string | null,
    @Ctx() ctx: GraphQLContext,
  ) {
    const page = await ctx.services.executionQueries.list(ctx.actor, {
      addon,
      siteId,
      entry,
      kind,
      status,
      first,
      after,
    });
    return toConnection(page, after);
  }
}
