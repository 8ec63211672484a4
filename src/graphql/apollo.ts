import { ApolloServer } from '@apollo/server';
import { ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import { ApolloServerPluginCacheControlDisabled } from '@apollo/server/plugin/disabled';
import type { ApolloServerPlugin } from '@apollo/server';
import type { GraphQLSchema, ValidationRule } from 'graphql';
import type { GraphQLContext } from './context.js';
import { createFormatError } from './format-error.js';
import { stringifyWithRawJson } from '../shared/raw-json.js';
import { useServiceUnavailableStatus } from './plugins/service-unavailable.js';

export interface ApolloOptions {
  schema: GraphQLSchema;
  development: boolean;
  plugins?: ApolloServerPlugin<GraphQLContext>[];
  validationRules?: ValidationRule[];
  parseOptions?: { maxTokens?: number };
  onUnexpectedError?: (error: unknown) => void;
  onUnavailable?: (error: unknown) => void;
}

/** Apollo Server configured for this API: masked errors, CSRF prevention, no per-field hooks. */
export function createApolloServer(options: ApolloOptions): ApolloServer<GraphQLContext> {
  return new ApolloServer<GraphQLContext>({
    schema: options.schema,
    formatError: createFormatError({
      development: options.development,
      onUnexpected: options.onUnexpectedError,
      onUnavailable: options.onUnavailable,
    }),
    includeStacktraceInErrorResponses: options.development,
    // Field suggestions ("did you mean") leak the schema; only offered in development.
    hideSchemaDetailsFromClientErrors: !options.development,
    csrfPrevention: true,
    validationRules: options.validationRules,
    parseOptions: options.parseOptions,
    // Addon outputs are resolved as RawJson and spliced in as the sandbox wrote them (see
    // raw-json.ts); Apollo's default is JSON.stringify plus the same newline.
    stringifyResult: (result) => `${stringifyWithRawJson(result)}\n`,
    // Batches would multiply every per-operation limit by the batch size.
    allowBatchedHttpRequests: false,
    introspection: true,
    plugins: [
      // The default cache-control plugin wraps every field resolver; nothing here uses HTTP caching.
      ApolloServerPluginCacheControlDisabled(),
      ...(options.development ? [] : [ApolloServerPluginLandingPageDisabled()]),
      useServiceUnavailableStatus(),
      ...(options.plugins ?? []),
    ],
  });
}
