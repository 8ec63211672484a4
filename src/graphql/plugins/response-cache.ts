import { HeaderMap, type ApolloServerPlugin, type GraphQLRequestContext } from '@apollo/server';
import { TypeInfo, visit, visitWithTypeInfo, type DocumentNode, type GraphQLSchema } from 'graphql';
import { LRUCache } from 'lru-cache';
import type { Counter } from 'prom-client';
import { RawJson, stringifyWithRawJson } from '../../shared/raw-json.js';
import type { ResultSources } from '../../shared/result-sources.js';
import type { GraphQLContext } from '../context.js';

export interface ResponseCacheOptions {
  /**
   * The fields a kept response may hold (`Type.field`, or `Type.*` for every field of a type;
   * `__typename` always): fields whose value depends on nothing but their arguments, the caller's
   * scope and what their resolvers report to `context.sources`. An operation selecting any other
   * field anywhere in its document is never kept.
   */
  fields: readonly string[];
  /** What makes two callers' answers differ (see `actorScope`). */
  scope: (context: GraphQLContext) => string;
  /** Responses kept, over every operation, and the bytes they hold. */
  maxEntries?: number;
  maxBytes?: number;
  /** Operations whose variables are longer than this (as JSON) are never kept. */
  maxVariablesChars?: number;
  /** Responses served from the cache (`hit`), executed and kept (`stored`), or executed again because a source changed (`stale`). */
  counter?: Counter<'outcome'>;
}

/** A response as execution answered it, and the checks that its sources still read the same. */
interface KeptResponse {
  data: RawJson;
  sources: Array<() => boolean>;
}

/** The sources one request's resolvers report. */
class RequestSources implements ResultSources {
  readonly checks: Array<() => boolean> = [];
  reusable = true;

  add(isCurrent: () => boolean): void {
    this.checks.push(isCurrent);
  }

  uncacheable(): void {
    this.reusable = false;
  }
}

/** A response head with nothing to add (Apollo merges it into the request's own head). */
const NO_HEAD = { headers: new HeaderMap() };

/**
 * A response cache in the pattern of envelop's `useResponseCache` and Apollo's response cache
 * plugin, where a kept response stays valid exactly as long as what it was built from: the first
 * request executes through graphql-js as any other; its response (without errors) is kept per
 * (document, of which Apollo keeps one per query hash; operation name; variables; caller scope)
 * with the checks its resolvers reported, and served again to the same operation, variables and
 * scope only while every check holds.
 * Validation, the operation limits and every other request hook run before it answers; only
 * queries made of the given fields are kept, and only when some resolver reported a source (a
 * response built from nothing in particular is cheaper to execute than to keep).
 */
export function useResponseCache(
  schema: GraphQLSchema,
  options: ResponseCacheOptions,
): ApolloServerPlugin<GraphQLContext> {
  const allowed = new Set(options.fields);
  const maxVariablesChars = options.maxVariablesChars ?? 2048;
  // Apollo keeps one parsed document per query hash, so each document is checked once, and its
  // number stands for its hash in keys (a document parsed again gets a new number: a miss).
  const documents = new WeakMap<DocumentNode, number | null>();
  let documentCount = 0;
  const documentId = (document: DocumentNode) => {
    let id = documents.get(document);
    if (id === undefined) {
      id = selectsOnly(schema, document, allowed) ? (documentCount += 1) : null;
      documents.set(document, id);
    }
    return id;
  };
  const responses = new LRUCache<string, KeptResponse>({
    max: options.maxEntries ?? 5_000,
    maxSize: options.maxBytes ?? 16 * 1024 * 1024,
    // Twice the text: a kept response also keeps alive the entries its checks hold (the renders).
    sizeCalculation: (kept, key) => 2 * (key.length + 2 * kept.data.json.length),
  });
  const count = (outcome: 'hit' | 'stored' | 'stale') => options.counter?.inc({ outcome });

  /** The key of a request that may be kept, or null. */
  const keyOf = (request: GraphQLRequestContext<GraphQLContext>): string | null => {
    const { operation, document } = request;
    const id = operation?.operation === 'query' && document ? documentId(document) : null;
    if (id === null) return null;
    const variables = JSON.stringify(request.request.variables ?? {});
    if (variables.length > maxVariablesChars) return null;
    const scope = options.scope(request.contextValue);
    return `${id}\u0000${request.operationName ?? ''}\u0000${scope}\u0000${variables}`;
  };

  return {
    async requestDidStart({ contextValue }) {
      const sources = new RequestSources();
      contextValue.sources = sources;
      let key: string | null = null;
      let served = false;
      return {
        async responseForOperation(request) {
          key = keyOf(request);
          if (key === null) return null;
          const kept = responses.get(key);
          if (!kept) return null;
          if (!kept.sources.every((isCurrent) => isCurrent())) {
            responses.delete(key);
            count('stale');
            return null;
          }
          served = true;
          count('hit');
          return { http: NO_HEAD, body: { kind: 'single', singleResult: { data: kept.data as never } } };
        },
        async willSendResponse({ response }) {
          if (key === null || served || !sources.reusable || sources.checks.length === 0) return;
          if (response.body.kind !== 'single' || response.body.singleResult.errors) return;
          const { data } = response.body.singleResult;
          if (!data) return;
          // Kept as its JSON text and spliced into every later response as is.
          responses.set(key, { data: new RawJson(stringifyWithRawJson(data)!), sources: sources.checks });
          count('stored');
        },
      };
    },
  };
}

/**
 * Whether every field `document` selects, in every operation and fragment, is `allowed`, and it
 * selects one at least (`{ __typename }` alone is not worth keeping).
 */
function selectsOnly(schema: GraphQLSchema, document: DocumentNode, allowed: ReadonlySet<string>): boolean {
  const typeInfo = new TypeInfo(schema);
  let only = true;
  let some = false;
  visit(
    document,
    visitWithTypeInfo(typeInfo, {
      Field(node) {
        const parent = typeInfo.getParentType()?.name;
        const name = node.name.value;
        if (name === '__typename') return;
        if (!parent || (!allowed.has(`${parent}.${name}`) && !allowed.has(`${parent}.*`))) only = false;
        some = true;
      },
    }),
  );
  return only && some;
}
