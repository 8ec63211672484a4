import { ApolloArmor } from '@escape.tech/graphql-armor';
import type { ApolloServerPlugin } from '@apollo/server';
import {
  GraphQLError,
  type DocumentNode,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type ValidationRule,
} from 'graphql';
import { fieldExtensionsEstimator, getComplexity, simpleEstimator } from 'graphql-query-complexity';
import { ErrorCode } from '../../errors/index.js';

export interface OperationLimits {
  maxDepth: number;
  maxAliases: number;
  maxTokens: number;
  maxDirectives: number;
  /** Highest total cost; each field costs 1 unless its `complexity` says otherwise. */
  maxCost: number;
}

/**
 * Limits checked before execution: depth, aliases and directives as validation rules
 * (graphql-armor), tokens by graphql-js's parser, field suggestions hidden outside development
 * (an Apollo plugin; the WebSocket transport strips them itself). Cost is separate
 * ({@link createCostCheck}): it depends on the variables.
 */
export function createOperationLimits(
  limits: OperationLimits,
  development: boolean,
): { plugins: ApolloServerPlugin[]; validationRules: ValidationRule[]; parseOptions: { maxTokens: number } } {
  const armor = new ApolloArmor({
    maxDepth: { n: limits.maxDepth, ignoreIntrospection: true, flattenFragments: true },
    maxAliases: { n: limits.maxAliases },
    // Tokens are limited by graphql-js's own parser (Apollo's parseOptions), which reports a
    // proper GRAPHQL_PARSE_FAILED; armor's plugin turns parse errors into 500s.
    maxTokens: { enabled: false },
    maxDirectives: { n: limits.maxDirectives },
    // Cost is computed with per-field costs, which graphql-armor's cost limit lacks.
    costLimit: { enabled: false },
    blockFieldSuggestion: { enabled: !development },
  }).protect();
  // graphql-armor's typings resolve to @apollo/server's CommonJS declarations; the objects are the same.
  const armorPlugins = armor.plugins as unknown as ApolloServerPlugin[];
  return {
    plugins: armorPlugins,
    validationRules: armor.validationRules,
    parseOptions: { maxTokens: limits.maxTokens },
  };
}

/**
 * The part of an operation's variables its cost can depend on: page sizes (`first`) and
 * `@include`/`@skip` conditions are scalars; JSON inputs (objects, arrays) never price a field.
 */
function costVariablesKey(operationName: string | null | undefined, variables: unknown): string {
  let key = operationName ?? '';
  if (variables && typeof variables === 'object') {
    for (const [name, value] of Object.entries(variables)) {
      if (value === null || typeof value !== 'object') key += `\u0000${name}=${JSON.stringify(value)}`;
    }
  }
  return key;
}

/**
 * Returns a check that refuses operations whose estimated cost exceeds `maxCost` (QUERY_TOO_COMPLEX),
 * before any resolver runs. Costs are remembered per parsed document and cost-relevant variables:
 * walking the document on every request was ~5% of a small query.
 */
export function createCostCheck(
  schema: GraphQLSchema,
  maxCost: number,
): (args: {
  document: DocumentNode;
  operation: OperationDefinitionNode;
  operationName?: string | null;
  variables?: Record<string, unknown> | null;
}) => GraphQLError | null {
  const estimators = [fieldExtensionsEstimator(), simpleEstimator({ defaultComplexity: 1 })];
  const costs = new WeakMap<object, Map<string, number>>();
  return ({ document, operation, operationName, variables }) => {
    const key = costVariablesKey(operationName, variables);
    let known = costs.get(document);
    let cost = known?.get(key);
    if (cost === undefined) {
      try {
        cost = getComplexity({
          schema,
          query: document,
          operationName: operationName ?? operation.name?.value,
          variables: variables ?? {},
          estimators,
        });
      } catch {
        // Variables that do not coerce: execution reports them as BAD_USER_INPUT, naming them.
        return null;
      }
      if (!known) costs.set(document, (known = new Map()));
      if (known.size < 100) known.set(key, cost);
    }
    if (cost <= maxCost) return null;
    return new GraphQLError(
      `The operation costs ${cost}; the limit is ${maxCost}. Ask for fewer items or fields.`,
      { extensions: { code: ErrorCode.QueryTooComplex, cost, maxCost } },
    );
  };
}
