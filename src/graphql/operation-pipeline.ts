import type { ApolloServerPlugin } from '@apollo/server';
import {
  GraphQLError,
  getOperationAST,
  getVariableValues,
  parse,
  specifiedRules,
  validate,
  type DocumentNode,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type ValidationRule,
} from 'graphql';
import { LRUCache } from 'lru-cache';
import { ErrorCode, ValidationError, httpStatusByErrorCode, type FieldProblem } from '../errors/index.js';
import { documentInputProblem, variablesInputProblem } from './operation-input.js';
import { createCostCheck, createOperationLimits, type OperationLimits } from './plugins/operation-limits.js';

/** Distinct documents kept parsed and validated for the WebSocket transport. */
const MAX_CACHED_DOCUMENTS = 1000;

/** An operation as either transport hands it over once its document is known. */
export interface OperationRequest {
  document: DocumentNode;
  operationName?: string | null;
  variables?: Record<string, unknown> | null;
  transport: 'http' | 'ws';
}

/**
 * The one path every GraphQL operation takes before execution, over HTTP (Apollo Server) and over
 * WebSocket (graphql-ws): the same parse options (token limit), the same validation rules
 * (graphql-js's, plus depth, alias and directive limits), the same input and cost checks, and the
 * same error codes (GRAPHQL_PARSE_FAILED, GRAPHQL_VALIDATION_FAILED, BAD_USER_INPUT naming the
 * field, QUERY_TOO_COMPLEX, BAD_REQUEST). graphql-ws validates nothing itself when `onSubscribe`
 * returns execution arguments, so its server runs {@link prepare} and {@link check}.
 */
export interface OperationPipeline {
  parseOptions: { maxTokens: number };
  /** Rules beyond graphql-js's specified ones (Apollo adds those itself). */
  validationRules: ValidationRule[];
  /** For Apollo Server: armor's suggestion masking and {@link check} at `didResolveOperation`. */
  apolloPlugins: ApolloServerPlugin[];
  /** Checks run once the operation is known; the first failure, or null. */
  check(request: OperationRequest): GraphQLError | null;
  /** Parses and validates a document as Apollo would, kept by its text (WebSocket transport). */
  prepare(query: unknown): DocumentNode | readonly GraphQLError[];
}

function badUserInput(problems: FieldProblem[]): GraphQLError {
  const error = ValidationError.of('input', problems);
  return new GraphQLError(error.message, { extensions: { ...error.details, code: error.code } });
}

export function createOperationPipeline(
  schema: GraphQLSchema,
  limits: OperationLimits,
  development: boolean,
): OperationPipeline {
  const armor = createOperationLimits(limits, development);
  const cost = createCostCheck(schema, limits.maxCost);
  const rules = [...specifiedRules, ...armor.validationRules];
  // Parsed and validated documents by text; a document is counted at 20 bytes a character of text.
  const documents = new LRUCache<string, DocumentNode | readonly GraphQLError[]>({
    max: MAX_CACHED_DOCUMENTS,
    maxSize: 32 * 1024 * 1024,
    sizeCalculation: (_document, text) => Math.max(1, 20 * text.length),
  });
  // Outside development, errors never suggest names ("Did you mean ..."): they leak the schema.
  const hideSuggestions = (error: GraphQLError) =>
    development ? error.message : error.message.replace(/ ?Did you mean ".+"\?/g, '').trim();

  const check = (request: OperationRequest): GraphQLError | null => {
    const operation = getOperationAST(request.document, request.operationName);
    if (!operation) return null; // graphql-js reports a missing or ambiguous operation itself
    if (operation.operation === 'subscription' && request.transport === 'http') {
      return new GraphQLError(
        'Subscriptions are served over WebSocket (graphql-ws protocol) at /graphql, not over HTTP.',
        { extensions: { code: ErrorCode.BadRequest } },
      );
    }
    const problem =
      documentInputProblem(request.document) ?? variablesInputProblem(schema, operation, request.variables);
    if (problem) return badUserInput([problem]);
    // Variables that do not coerce to their types: graphql-js's own message, as BAD_USER_INPUT on
    // both transports (graphql-ws would report them without a code).
    const coerced = getVariableValues(schema, operation.variableDefinitions ?? [], request.variables ?? {}, {
      maxErrors: 5,
    });
    if (coerced.errors) {
      return badUserInput(
        coerced.errors.map((error) => {
          const node = error.nodes?.[0];
          const name = node?.kind === 'VariableDefinition' ? node.variable.name.value : null;
          return { field: name ? `variables.${name}` : 'variables', message: error.message };
        }),
      );
    }
    return cost({ ...request, operation: operation as OperationDefinitionNode });
  };

  const prepare = (query: unknown): DocumentNode | readonly GraphQLError[] => {
    if (typeof query !== 'string' || query === '') {
      return [
        new GraphQLError('GraphQL operations must contain a non-empty `query`.', {
          extensions: { code: ErrorCode.BadRequest },
        }),
      ];
    }
    const known = documents.get(query);
    if (known) return known;
    let prepared: DocumentNode | readonly GraphQLError[];
    try {
      const document = parse(query, armor.parseOptions);
      const errors = validate(schema, document, rules);
      prepared =
        errors.length === 0
          ? document
          : errors.map(
              (error) =>
                new GraphQLError(hideSuggestions(error), {
                  nodes: error.nodes,
                  extensions: { ...error.extensions, code: ErrorCode.GraphqlValidationFailed },
                }),
            );
    } catch (error) {
      const syntax = error instanceof GraphQLError ? error : new GraphQLError(String(error));
      prepared = [
        new GraphQLError(syntax.message, {
          nodes: syntax.nodes,
          source: syntax.source,
          positions: syntax.positions,
          extensions: { code: ErrorCode.GraphqlParseFailed },
        }),
      ];
    }
    documents.set(query, prepared);
    return prepared;
  };

  const useChecks: ApolloServerPlugin = {
    async requestDidStart() {
      return {
        async didResolveOperation({ request, document }) {
          const error = check({
            document,
            operationName: request.operationName,
            variables: request.variables,
            transport: 'http',
          });
          if (!error) return;
          const code = error.extensions.code as ErrorCode;
          throw new GraphQLError(error.message, {
            extensions: { ...error.extensions, http: { status: httpStatusByErrorCode[code] ?? 400 } },
          });
        },
      };
    },
  };

  return {
    parseOptions: armor.parseOptions,
    validationRules: armor.validationRules,
    apolloPlugins: [...armor.plugins, useChecks],
    check,
    prepare,
  };
}
