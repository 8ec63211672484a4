import 'reflect-metadata';
import { buildSchema } from 'type-graphql';
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
] as const;

/** Builds the executable schema from the decorated classes. */
export async function createSchema(): Promise<GraphQLSchema> {
  // Services validate their own input (with messages naming fields); class-validator is not used.
  return buildSchema({ resolvers, validate: false });
}

/** The SDL committed as schema/schema.graphql (sorted, so diffs show only real changes). */
export function printSchemaSdl(schema: GraphQLSchema): string {
  return printSchema(lexicographicSortSchema(schema)) + '\n';
}
