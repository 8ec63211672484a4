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
import { DeliveryStatus } from '../generated/prisma/enums.js';
import type { GraphQLContext } from '../graphql/context.js';
import type { DeliveryRecord } from './delivery.repository.js';
import { Delivery, DeliveryAttempt, DeliveryConnection, Event } from './event.type.js';

interface DeliverySubscriptionArgs {
  addon?: string | null;
  eventId?: string | null;
  status?: DeliveryStatus | null;
}

@Resolver(() => Delivery)
export class DeliveryResolver {
  @Query(() => DeliveryConnection, { description: 'Deliveries, newest first, with filters.' })
  async deliveries(
    @Arg('status', () => DeliveryStatus, { nullable: true }) status: DeliveryStatus | null,
    @Arg('addon', () => String, { nullable: true, description: 'Subscribing addon id or name.' })
    addon: string | null,
    @Arg('eventId', () => ID, { nullable: true }) eventId: string | null,
    @Arg('siteId', () => ID, { nullable: true }) siteId: string | null,
    @Arg('first', () => Int, { nullable: true, defaultValue: 20 }) first: number,
    @Arg('after', () => String, { nullable: true }) after: string | null,
    @Ctx() ctx: GraphQLContext,
  ) {
    const page = await ctx.services.deliveries.list(ctx.actor, {
      status,
      addon,
      eventId,
      siteId,
      first,
      after,
    });
    return toConnection(page, after);
  }

  @Query(() => Delivery)
  delivery(@Arg('id', () => ID) id: string, @Ctx() ctx: GraphQLContext) {
    return ctx.services.deliveries.get(ctx.actor, id);
  }

  @Mutation(() => Delivery, {
    description:
      'Makes a DEAD delivery due again with a fresh budget of attempts (admin or the owning site).',
  })
  retryDelivery(@Arg('id', () => ID) id: string, @Ctx() ctx: GraphQLContext) {
    return ctx.services.deliveries.retry(ctx.actor, id);
  }

  @Subscription(() => Delivery, {
    name: 'deliveries',
    description:
      'Delivery status changes (RUNNING, SUCCEEDED, PENDING for a retry, DEAD) the key may see. Ends with LIVE_STREAM_INTERRUPTED when it may have missed one (the server lost Redis): subscribe again, then reload with Query.deliveries.',
    subscribe: ({ args, context }) =>
      (context as GraphQLContext).services.liveFeed.deliveries(
        (context as GraphQLContext).actor,
        args as DeliverySubscriptionArgs,
      ),
  })
  deliveryChanged(
    @Root() delivery: DeliveryRecord,
    @Arg('addon', () => String, { nullable: true }) _addon: string | null,
    @Arg('eventId', () => ID, { nullable: true }) _eventId: string | null,
    @Arg('status', () => DeliveryStatus, { nullable: true }) _status: DeliveryStatus | null,
  ): DeliveryRecord {
    return delivery;
  }

  @FieldResolver(() => Event, { nullable: true })
  event(@Root() delivery: DeliveryRecord, @Ctx() ctx: GraphQLContext) {
    return ctx.loaders.eventById.load(delivery.eventId);
  }

  @FieldResolver(() => [DeliveryAttempt], { description: 'Every attempt, oldest first.' })
  attemptLog(@Root() delivery: DeliveryRecord, @Ctx() ctx: GraphQLContext) {
    return ctx.loaders.attemptsByDeliveryId.load(delivery.id);
  }
}
