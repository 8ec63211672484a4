import { HeaderMap, type ApolloServerPlugin, type GraphQLRequestContext } from '@apollo/server';
import {
  getArgumentValues,
  getNamedType,
  getVariableValues,
  isLeafType,
  isNonNullType,
  isObjectType,
  Kind,
  type FieldNode,
  type GraphQLField,
  type GraphQLLeafType,
  type GraphQLSchema,
  type OperationDefinitionNode,
} from 'graphql';
import type { GraphQLContext } from '../graphql/context.js';
import type { RenderHit, WidgetRenderService } from './widget-render.service.js';

/** The root field this plugin answers. */
const FIELD = 'renderWidget';

/** A selected field of WidgetOutput (or `__typename`), under its response key. */
interface LeafPlan {
  key: string;
  /** The WidgetOutput property read, or null for `__typename` (answered with `typename`). */
  name: string | null;
  typename: string;
  type: GraphQLLeafType | null;
  nonNull: boolean;
}

/** A root field of the operation: `renderWidget` with its leaf selections, or `__typename`. */
interface RootPlan {
  key: string;
  /** The `renderWidget` field, or null for `__typename` (answered with `typename`). */
  node: FieldNode | null;
  typename: string;
  leaves: LeafPlan[];
}

/** An operation the fast path can answer: its root fields in response order, and recent answers. */
interface Plan {
  roots: RootPlan[];
  /** Answers by caller scope and variables text, reused while their renders are current. */
  answers: Map<string, Answer>;
}

/** The data of an answer, and the L1 hits it was built from. */
interface Answer {
  data: Record<string, unknown>;
  hits: RenderHit[];
}

/** Answers kept per operation; the oldest half goes when full. */
const MAX_ANSWERS = 1000;
/** Variables longer than this (as JSON) are not keyed: their answers are rebuilt each time. */
const MAX_VARIABLES_CHARS = 2048;

/** What the plugin needs of the widget render service. */
export type CachedRenders = Pick<WidgetRenderService, 'cachedRender' | 'stillCurrent' | 'actorScope'>;

/** The plugin's response head: nothing to add (Apollo merges it into the request's own head). */
const NO_HEAD = { headers: new HeaderMap() };

/**
 * Answers `Query.renderWidget` operations whose renders are all cache hits without running
 * graphql-js execution: a cached render is a lookup in memory, and the execution phase (resolver
 * wrappers, per-field completion, the execution hooks, several awaits) cost more than the lookup.
 *
 * It only takes operations it can answer exactly as execution would: queries whose root fields are
 * `renderWidget` (and `__typename`), each selecting leaf fields of WidgetOutput, with no
 * fragments and no directives. Variables and arguments are coerced by graphql-js's own
 * `getVariableValues` and `getArgumentValues`, and leaves are serialised by their scalar types.
 * Anything else (another field, a cache miss, an argument that does not coerce, a value execution
 * would report as an error) returns null, and Apollo executes the operation as usual; the render
 * service's `cachedRender` answers only what `render` would answer the same way. Validation, the
 * operation limits and every other request hook still run: this replaces execution only.
 *
 * The answer to an operation is kept per caller scope and variables text, with the L1 hits it was
 * built from, and served again while the service says each hit is still current (the same
 * installation, generation and L1 entry): a repeated render skips coercion and key building too.
 */
export function useWidgetRenderFastPath(
  schema: GraphQLSchema,
  widgets: CachedRenders,
): ApolloServerPlugin<GraphQLContext> {
  const queryType = schema.getQueryType();
  const field = queryType?.getFields()[FIELD];
  if (!queryType || !field) throw new Error(`useWidgetRenderFastPath: the schema has no Query.${FIELD}.`);
  // Apollo reuses one parsed document per query text, so plans are compiled once per operation.
  const plans = new WeakMap<OperationDefinitionNode, Plan | null>();
  const answer = (context: GraphQLRequestContext<GraphQLContext>) => {
    const { operation } = context;
    if (!operation) return null;
    let plan = plans.get(operation);
    if (plan === undefined) plans.set(operation, (plan = compile(operation, field, queryType.name)));
    if (plan === null) return null;
    // The same operation with the same variables from the same kind of caller reads the same L1
    // entries: while they are current, the answer built from them is the answer.
    const variables = JSON.stringify(context.request.variables ?? {});
    const key =
      variables.length <= MAX_VARIABLES_CHARS
        ? `${widgets.actorScope(context.contextValue.actor)}\u0000${variables}`
        : null;
    const known = key === null ? undefined : plan.answers.get(key);
    if (known && known.hits.every((hit) => widgets.stillCurrent(hit))) return known.data;
    const built = execute(plan.roots, schema, field, operation, context, widgets);
    if (built && key !== null) remember(plan.answers, key, built);
    return built?.data ?? null;
  };
  return {
    async requestDidStart() {
      return {
        async responseForOperation(context) {
          const data = answer(context);
          return data ? { http: NO_HEAD, body: { kind: 'single', singleResult: { data } } } : null;
        },
      };
    },
  };
}

