import {
  GraphQLEnumType,
  GraphQLInputObjectType,
  GraphQLList,
  GraphQLNonNull,
  typeFromAST,
  visit,
  type DocumentNode,
  type GraphQLInputType,
  type GraphQLSchema,
  type OperationDefinitionNode,
} from 'graphql';
import type { FieldProblem } from '../errors/index.js';
import { fieldPath, jsonValueProblem, MAX_JSON_DEPTH, textProblem } from '../shared/storable-text.js';

/**
 * Client input an operation carries, checked before anything coerces, prices or stores it:
 * strings (literals and variables, keys included) with NUL or unpaired surrogates, which
 * PostgreSQL cannot store; values nested deeper than {@link MAX_JSON_DEPTH}; enum values longer
 * than the enum's longest member, which graphql-js would otherwise compare against every member
 * and echo back in full. Each problem names its field.
 */

/** Problems of the document's literals: the same for every request of a document, so kept. */
const literalProblems = new WeakMap<DocumentNode, FieldProblem | null>();

/** The first problem of the document's string literals and literal nesting, or null. */
export function documentInputProblem(document: DocumentNode): FieldProblem | null {
  if (literalProblems.has(document)) return literalProblems.get(document)!;
  let problem: FieldProblem | null = null;
  const path: string[] = [];
  let depth = 0;
  visit(document, {
    Field: {
      enter: (node) => void path.push(node.alias?.value ?? node.name.value),
      leave: () => void path.pop(),
    },
    Argument: {
      enter: (node) => void path.push(node.name.value),
      leave: () => void path.pop(),
    },
    ObjectField: {
      enter: (node) => void path.push(node.name.value),
      leave: () => void path.pop(),
    },
    ObjectValue: { enter: () => nest(1), leave: () => void (depth -= 1) },
    ListValue: { enter: () => nest(1), leave: () => void (depth -= 1) },
    StringValue: (node) => {
      if (problem) return;
      const text = textProblem(node.value);
      if (text) problem = { field: path.join('.'), message: text };
    },
  });
  function nest(by: number): void {
    depth += by;
    if (!problem && depth > MAX_JSON_DEPTH)
      problem = { field: path.join('.'), message: `is nested deeper than ${MAX_JSON_DEPTH} levels` };
  }
  literalProblems.set(document, problem);
  return problem;
}

const longestMember = new WeakMap<GraphQLEnumType, number>();

function longestMemberOf(type: GraphQLEnumType): number {
  let longest = longestMember.get(type);
  if (longest === undefined) {
    longest = Math.max(0, ...type.getValues().map((v) => v.name.length));
    longestMember.set(type, longest);
  }
  return longest;
}

/**
 * The first problem of the variables: unstorable text or nesting anywhere, then enum values
 * longer than their enum allows (walked along each declared variable's type).
 */
export function variablesInputProblem(
  schema: GraphQLSchema,
  operation: OperationDefinitionNode | null | undefined,
  variables: Record<string, unknown> | null | undefined,
): FieldProblem | null {
  if (!variables) return null;
  const general = jsonValueProblem(variables, 'variables');
  if (general) return general;
  for (const definition of operation?.variableDefinitions ?? []) {
    const name = definition.variable.name.value;
    if (!Object.hasOwn(variables, name)) continue;
    const type = typeFromAST(schema, definition.type) as GraphQLInputType | undefined;
    if (!type) continue;
    const problem = enumProblem(variables[name], type, fieldPath('variables', name));
    if (problem) return problem;
  }
  return null;
}

/** Iterative walk of a value along its input type; linear in the value's size. */
function enumProblem(value: unknown, type: GraphQLInputType, root: string): FieldProblem | null {
  const stack: { value: unknown; type: GraphQLInputType; path: string }[] = [{ value, type, path: root }];
  while (stack.length > 0) {
    const item = stack.pop()!;
    if (item.value === null || item.value === undefined) continue;
    const current = item.type;
    if (current instanceof GraphQLNonNull) {
      stack.push({ ...item, type: current.ofType as GraphQLInputType });
    } else if (current instanceof GraphQLList) {
      const inner = current.ofType as GraphQLInputType;
      if (Array.isArray(item.value))
        item.value.forEach((element, i) =>
          stack.push({ value: element, type: inner, path: fieldPath(item.path, i) }),
        );
      else stack.push({ ...item, type: inner });
    } else if (current instanceof GraphQLInputObjectType) {
      if (typeof item.value !== 'object' || Array.isArray(item.value)) continue;
      const fields = current.getFields();
      for (const [key, fieldValue] of Object.entries(item.value as Record<string, unknown>)) {
        const field = fields[key];
        if (field) stack.push({ value: fieldValue, type: field.type, path: fieldPath(item.path, key) });
      }
    } else if (current instanceof GraphQLEnumType) {
      if (typeof item.value === 'string' && item.value.length > longestMemberOf(current))
        return { field: item.path, message: `is not a value of ${current.name}` };
    }
  }
  return null;
}
