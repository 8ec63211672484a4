import 'reflect-metadata';
import { buildSchema, type PubSub as TypeGraphQLPubSub } from 'type-graphql';
import { lexicographicSortSchema, printSchema, type GraphQLSchema } from 'graphql';
import {
  AddonConnectionResolver,
  AddonResolver,
  AddonVersionResolver,
  WidgetResolver,
} from '../addons/addon.resolver.js';
import { InstallationResolver } from '../installations/installation.resolver.js';
import { SiteResolver } from '../sites/site.resolver.js';
import { ApiKeyResolver } from '../auth/api-key.resolver.js';
import { ExecutionResolver } from '../executions/execution.resolver.js';
import { AddonQuarantineResolver } from '../executions/addon-quarantine.resolver.js';
import { EventResolver } from '../events/event.resolver.js';
import { DeliveryResolver } from '../events/delivery.resolver.js';
import { ExecutionSubscriptionResolver } from '../executions/execution-subscription.resolver.js';
import { createPubSub, type PubSub, type TopicMap } from '../infrastructure/pub-sub/pub-sub.js';
import { WidgetRenderResolver } from '../widgets/widget.resolver.js';
import { DashboardStatsResolver } from '../dashboard/dashboard-stats.resolver.js';

/** Every resolver class of the API; a new domain adds its resolvers here. */
export const resolvers = [
  AddonResolver,
  AddonVersionResolver,
  AddonConnectionResolver,
  WidgetResolver,
  InstallationResolver,
  SiteResolver,
  ApiKeyResolver,
  ExecutionResolver,
  AddonQuarantineResolver,
  EventResolver,
  DeliveryResolver,
  ExecutionSubscriptionResolver,
  WidgetRenderResolver,
  DashboardStatsResolver,
] as const;

/** Builds the executable schema from the decorated classes. */
export async function createSchema(options: { pubSub?: PubSub<TopicMap> } = {}): Promise<GraphQLSchema> {
  // Services validate their own input (with messages naming fields); class-validator is not used.
  // No global middlewares either: object types declare `simpleResolvers`, so their plain data
  // fields use graphql's default resolver instead of a middleware wrapper per field and request.
  // Subscriptions take their feeds from the context's services; type-graphql still wants a pubSub.
  const pubSub = (options.pubSub ?? createPubSub()) as PubSub<Record<string, unknown>>;
  const forTypeGraphQL: TypeGraphQLPubSub = {
    publish: (topic, payload) => void pubSub.publish(topic, payload),
    subscribe: (topic) => pubSub.subscribe(topic),
  };
  return buildSchema({ resolvers, validate: false, pubSub: forTypeGraphQL });
}

/** The SDL committed as schema/schema.graphql (sorted, so diffs show only real changes). */
export function printSchemaSdl(schema: GraphQLSchema): string {
  return printSchema(lexicographicSortSchema(schema)) + '\n';
}
