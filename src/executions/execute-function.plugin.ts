import type { ApolloServerPlugin } from '@apollo/server';
import {
  getNamedType,
  isLeafType,
  Kind,
  type FieldNode,
  type GraphQLField,
  type GraphQLLeafType,
  type GraphQLSchema,
  type OperationDefinitionNode,
} from 'graphql';
import type { GraphQLContext } from '../graphql/context.js';
import { answerOf, argumentsOf, coercedVariables } from '../graphql/plugins/answer-without-execution.js';
import type { ExecuteFunctionArgs } from './execution.service.js';

/** An operation whose only root field is `executeAddonFunction`. */
interface Plan {
  key: string;
  node: FieldNode;
  field: GraphQLField<unknown, unknown>;
  type: GraphQLLeafType;
  /** `Query.executeAddonFunction` runs only functions the manifest marks readonly. */
  readonlyOnly: boolean;
}

/**
 * Failures of runs the fast path started, by request context, for the resolver to report
 * (see {@link executeOnce}).
 */
const failedRuns = new WeakMap<GraphQLContext, Promise<unknown>>();

/**
 * What the `executeAddonFunction` resolvers return: the run this request's fast path started and
 * saw fail, if any (execution then reports its error in the usual shape, without running the
 * function a second time), else a new run.
 */
export function executeOnce(ctx: GraphQLContext, args: ExecuteFunctionArgs): Promise<unknown> {
  const failed = failedRuns.get(ctx);
  if (failed) {
    failedRuns.delete(ctx);
    return failed;
  }
  return ctx.services.executions.executeFunction(ctx.actor, args);
}

/**
 * Runs `executeAddonFunction` operations without graphql-js execution. The function's output
 * comes back from the sandbox as JSON text that is spliced into the response as is, so the
 * execution phase (its hooks, the resolver wrappers, field completion, several awaits) is all that
 * execution would add to the run, and on a warm call that is a tenth of the API's CPU.
 *
 * It takes an operation only when its one root field is `executeAddonFunction` (a query or a
 * mutation, any alias), with no fragments and no directives. Variables and arguments are coerced
 * by graphql-js's own `getVariableValues` and `getArgumentValues` (a coercion error returns null:
 * execution reports it), and the service is called with the arguments the resolvers pass. When the
 * run fails, the failure is left to execution: the resolver hands back this same failed run
 * (see {@link executeOnce}), so the error is masked, coded and located exactly as before.
 * Validation, the operation limits and every other request hook still run.
 */
export function useExecuteFunctionFastPath(schema: GraphQLSchema): ApolloServerPlugin<GraphQLContext> {
  const roots = {
    query: schema.getQueryType()?.getFields().executeAddonFunction,
    mutation: schema.getMutationType()?.getFields().executeAddonFunction,
  };
  // Apollo reuses one parsed document per query text, so plans are made once per operation.
  const plans = new WeakMap<OperationDefinitionNode, Plan | null>();
  return {
    async requestDidStart() {
      return {
        async responseForOperation(context) {
          const { operation } = context;
          if (!operation) return null;
          let plan = plans.get(operation);
          if (plan === undefined) plans.set(operation, (plan = planOf(operation, roots)));
          if (plan === null) return null;
          const variables = coercedVariables(schema, operation, context.request.variables);
          const args = variables && argumentsOf(plan.field, plan.node, variables);
          if (!args) return null;
          const ctx = context.contextValue;
          const run = ctx.services.executions.executeFunction(ctx.actor, {
            addon: args.addonId as string,
            functionName: args.function as string,
            data: args.data,
            siteId: args.siteId as string | null | undefined,
            readonlyOnly: plan.readonlyOnly,
            requestId: ctx.requestId,
          });
          let output: unknown;
          try {
            output = await run;
          } catch {
            failedRuns.set(ctx, run);
            return null;
          }
          return answerOf({ [plan.key]: output == null ? null : plan.type.serialize(output) });
        },
      };
    },
  };
}

/** The plan of an operation, or null when the fast path does not take it. */
function planOf(
  operation: OperationDefinitionNode,
  roots: { query?: GraphQLField<unknown, unknown>; mutation?: GraphQLField<unknown, unknown> },
): Plan | null {
  if (operation.operation === 'subscription' || operation.directives?.length) return null;
  const field = roots[operation.operation];
  const [node, ...others] = operation.selectionSet.selections;
  if (!field || !node || others.length > 0 || node.kind !== Kind.FIELD) return null;
  if (node.name.value !== 'executeAddonFunction' || node.directives?.length || node.selectionSet) return null;
  const type = getNamedType(field.type);
  if (!isLeafType(type)) return null;
  return {
    key: node.alias?.value ?? node.name.value,
    node,
    field,
    type,
    readonlyOnly: operation.operation === 'query',
  };
}
