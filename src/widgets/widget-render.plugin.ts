import type { ApolloServerPlugin, GraphQLRequestContext } from '@apollo/server';
import {
  getNamedType,
  isLeafType,
  isNonNullType,
  isObjectType,
  Kind,
  type FieldNode,
  type GraphQLField,
  type GraphQLLeafType,
  type GraphQLObjectType,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from 'graphql';
import type { GraphQLContext } from '../graphql/context.js';
import { answerOf, argumentsOf, coercedVariables } from '../graphql/plugins/answer-without-execution.js';
import { RawJson } from '../shared/raw-json.js';
import type { AddonService } from '../addons/addon.service.js';
import type { WidgetRecord } from '../addons/addon.repository.js';
import type { RenderHit, WidgetRenderService } from './widget-render.service.js';

/** A selected leaf of an object type (or `__typename`), under its response key. */
interface LeafPlan {
  key: string;
  /** The property read, or null for `__typename` (answered with `typename`). */
  name: string | null;
  typename: string;
  type: GraphQLLeafType | null;
  nonNull: boolean;
}

/** A field that renders (`Query.renderWidget` or `Widget.render`), with its leaf selections. */
interface RenderPlan {
  key: string;
  node: FieldNode;
  field: GraphQLField<unknown, unknown>;
  leaves: LeafPlan[];
}

/** `__typename`, answered without a field. */
interface TypenamePlan {
  key: string;
  typename: string;
}

/** `Query.widget` selecting `render` fields (and `__typename`). */
interface WidgetPlan {
  key: string;
  node: FieldNode;
  children: Array<{ render: RenderPlan } | { typename: TypenamePlan }>;
}

type RootPlan = { render: RenderPlan } | { typename: TypenamePlan } | { widget: WidgetPlan };

/** An operation the fast path can answer: its root fields in response order. */
interface Plan {
  /** Distinguishes the plan's answers from other operations' in {@link AnswerStore}. */
  id: number;
  roots: RootPlan[];
}

/** The data of an answer, the L1 hits it was built from, and the widget lookups it awaited. */
export interface Answer {
  data: Record<string, unknown>;
  /** `data` as served again (see {@link asServed}), made when the answer is kept. */
  served?: Record<string, unknown>;
  hits: RenderHit[];
  lookups: WidgetLookup[];
  /** What the store counts for it (see {@link AnswerStore.set}). */
  bytes: number;
}

interface WidgetLookup {
  addon: string;
  name: string;
  record: Promise<WidgetRecord>;
}

/** Variables longer than this (as JSON) are not keyed: their answers are rebuilt each time. */
const MAX_VARIABLES_CHARS = 2048;

/**
 * The answers kept, over every operation, by plan, caller scope and variables text, bounded by
 * count and bytes (oldest first out): clients choose documents and variables, so only a bound over
 * all of them bounds the memory.
 */
export class AnswerStore {
  private readonly answers = new Map<string, Answer>();
  private bytes = 0;

  constructor(
    private readonly maxAnswers = 5_000,
    private readonly maxBytes = 16 * 1024 * 1024,
  ) {}

  get(key: string): Answer | undefined {
    return this.answers.get(key);
  }

  /**
   * Keeps an answer, with its data serialised for serving again. It counts the key and twice the
   * text: the answer also keeps alive the L1 entries it came from, which hold the render as JSON.
   */
  set(key: string, answer: Answer): void {
    this.delete(key);
    answer.served = asServed(answer.data);
    let text = 0;
    for (const value of Object.values(answer.served)) if (value instanceof RawJson) text += value.json.length;
    answer.bytes = 2 * (key.length + 2 * text);
    this.answers.set(key, answer);
    this.bytes += answer.bytes;
    while (this.answers.size > this.maxAnswers || this.bytes > this.maxBytes) {
      this.delete(this.answers.keys().next().value!);
    }
  }

  /** Entries and bytes held (tests). */
  stats(): { answers: number; bytes: number } {
    return { answers: this.answers.size, bytes: this.bytes };
  }

  private delete(key: string): void {
    const answer = this.answers.get(key);
    if (!answer) return;
    this.answers.delete(key);
    this.bytes -= answer.bytes;
  }
}

/** What the plugin needs of the services. */
export interface FastPathServices {
  widgets: Pick<WidgetRenderService, 'cachedRender' | 'stillCurrent' | 'actorScope'>;
  addons: Pick<AddonService, 'widget'>;
}

/** The schema's fields the fast path answers. */
interface Fields {
  query: GraphQLObjectType;
  renderWidget: GraphQLField<unknown, unknown>;
  widget: GraphQLField<unknown, unknown>;
  widgetType: GraphQLObjectType;
  render: GraphQLField<unknown, unknown>;
}

/**
 * Answers cached widget renders through GraphQL without running graphql-js execution: a cached
 * render is a lookup in memory, and the execution phase (resolver wrappers, per-field completion,
 * the execution hooks, several awaits) costs more than the lookup.
 *
 * It only takes operations it can answer exactly as execution would: queries whose root fields are
 * `renderWidget`, `widget` selecting `render`, and `__typename`, where a render selects leaf fields
 * of WidgetOutput, with no fragments and no directives. Variables and arguments are coerced by
 * graphql-js's own `getVariableValues` and `getArgumentValues`, leaves are serialised by their
 * scalar types, `widget` is the same `AddonService.widget` lookup its resolver makes, and renders
 * are asked of the render service with the arguments their resolvers pass. Anything else (another
 * field, a cache miss, an argument that does not coerce, a value execution would report as an
 * error) returns null, and Apollo executes the operation as usual; the render service's
 * `cachedRender` answers only what `render` would answer the same way. Validation, the operation
 * limits and every other request hook still run: this replaces execution only.
 *
 * The answer to an operation is kept per caller scope and variables text, with the L1 hits and the
 * widget lookups it was built from, and served again while each hit is still current (the same
 * installation, generation and L1 entry) and each lookup is the one `widget` would await: a
 * repeated render skips coercion and key building too. Kept answers are bounded over all
 * operations ({@link AnswerStore}).
 */
export function useWidgetRenderFastPath(
  schema: GraphQLSchema,
  services: FastPathServices,
): ApolloServerPlugin<GraphQLContext> {
  const fields = fieldsOf(schema);
  // Apollo reuses one parsed document per query text, so plans are compiled once per operation.
  const plans = new WeakMap<OperationDefinitionNode, Plan | null>();
  const answers = new AnswerStore();
  let planIds = 0;
  const answer = async (context: GraphQLRequestContext<GraphQLContext>) => {
    const { operation } = context;
    if (!operation) return null;
    let plan = plans.get(operation);
    if (plan === undefined) plans.set(operation, (plan = compile(operation, fields, (planIds += 1))));
    if (plan === null) return null;
    // The same operation with the same variables from the same kind of caller reads the same
    // entries: while they are current, the answer built from them is the answer.
    const variables = JSON.stringify(context.request.variables ?? {});
    const key =
      variables.length <= MAX_VARIABLES_CHARS
        ? `${plan.id}\u0000${services.widgets.actorScope(context.contextValue.actor)}\u0000${variables}`
        : null;
    const known = key === null ? undefined : answers.get(key);
    if (known?.served && isCurrent(known, services)) return known.served;
    const built = await build(plan.roots, schema, fields, operation, context, services);
    if (built && key !== null) answers.set(key, built);
    return built?.data ?? null;
  };
  return {
    async requestDidStart() {
      return {
        async responseForOperation(context) {
          const data = await answer(context);
          return data ? answerOf(data) : null;
        },
      };
    },
  };
}

function fieldsOf(schema: GraphQLSchema): Fields {
  const query = schema.getQueryType();
  const renderWidget = query?.getFields().renderWidget;
  const widget = query?.getFields().widget;
  const widgetType = widget && getNamedType(widget.type);
  const render = isObjectType(widgetType) ? widgetType.getFields().render : undefined;
  if (!query || !renderWidget || !widget || !isObjectType(widgetType) || !render) {
    throw new Error('useWidgetRenderFastPath: the schema lacks Query.renderWidget or Query.widget.render.');
  }
  return { query, renderWidget, widget, widgetType, render };
}

function isCurrent(answer: Answer, services: FastPathServices): boolean {
  return (
    answer.lookups.every((lookup) => services.addons.widget(lookup.addon, lookup.name) === lookup.record) &&
    answer.hits.every((hit) => services.widgets.stillCurrent(hit))
  );
}

/** The plan of an operation, or null when the fast path does not take it. */
function compile(operation: OperationDefinitionNode, fields: Fields, id: number): Plan | null {
  if (operation.operation !== 'query' || operation.directives?.length) return null;
  const roots = planSelections(operation.selectionSet, (node, key): RootPlan | null => {
    if (node.name.value === '__typename') return { typename: { key, typename: fields.query.name } };
    if (node.name.value === 'renderWidget') {
      const render = planRender(node, key, fields.renderWidget);
      return render && { render };
    }
    if (node.name.value !== 'widget' || !node.selectionSet) return null;
    const children = planSelections(node.selectionSet, (child, childKey) => {
      if (child.name.value === '__typename') {
        return { typename: { key: childKey, typename: fields.widgetType.name } };
      }
      if (child.name.value !== 'render') return null;
      const render = planRender(child, childKey, fields.render);
      return render && { render };
    });
    return children && { widget: { key, node, children } };
  });
  // Operations without a render (`{ __typename }`) are not this plugin's business.
  if (!roots || roots.every((root) => 'typename' in root)) return null;
  return { id, roots };
}

/**
 * Plans each field of a selection set, or returns null for anything but plain fields (fragments,
 * directives) or a field `plan` refuses.
 */
function planSelections<T>(
  selectionSet: SelectionSetNode,
  plan: (node: FieldNode, key: string) => T | null,
): T[] | null {
  const out: T[] = [];
  const keys = new Set<string>();
  for (const selection of selectionSet.selections) {
    if (selection.kind !== Kind.FIELD || selection.directives?.length) return null;
    const key = selection.alias?.value ?? selection.name.value;
    // Execution merges fields sharing a response key; a plan keeps one field per key.
    if (keys.has(key)) return null;
    keys.add(key);
    const planned = plan(selection, key);
    if (planned === null) return null;
    out.push(planned);
  }
  return out;
}

/** A render field selecting leaves of its output type (repeats allowed), or null. */
function planRender(node: FieldNode, key: string, field: GraphQLField<unknown, unknown>): RenderPlan | null {
  const output = getNamedType(field.type);
  if (!node.selectionSet || !isObjectType(output)) return null;
  const outputFields = output.getFields();
  const leaves: LeafPlan[] = [];
  for (const sub of node.selectionSet.selections) {
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
  return { key, node, field, leaves };
}

/**
 * An answer's data for serving again: each root field's value as the JSON text it serialises to,
 * written once and spliced into every later response (RawJson) instead of serialised each time.
 */
function asServed(data: Record<string, unknown>): Record<string, unknown> {
  const served: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(data)) {
    served[key] = typeof value === 'object' && value !== null ? new RawJson(JSON.stringify(value)) : value;
  }
  return served;
}

/** The operation's data from cached renders, or null when execution must answer instead. */
async function build(
  roots: RootPlan[],
  schema: GraphQLSchema,
  fields: Fields,
  operation: OperationDefinitionNode,
  context: GraphQLRequestContext<GraphQLContext>,
  services: FastPathServices,
): Promise<Answer | null> {
  const coerced = coercedVariables(schema, operation, context.request.variables);
  if (!coerced) return null;
  const answer: Answer = { data: {}, hits: [], lookups: [], bytes: 0 };
  const { actor, requestId } = context.contextValue;
  /** A render field's value for the widget `addon`/`widget` (its resolver's arguments), or null. */
  const render = (plan: RenderPlan, target: { addon: string; widget: string } | null) => {
    const args = argumentsOf(plan.field, plan.node, coerced);
    if (!args) return null;
    const rendered = services.widgets.cachedRender(actor, {
      addon: target ? target.addon : (args.addon as string),
      widget: target ? target.widget : (args.widget as string),
      config: args.config,
      context: args.context,
      siteId: args.siteId as string | null | undefined,
      requestId,
    });
    if (!rendered?.hit) return null;
    answer.hits.push(rendered.hit);
    return project(plan.leaves, rendered.view as unknown as Record<string, unknown>);
  };
  for (const root of roots) {
    if ('typename' in root) {
      answer.data[root.typename.key] = root.typename.typename;
    } else if ('render' in root) {
      const value = render(root.render, null);
      if (!value) return null;
      answer.data[root.render.key] = value;
    } else {
      const args = argumentsOf(fields.widget, root.widget.node, coerced);
      if (!args) return null;
      const addon = args.addon as string;
      const name = args.name as string;
      const lookup: WidgetLookup = { addon, name, record: services.addons.widget(addon, name) };
      let record: WidgetRecord;
      try {
        record = await lookup.record;
      } catch {
        return null; // not found: execution reports it
      }
      answer.lookups.push(lookup);
      const value: Record<string, unknown> = {};
      for (const child of root.widget.children) {
        if ('typename' in child) {
          value[child.typename.key] = child.typename.typename;
          continue;
        }
        const rendered = render(child.render, { addon: record.addonId, widget: record.name });
        if (!rendered) return null;
        value[child.render.key] = rendered;
      }
      answer.data[root.widget.key] = value;
    }
  }
  return answer;
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
