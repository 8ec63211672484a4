import { Field, Float, ID, Int, ObjectType } from 'type-graphql';

/** The figures every execution summary has: counts and wall-time percentiles over the window. */
@ObjectType({ simpleResolvers: true })
abstract class ExecutionFigures {
  @Field(() => Int)
  executions!: number;

  @Field(() => Int, {
    description:
      "Runs that failed because of the addon or the platform: not SUCCESS, and not the caller's mistake (see callerErrors).",
  })
  errors!: number;

  @Field(() => Int, {
    description:
      "Runs refused for the caller's mistake, not counted in errors: an entry the code does not export (NOT_FOUND), input over the size limit (INPUT_TOO_LARGE), a dependency call its caller's deadline cancelled (EXECUTION_CANCELLED).",
  })
  callerErrors!: number;

  @Field(() => Float, { description: 'errors / executions; 0 without executions.' })
  errorRate!: number;

  @Field(() => Float, { nullable: true, description: 'Median wall time in milliseconds.' })
  p50Ms!: number | null;

  @Field(() => Float, { nullable: true, description: '95th percentile wall time in milliseconds.' })
  p95Ms!: number | null;

  @Field(() => Float, { nullable: true })
  maxMs!: number | null;
}

@ObjectType({ simpleResolvers: true, description: 'Execution figures of one addon over the window.' })
export class AddonExecutionStats extends ExecutionFigures {
  @Field(() => ID)
  addonId!: string;

  @Field(() => String)
  addonName!: string;
}

@ObjectType({
  simpleResolvers: true,
  description:
    'Widget render cache counters of the instance that answered, since it started (not shared between instances).',
})
export class WidgetCacheStats {
  @Field(() => Float, { description: 'Hits in the in-process cache.' })
  l1Hits!: number;

  @Field(() => Float, { description: 'Hits in Redis.' })
  l2Hits!: number;

  @Field(() => Float, { description: 'Lookups that rendered in the sandbox.' })
  misses!: number;

  @Field(() => Float, { nullable: true, description: 'Hits over lookups; null before the first lookup.' })
  hitRate!: number | null;
}

@ObjectType({
  simpleResolvers: true,
  description:
    'What the dashboard shows, over the last windowSeconds: from the execution records shared by every instance.',
})
export class DashboardStats extends ExecutionFigures {
  @Field(() => Int)
  windowSeconds!: number;

  @Field(() => Date, { description: 'Start of the window.' })
  since!: Date;

  @Field(() => Float)
  executionsPerSecond!: number;

  @Field(() => [AddonExecutionStats], {
    description: 'Per addon, the most errors first, then the most runs (at most 50).',
  })
  addons!: AddonExecutionStats[];

  @Field(() => WidgetCacheStats, {
    nullable: true,
    description: 'Admins only (the counters cover every site); null for other keys.',
  })
  widgetCache!: WidgetCacheStats | null;
}
