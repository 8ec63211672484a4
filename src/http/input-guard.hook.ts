import type { FastifyInstance } from 'fastify';
import { ValidationError } from '../errors/index.js';
import { jsonValueProblem } from '../shared/storable-text.js';

/**
 * Refuses REST input no route can use before any route works on it: path segments, query
 * parameters and JSON bodies holding text PostgreSQL cannot store (NUL, unpaired surrogates) or
 * nested deeper than 64 levels. BAD_USER_INPUT (400) naming the field, e.g. `params.addonName`.
 */
export function registerInputGuard(app: FastifyInstance): void {
  app.addHook('preHandler', async (request) => {
    if (!request.url.startsWith('/api/')) return;
    const problem =
      jsonValueProblem(request.params, 'params') ??
      jsonValueProblem(request.query, 'query') ??
      jsonValueProblem(request.body, 'body');
    if (problem) throw ValidationError.of('request', [problem]);
  });
}
