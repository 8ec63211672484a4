import type { FastifyInstance } from 'fastify';
import type { AddonService } from './addon.service.js';
import type { RequestActorResolver } from '../http/request-actor.js';

/**
 * `POST /api/addons/register`: the original REST registration. The body is the manifest itself
 * (`{ name, version, widgets, endpoints, ... }`) plus `source` (and optionally `wasmBase64`).
 */
export function registerAddonRoutes(
  app: FastifyInstance,
  services: { addons: AddonService },
  actorOf: RequestActorResolver,
): void {
  app.post('/api/addons/register', async (request, reply) => {
    const actor = await actorOf(request);
    const body = (request.body ?? {}) as Record<string, unknown>;
    const { source, wasmBase64, ...manifest } = body;
    const { addon, version } = await services.addons.publish(actor, { manifest, source, wasmBase64 });
    return reply.status(201).send({
      addon: { id: addon.id, name: addon.name, category: addon.category, latestVersion: version.version },
      version: { id: version.id, version: version.version, createdAt: version.createdAt },
    });
  });
}
