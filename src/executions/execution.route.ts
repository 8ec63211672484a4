import type { FastifyInstance } from 'fastify';
import type { ExecutionService } from './execution.service.js';
import type { RequestActorResolver } from '../http/request-actor.js';
import { ValidationError } from '../errors/index.js';

/** `POST /api/addons/:addonName/execute` with `{ "action": "<function>", "data": ... }`. */
export function registerExecutionRoutes(
  app: FastifyInstance,
  services: { executions: ExecutionService },
  actorOf: RequestActorResolver,
): void {
  app.post<{ Params: { addonName: string } }>('/api/addons/:addonName/execute', async (request, reply) => {
    const actor = await actorOf(request);
    const body = (request.body ?? {}) as { action?: unknown; data?: unknown; siteId?: unknown };
    if (typeof body.action !== 'string' || body.action === '') {
      throw ValidationError.of('request body', [
        { field: 'action', message: 'must name a function of the addon' },
      ]);
    }
    const result = await services.executions.executeFunction(actor, {
      addon: request.params.addonName,
      functionName: body.action,
      data: body.data ?? null,
      siteId: typeof body.siteId === 'string' ? body.siteId : null,
      readonlyOnly: false,
      requestId: request.id,
    });
    // The output's JSON text goes out as it came from the sandbox (validated there, never parsed here).
    return reply.type('application/json; charset=utf-8').send(`{"result":${result.json}}`);
  });
}
