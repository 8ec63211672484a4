import { Field, Float, ID, ObjectType } from 'type-graphql';
import { GraphQLJSON } from 'graphql-scalars';
import { PageInfo } from '../graphql/page-info.type.js';

@ObjectType({ simpleResolvers: true, description: 'One run of addon code.' })
export class Execution {
  @Field(() => ID)
  id!: string;

  @Field(() => ID)
  addonId!: string;

  @Field(() => String)
  addonName!: string;

  @Field(() => String)
  version!: string;

  @Field(() => ID, { nullable: true })
  siteId!: string | null;

  @Field(() => String, { description: 'function, widget, handler or hook.' })
  kind!: string;

  @Field(() => String, { description: 'Function, widget, handler or hook name.' })
  entry!: string;

  @Field(() => String, {
    description:
      "SUCCESS or the error code: ADDON_QUARANTINED when refused by the version's circuit breaker on this site, EXECUTION_CANCELLED when a dependency call was stopped because its caller's deadline passed.",
  })
  status!: string;

  @Field(() => String, { nullable: true })
  errorMessage!: string | null;

  @Field(() => Float)
  durationMs!: number;

  @Field(() => Float)
  cpuTimeMs!: number;

  @Field(() => Boolean, { description: 'True when the run loaded the module.' })
  cold!: boolean;

  @Field(() => GraphQLJSON, { description: 'ctx.log output: [{ level, message, at }].' })
  logs!: unknown;

  @Field(() => Boolean)
  logsTruncated!: boolean;

  @Field(() => String, { nullable: true })
  requestId!: string | null;

  @Field(() => ID, {
    nullable: true,
    description: 'A dependency call (ctx.addons.call): the execution of the addon that called it.',
  })
  parentExecutionId!: string | null;

  @Field(() => Date)
  createdAt!: Date;
}

@ObjectType({ simpleResolvers: true })
export class ExecutionEdge {
  @Field(() => String)
  cursor!: string;

  @Field(() => Execution)
  node!: Execution;
}

@ObjectType({ simpleResolvers: true, description: 'Execution records, newest first.' })
export class ExecutionConnection {
  @Field(() => [ExecutionEdge])
  edges!: ExecutionEdge[];

  @Field(() => PageInfo)
  pageInfo!: PageInfo;
}
