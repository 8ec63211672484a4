import { Field, ID, Int, ObjectType } from 'type-graphql';

@ObjectType({
  simpleResolvers: true,
  description:
    "An addon version's circuit breaker on one site that is not closed: its calls there are refused with ADDON_QUARANTINED (OPEN) or one probe call is running (HALF_OPEN).",
})
export class AddonQuarantineStatus {
  @Field(() => ID)
  addonId!: string;

  @Field(() => String)
  addonName!: string;

  @Field(() => String)
  version!: string;

  @Field(() => ID)
  addonVersionId!: string;

  @Field(() => ID)
  siteId!: string;

  @Field(() => String, { description: 'OPEN or HALF_OPEN.' })
  state!: string;

  @Field(() => String, {
    nullable: true,
    description:
      'The error code that opened it: EXECUTION_TIMEOUT, MEMORY_LIMIT_EXCEEDED or SANDBOX_CRASHED.',
  })
  lastReason!: string | null;

  @Field(() => Int, { description: 'Times it opened in a row; each doubles the backoff.' })
  trips!: number;

  @Field(() => Date, { nullable: true, description: 'OPEN: when one probe call may run.' })
  openUntil!: Date | null;

  @Field(() => Date)
  changedAt!: Date;
}
