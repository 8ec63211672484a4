import { Field, Float, ID, Int, ObjectType } from 'type-graphql';

@ObjectType({
  simpleResolvers: true,
  description: 'One addon in the dashboard charts: one value per slot of DashboardSeries.timestamps.',
})
export class AddonSeries {
  @Field(() => ID)
  addonId!: string;

  @Field(() => String)
  addonName!: string;

  @Field(() => [Float], { description: 'Runs per second in each slot.' })
  executionsPerSecond!: number[];

  @Field(() => [Float], {
    nullable: 'items',
    description: '95th percentile wall time (ms); null without runs.',
  })
  p95Ms!: (number | null)[];

  @Field(() => [Float], {
    nullable: 'items',
    description: "Errors of the addon over runs (caller's mistakes excluded); null without runs.",
  })
  errorRate!: (number | null)[];

  @Field(() => [Int], {
    nullable: 'items',
    description: 'Deliveries PENDING, RUNNING or DEAD at the end of the slot; null before sampling began.',
  })
  deliveryBacklog!: (number | null)[];
}

@ObjectType({
  simpleResolvers: true,
  description: 'The last 15 minutes per addon, in stepSeconds slots, for the dashboard charts.',
})
export class DashboardSeries {
  @Field(() => Int)
  stepSeconds!: number;

  @Field(() => [Date], { description: 'Start of each slot, oldest first.' })
  timestamps!: Date[];

  @Field(() => [AddonSeries], { description: 'The busiest addons the key may see (at most 8).' })
  addons!: AddonSeries[];

  @Field(() => Int, { description: 'Addons with activity in the window that are not shown.' })
  hiddenAddons!: number;
}
