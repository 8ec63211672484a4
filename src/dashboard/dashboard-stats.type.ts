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
    'The sandbox of the instance that answered (not shared between instances): isolates kept warm and the memory they take.',
})
export class SandboxStatsView {
  @Field(() => Int)
  workers!: number;

  @Field(() => Int)
  workersReady!: number;

  @Field(() => Int, {
    description: 'Isolates kept across the workers: one per addon version and site in use.',
  })
  isolates!: number;

  @Field(() => Float, {
    description: 'Their measured memory (heap and external, last sample of each), in MB.',
  })
  isolateMemoryMb!: number;

  @Field(() => Float, { nullable: true, description: 'isolateMemoryMb per isolate; null without isolates.' })
  memoryPerIsolateMb!: number | null;

  @Field(() => Float, {
    description:
      'What the isolates may take across the workers (SANDBOX_ISOLATE_MEMORY_BUDGET_MB per worker) before the least recently used idle ones are evicted, in MB.',
  })
  isolateMemoryBudgetMb!: number;

  @Field(() => Float, { description: 'Resident memory of the worker processes, in MB.' })
  workersRssMb!: number;

  @Field(() => Int, { description: 'Calls running in the sandbox now.' })
  inFlight!: number;
}

@ObjectType({
  simpleResolvers: true,
  description: 'The addon version and site held responsible for a sandbox worker kill.',
})
export class SandboxKillCulprit {
  @Field(() => ID)
  addonId!: string;

  @Field(() => String)
  addonName!: string;

  @Field(() => String)
  version!: string;

  @Field(() => ID)
  siteId!: string;
}

@ObjectType({
  simpleResolvers: true,
  description: 'A sandbox worker process the instance that answered stopped or lost, and what it cost.',
})
export class SandboxWorkerKillView {
  @Field(() => Date)
  at!: Date;

  @Field(() => Int)
  workerId!: number;

  @Field(() => String, {
    description:
      'deadline (a call missed its deadline), stalled (a call missed its deadline while the worker did not answer), rss (the worker passed SANDBOX_WORKER_MAX_RSS_MB), crashed (the process died by itself).',
  })
  reason!: string;

  @Field(() => [SandboxKillCulprit], {
    description:
      'Empty when nothing identified one: every call in flight was then retried once if it could be.',
  })
  culprits!: SandboxKillCulprit[];

  @Field(() => Int, { description: 'Calls in flight on the worker that failed.' })
  failedCalls!: number;

  @Field(() => Int, { description: 'Innocent calls sent again to a healthy worker.' })
  retriedCalls!: number;

  @Field(() => Float, { description: "The worker's last reported resident memory, in MB." })
  rssMb!: number;
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

  @Field(() => [SandboxWorkerKillView], {
    description:
      'The last sandbox worker kills and crashes of the instance that answered (at most 50, newest first; not shared between instances): all of them for admins, those naming its site for a site key, those naming its addons for a developer.',
  })
  workerKills!: SandboxWorkerKillView[];

  @Field(() => SandboxStatsView, {
    nullable: true,
    description: 'Admins only (the isolates serve every site); null for other keys.',
  })
  sandbox!: SandboxStatsView | null;
}
