import { HeaderMap, type GraphQLResponse } from '@apollo/server';
import {
  getArgumentValues,
  getVariableValues,
  type FieldNode,
  type GraphQLField,
  type GraphQLSchema,
  type OperationDefinitionNode,
} from 'graphql';

// Shared by the plugins that answer an operation in `responseForOperation` instead of letting
// graphql-js execute it (cached widget renders, addon function runs): they must coerce exactly as
// execution would, and leave every error to execution.

/**
 * The operation's variables as execution coerces them, or null when coercion fails (execution
 * then reports the error).
 */
export function coercedVariables(
  schema: GraphQLSchema,
  operation: OperationDefinitionNode,
  variables: Record<string, unknown> | undefined,
): Record<string, unknown> | null {
  return (
    getVariableValues(schema, operation.variableDefinitions ?? [], variables ?? {}, { maxErrors: 1 })
      .coerced ?? null
  );
}

/** A field's arguments as execution coerces them, or null where execution would report an error. */
export function argumentsOf(
  field: GraphQLField<unknown, unknown>,
  node: FieldNode,
  variables: Record<string, unknown>,
): Record<string, unknown> | null {
  try {
    return getArgumentValues(field, node, variables);
  } catch {
    return null;
  }
}

/** A response head with nothing to add (Apollo merges it into the request's own head). */
const NO_HEAD = { headers: new HeaderMap() };

/** What `responseForOperation` returns for an answer: the data, as execution would have sent it. */
export function answerOf(data: Record<string, unknown>): GraphQLResponse {
  return { http: NO_HEAD, body: { kind: 'single', singleResult: { data } } };
}
