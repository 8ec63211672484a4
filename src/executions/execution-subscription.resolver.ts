import { Arg, Resolver, Root, Subscription } from 'type-graphql';
import type { GraphQLContext } from '../graphql/context.js';
import { Execution } from './execution.type.js';
import type { ExecutionFeedItem } from '../events/live-feed.service.js';

interface ExecutionSubscriptionArgs {
  addon?: string | null;
  status?: string | null;
  kind?: string | null;
}

/** Subscription.executions: runs of addon code as they finish (the key's view, like Query.executions). */
@Resolver(() => Execution)
export class ExecutionSubscriptionResolver {
  @Subscription(() => Execution, {
    name: 'executions',
    description:
      'Execution records as runs finish, as far as the key may see. Ends with LIVE_STREAM_INTERRUPTED when it may have missed one (the server lost Redis): subscribe again, then reload with Query.executions.',
    subscribe: ({ args, context }) =>
      (context as GraphQLContext).services.liveFeed.executions(
        (context as GraphQLContext).actor,
        args as ExecutionSubscriptionArgs,
      ),
  })
  executionRecorded(
    @Root() execution: ExecutionFeedItem,
    @Arg('addon', () => String, { nullable: true, description: 'Addon id or name.' }) _addon: string | null,
    @Arg('status', () => String, { nullable: true, description: 'SUCCESS or an error code.' })
    _status: string | null,
    @Arg('kind', () => String, { nullable: true, description: 'function, widget, handler or hook.' })
    _kind: string | null,
  ): ExecutionFeedItem {
    return execution;
  }
}