/** The plan of an operation, or null when the fast path does not take it. */
function compile(
  operation: OperationDefinitionNode,
  field: GraphQLField<unknown, unknown>,
  queryTypename: string,
): Plan | null {
  if (operation.operation !== 'query' || operation.directives?.length) return null;
  const output = getNamedType(field.type);
  if (!isObjectType(output)) return null;
  const outputFields = output.getFields();
  const roots: RootPlan[] = [];
  const keys = new Set<string>();
  for (const selection of operation.selectionSet.selections) {
    if (selection.kind !== Kind.FIELD || selection.directives?.length) return null;
    const key = selection.alias?.value ?? selection.name.value;
    // Execution merges fields sharing a response key; the plan keeps one field per key.
    if (keys.has(key)) return null;
    keys.add(key);
    if (selection.name.value === '__typename') {
      roots.push({ key, node: null, typename: queryTypename, leaves: [] });
      continue;
    }
    if (selection.name.value !== FIELD || !selection.selectionSet) return null;
    const leaves: LeafPlan[] = [];
    for (const sub of selection.selectionSet.selections) {
      if (sub.kind !== Kind.FIELD || sub.directives?.length || sub.selectionSet) return null;
      const leafKey = sub.alias?.value ?? sub.name.value;
      if (sub.name.value === '__typename') {
        leaves.push({ key: leafKey, name: null, typename: output.name, type: null, nonNull: true });
        continue;
      }
      const definition = outputFields[sub.name.value];
      const type = definition && getNamedType(definition.type);
      if (!type || !isLeafType(type)) return null;
      leaves.push({
        key: leafKey,
        name: sub.name.value,
        typename: output.name,
        type,
        nonNull: isNonNullType(definition.type),
      });
    }
    roots.push({ key, node: selection, typename: output.name, leaves });
  }
  return { roots, answers: new Map() };
}

function remember(answers: Map<string, Answer>, key: string, answer: Answer): void {
  if (answers.size >= MAX_ANSWERS) {
    let drop = MAX_ANSWERS / 2;
    for (const old of answers.keys()) {
      answers.delete(old);
      if (--drop === 0) break;
    }
  }
  answers.set(key, answer);
}

/** The operation's data from cached renders, or null when execution must answer instead. */
function execute(
  plan: RootPlan[],
  schema: GraphQLSchema,
  field: GraphQLField<unknown, unknown>,
  operation: OperationDefinitionNode,
  context: GraphQLRequestContext<GraphQLContext>,
  widgets: CachedRenders,
): Answer | null {
  const variables = getVariableValues(
    schema,
    operation.variableDefinitions ?? [],
    context.request.variables ?? {},
    { maxErrors: 1 },
  );
  if (!variables.coerced) return null;
  const { actor, requestId } = context.contextValue;
  const data: Record<string, unknown> = {};
  const hits: RenderHit[] = [];
  for (const root of plan) {
    if (root.node === null) {
      data[root.key] = root.typename;
      continue;
    }
    let args: Record<string, unknown>;
    try {
      args = getArgumentValues(field, root.node, variables.coerced);
    } catch {
      return null;
    }
    const render = widgets.cachedRender(actor, {
      addon: args.addon as string,
      widget: args.widget as string,
      config: args.config,
      context: args.context,
      siteId: args.siteId as string | null | undefined,
      requestId,
    });
    if (!render?.hit) return null;
    const value = project(root.leaves, render.view as unknown as Record<string, unknown>);
    if (!value) return null;
    data[root.key] = value;
    hits.push(render.hit);
  }
  return { data, hits };
}

/** The selected fields of a view, serialised as execution would; null where it would report an error. */
function project(leaves: LeafPlan[], view: Record<string, unknown>): Record<string, unknown> | null {
  const out: Record<string, unknown> = {};
  for (const leaf of leaves) {
    if (leaf.name === null) {
      out[leaf.key] = leaf.typename;
      continue;
    }
    const value = view[leaf.name];
    if (value === null || value === undefined) {
      if (leaf.nonNull) return null;
      out[leaf.key] = null;
      continue;
    }
    // The default resolver would call a function; a view holds data only, so leave it to execution.
    if (typeof value === 'function') return null;
    let serialized: unknown;
    try {
      serialized = leaf.type!.serialize(value);
    } catch {
      return null;
    }
    if (serialized === undefined) return null;
    out[leaf.key] = serialized;
  }
  return out;
}
