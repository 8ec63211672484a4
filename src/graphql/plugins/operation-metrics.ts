import type { ApolloServerPlugin } from '@apollo/server';
import type { Counter, Histogram } from 'prom-client';

const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;
/** Clients choose operation names; past this many distinct ones, the rest share one label. */
const MAX_NAMES = 200;

/**
 * Counts GraphQL operations by name, type and outcome (`success`, `error`, `invalid`) and times
 * them, with operation names bounded so clients cannot blow up label cardinality.
 */
export function useOperationMetrics(metrics: {
  operations: Counter<'operation_name' | 'operation_type' | 'outcome'>;
  duration: Histogram<'operation_name' | 'operation_type'>;
}): ApolloServerPlugin {
  const seen = new Set<string>();
  const label = (name: string | null | undefined): string => {
    if (!name) return 'anonymous';
    if (!NAME.test(name)) return 'other';
    if (seen.has(name)) return name;
    if (seen.size >= MAX_NAMES) return 'other';
    seen.add(name);
    return name;
  };
  return {
    async requestDidStart() {
      const started = process.hrtime.bigint();
      return {
        async willSendResponse({ operation, operationName, errors }) {
          const labels = {
            operation_name: label(operationName),
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
