import type { Actor } from '../auth/actor.js';
import type { Services } from '../app/services.js';
import type { Loaders } from './loaders.js';
import type { ResultSources } from '../shared/result-sources.js';

/** What every resolver receives: who calls, the services, and this request's loaders. */
export interface GraphQLContext {
  actor: Actor;
  requestId: string;
  services: Services;
  loaders: Loaders;
  /** What this request's answer is built from, for the response cache (HTTP only). */
  sources?: ResultSources;
}
