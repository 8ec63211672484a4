import { toConnection } from '../graphql/connection.js';
import {
  Arg,
  Ctx,
  FieldResolver,
  ID,
  Int,
  Mutation,
  Query,
  Resolver,
  Root,
  Subscription,
} from 'type-graphql';
import { GraphQLJSON } from 'graphql-scalars';
import type { GraphQLContext } from '../graphql/context.js';
import type { EventRecord } from './event.repository.js';
import { Delivery, Event, EventConnection } from './event.type.js';
import { encodeEventCursor } from './event.service.js';

const namesArg = {
  nullable: true,
  description:
    'Names or patterns; `*` matches exactly one dotted segment (payment.* matches payment.completed).',
};

interface EventSubscriptionArgs {
  names?: string[] | null;
  source?: string | null;
  siteId?: string | null;
}

@Resolver(() => Event)
export class EventResolver {
  @Mutation(() => Event, {
    description:
      'Emits a platform event (source "platform"): a site key on its own site, an admin on a named site or platform-wide. With an idempotencyKey already given on that site (kept EVENT_IDEMPOTENCY_HOURS), nothing is stored and the first event is returned.',
  })
  async emitEvent(
    @Arg('name', () => String) name: string,
    @Arg('data', () => GraphQLJSON) data: unknown,
    @Arg('siteId', () => ID, { nullable: true }) siteId: string | null,
    @Arg('idempotencyKey', () => String, {
      nullable: true,
      description:
        '1 to 200 characters; a retry with the same key returns the first event instead of a new one.',
    })
    idempotencyKey: string | null,
    @Ctx() ctx: GraphQLContext,
  ) {
    const { services, actor, requestId } = ctx;
    return (await services.events.emitPlatform(actor, { name, data, siteId, idempotencyKey, requestId }))
      .event;
  }

  @Query(() => EventConnection, {
    description: 'Stored events in order, after a cursor: how a dashboard catches up after a reconnect.',
  })
  async events(
    @Arg('after', () => String, { nullable: true }) after: string | null,
    @Arg('first', () => Int, { nullable: true, defaultValue: 100 }) first: number,
    @Arg('last', () => Int, {
      nullable: true,
      description:
        'The newest events instead (1 to 500, still oldest first), e.g. to fill a dashboard; its endCursor then pages forward with after.',
    })
    last: number | null,
    @Arg('names', () => [String], namesArg) names: string[] | null,
    @Arg('source', () => String, { nullable: true }) source: string | null,
    @Arg('siteId', () => ID, { nullable: true }) siteId: string | null,
    @Ctx() ctx: GraphQLContext,
  ) {
    const page = await ctx.services.events.list(ctx.actor, { after, first, last, names, source, siteId });
    return toConnection(page, after, { keepCursorWhenEmpty: true });
  }

  @Subscription(() => Event, {
    name: 'events',
    description:
      'Events as they are stored, as far as the key may see (a site key: its own site): each one once, in stream order, read from the stored events, so a Redis outage delays them and never makes one missing. Resume after a dropped socket with Query.events(after: the last cursor).',
    subscribe: ({ args, context }) =>
      (context as GraphQLContext).services.liveFeed.events(
        (context as GraphQLContext).actor,
        args as EventSubscriptionArgs,
      ),
  })
  eventEmitted(
    @Root() event: EventRecord,
    @Arg('names', () => [String], namesArg) _names: string[] | null,
    @Arg('source', () => String, { nullable: true }) _source: string | null,
    @Arg('siteId', () => ID, { nullable: true }) _siteId: string | null,
  ): EventRecord {
    return event;
  }

  @FieldResolver(() => String, {
    description:
      'Its place in the stream: pass as `after` to Query.events to continue after it (e.g. from the last event a subscription delivered).',
  })
  cursor(@Root() event: EventRecord): string {
    return encodeEventCursor(event);
  }

  @FieldResolver(() => [Delivery], {
    description: 'Its deliveries to subscribing addons that the key may see.',
  })
  async deliveries(@Root() event: EventRecord, @Ctx() ctx: GraphQLContext) {
    return ctx.services.deliveries.visible(ctx.actor, await ctx.loaders.deliveriesByEventId.load(event.id));
  }
}
