import { Field, Float, ID, Int, ObjectType, registerEnumType } from 'type-graphql';
import { GraphQLJSON } from 'graphql-scalars';
import { DeliveryStatus } from '../generated/prisma/enums.js';
import { PageInfo } from '../graphql/page-info.type.js';

registerEnumType(DeliveryStatus, {
  name: 'DeliveryStatus',
  description: 'PENDING (due at nextAttemptAt), RUNNING (claimed by a worker), SUCCEEDED, DEAD (gave up).',
});

@ObjectType({
  simpleResolvers: true,
  description: 'Something that happened, emitted by an addon or the platform; stored before anyone is told.',
})
export class Event {
  @Field(() => ID, { description: 'Also the idempotency key handed to addon handlers.' })
  id!: string;

  @Field(() => String, { description: 'Dotted name, e.g. payment.completed.' })
  name!: string;

  @Field(() => String, { description: 'Emitting addon name, or "platform".' })
  source!: string;

  @Field(() => ID, { nullable: true, description: 'Emitting addon; null for platform events.' })
  sourceAddonId!: string | null;

  @Field(() => ID, { nullable: true, description: 'Null for platform-wide events.' })
  siteId!: string | null;

  @Field(() => GraphQLJSON, { nullable: true })
  data!: unknown;

  @Field(() => String, { nullable: true })
  requestId!: string | null;

  @Field(() => Date)
  createdAt!: Date;
}

@ObjectType({ simpleResolvers: true })
export class EventEdge {
  @Field(() => String, { description: 'Pass as `after` to continue after this event.' })
  cursor!: string;

  @Field(() => Event)
  node!: Event;
}

@ObjectType({ simpleResolvers: true, description: 'Stored events in the order they were stored.' })
export class EventConnection {
  @Field(() => [EventEdge])
  edges!: EventEdge[];

  @Field(() => PageInfo)
  pageInfo!: PageInfo;
}

@ObjectType({ simpleResolvers: true, description: 'One run of a delivery handler.' })
export class DeliveryAttempt {
  @Field(() => Int)
  attempt!: number;

  @Field(() => String, {
    description: 'SUCCEEDED, or the error code (EXECUTION_TIMEOUT, LEASE_EXPIRED, ...).',
  })
  status!: string;

  @Field(() => Float)
  durationMs!: number;

  @Field(() => String, { nullable: true })
  error!: string | null;

  @Field(() => Date)
  startedAt!: Date;

  @Field(() => Date)
  finishedAt!: Date;
}

@ObjectType({
  simpleResolvers: true,
  description: "An event on its way to one subscribing installation's handler (at least once).",
})
export class Delivery {
  @Field(() => ID)
  id!: string;

  @Field(() => ID)
  eventId!: string;

  @Field(() => String)
  eventName!: string;

  @Field(() => ID)
  siteId!: string;

  @Field(() => ID)
  installationId!: string;

  @Field(() => ID)
  addonId!: string;

  @Field(() => String)
  addonName!: string;

  @Field(() => String, { description: 'Handler named by the manifest.' })
  handler!: string;

  @Field(() => DeliveryStatus)
  status!: DeliveryStatus;

  @Field(() => Int, { description: 'Attempts started (since the last manual retry).' })
  attempts!: number;

  @Field(() => Int)
  maxAttempts!: number;

  @Field(() => Date, { description: 'PENDING: when it is due. RUNNING: when its lease expires.' })
  nextAttemptAt!: Date;

  @Field(() => String, { nullable: true })
  lastError!: string | null;

  @Field(() => Date)
  createdAt!: Date;

  @Field(() => Date)
  updatedAt!: Date;

  @Field(() => Date, { nullable: true })
  completedAt!: Date | null;
}

@ObjectType({ simpleResolvers: true })
export class DeliveryEdge {
  @Field(() => String)
  cursor!: string;

  @Field(() => Delivery)
  node!: Delivery;
}

@ObjectType({ simpleResolvers: true, description: 'Deliveries, newest first.' })
export class DeliveryConnection {
  @Field(() => [DeliveryEdge])
  edges!: DeliveryEdge[];

  @Field(() => PageInfo)
  pageInfo!: PageInfo;
}
