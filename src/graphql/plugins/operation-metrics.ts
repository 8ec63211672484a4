import type { ApolloServerPlugin } from '@apollo/server';
import type { Counter, Histogram } from 'prom-client';
import { OperationNameLabels } from '../../infrastructure/metrics/operation-name-labels.js';

/** The part of a request's context the metrics read: who is calling (absent when auth failed). */
interface CallerContext {
  actor?: { kind: string; keyId?: string };
}

/**
 * Counts GraphQL operations by name, type and outcome (`success`, `error`, `invalid`) and times
 * them. Operation names are labelled only when the server knows them, or within an authenticated
 * key's budget (see {@link OperationNameLabels}); the rest are `other`, so anonymous callers cannot
 * blow up label cardinality or crowd out legitimate names.
 */
export function useOperationMetrics(metrics: {
  operations: Counter<'operation_name' | 'operation_type' | 'outcome'>;
  duration: Histogram<'operation_name' | 'operation_type'>;
  labels?: OperationNameLabels;
}): ApolloServerPlugin<CallerContext> {
  const names = metrics.labels ?? new OperationNameLabels();
  return {
    async requestDidStart() {
      const started = process.hrtime.bigint();
      return {
        async willSendResponse({ operation, operationName, errors, contextValue }) {
          const actor = contextValue?.actor;
          const keyId = actor && actor.kind !== 'anonymous' ? (actor.keyId ?? null) : null;
          const labels = {
            operation_name: names.label(operationName, keyId),
            operation_type: operation?.operation ?? 'unknown',
          };
          const outcome = !operation ? 'invalid' : errors && errors.length > 0 ? 'error' : 'success';
          metrics.operations.inc({ ...labels, outcome });
          metrics.duration.observe(labels, Number(process.hrtime.bigint() - started) / 1e9);
        },
      };
    },
  };
}
