import { Arg, Ctx, ID, Int, Query, Resolver } from 'type-graphql';
import type { GraphQLContext } from '../graphql/context.js';
import { DashboardStats } from './dashboard-stats.type.js';
import { DashboardSeries } from './dashboard-series.type.js';

@Resolver(() => DashboardStats)
export class DashboardStatsResolver {
  @Query(() => DashboardStats, {
    description:
      'Executions per second, latency percentiles, errors per addon and the widget cache hit rate over a recent window, as far as the key may see.',
  })
  dashboardStats(
    @Arg('windowSeconds', () => Int, { defaultValue: 60, description: 'From 10 to 86400.' })
    windowSeconds: number,
    @Arg('siteId', () => ID, { nullable: true, description: 'Only this site (site keys: their own).' })
    siteId: string | null,
    @Ctx() ctx: GraphQLContext,
  ) {
    return ctx.services.dashboardStats.stats(ctx.actor, { windowSeconds, siteId });
  }

  @Query(() => DashboardSeries, {
    description:
      'The dashboard charts: executions per second, p95 latency, error rate and delivery backlog per addon over the last 15 minutes, as far as the key may see.',
  })
  dashboardSeries(
    @Arg('siteId', () => ID, { nullable: true, description: 'Only this site (site keys: their own).' })
    siteId: string | null,
    @Ctx() ctx: GraphQLContext,
  ) {
    return ctx.services.dashboardSeries.series(ctx.actor, { siteId });
  }
}
