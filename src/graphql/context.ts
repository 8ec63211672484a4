import type { Actor } from '../auth/actor.js';
import type { Services } from '../app/services.js';
import type { Loaders } from './loaders.js';

/** What every resolver receives: who calls, the services, and this request's loaders. */
export interface GraphQLContext {
  actor: Actor;
  requestId: string;
  services: Services;
  loaders: Loaders;
}
