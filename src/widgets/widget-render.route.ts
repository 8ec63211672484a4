import { performance } from 'node:perf_hooks';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { WidgetRenderService } from './widget-render.service.js';
import type { RequestActorResolver } from '../http/request-actor.js';
import { ValidationError } from '../errors/index.js';
import { jsonValueProblem } from '../shared/storable-text.js';
import { newNonce, widgetCsp, widgetDocument } from './widget-output.js';
import type { RenderWidgetArgs, WidgetRender } from './widget-render.service.js';

interface Params {
  addonName: string;
  widgetName: string;
}

/**
 * `GET /api/widgets/:addonName/:widgetName?config=<json>&context=<json>&siteId=<id>` and `POST` to
 * the same path with `{ config, context, siteId }` as the JSON body. Answers the WidgetOutput as
 * JSON, or with `Accept: text/html` a whole HTML document under a nonce-based CSP, for
 * `<iframe sandbox="allow-scripts">`. Errors are JSON whatever the Accept header. A `Server-Timing`
 * header tells the time the server spent (`render;dur=<ms>`) and whether the render was cached.
 */
export function registerWidgetRoutes(
  app: FastifyInstance,
  services: { widgets: WidgetRenderService },
  actorOf: RequestActorResolver,
): void {
  const handle = async (request: FastifyRequest<{ Params: Params }>, reply: FastifyReply, input: Input) => {
    const started = performance.now();
    const actor = await actorOf(request);
    const args: RenderWidgetArgs = {
      addon: request.params.addonName,
      widget: request.params.widgetName,
      config: input.config,
      context: input.context,
      siteId: input.siteId,
      requestId: request.id,
    };
    const render = await services.widgets.render(actor, args);
    // For browser devtools and benchmarks: the server's share of the request, and whether it rendered.
    reply.header(
      'server-timing',
      `render;dur=${(performance.now() - started).toFixed(2)};desc="${render.view.cached ? 'cache hit' : 'rendered'}"`,
    );
    if (wantsHtml(request)) return sendDocument(reply, render, `${args.addon}/${args.widget}`);
    reply.header('content-type', 'application/json; charset=utf-8');
    return render.json ?? JSON.stringify(render.view);
  };

  app.get<{ Params: Params; Querystring: Record<string, unknown> }>(
    '/api/widgets/:addonName/:widgetName',
    (request, reply) => {
      const query = request.query;
      return handle(request, reply, {
        config: jsonParameter(query.config, 'config'),
        context: jsonParameter(query.context, 'context'),
        siteId: typeof query.siteId === 'string' && query.siteId !== '' ? query.siteId : null,
      });
    },
  );

  app.post<{ Params: Params }>('/api/widgets/:addonName/:widgetName', (request, reply) => {
    const body = request.body ?? {};
    if (typeof body !== 'object' || Array.isArray(body)) {
      throw ValidationError.of('request body', [
        { field: 'body', message: 'must be a JSON object { config, context, siteId }' },
      ]);
    }
    const { config, context, siteId } = body as Record<string, unknown>;
    return handle(request, reply, {
      config: config ?? {},
      context: context ?? {},
      siteId: typeof siteId === 'string' && siteId !== '' ? siteId : null,
    });
  });
}

interface Input {
  config: unknown;
  context: unknown;
  siteId: string | null;
}

/** A JSON query parameter; absent means `{}`. */
function jsonParameter(raw: unknown, field: string): unknown {
  if (raw === undefined || raw === '') return {};
  if (typeof raw !== 'string') {
    throw ValidationError.of('query', [{ field, message: 'must be given once, as JSON' }]);
  }
  let value: unknown;
  try {
    value = JSON.parse(raw) as unknown;
  } catch {
    throw ValidationError.of('query', [{ field, message: 'is not valid JSON' }]);
  }
  const problem = jsonValueProblem(value, field);
  if (problem) throw ValidationError.of('query', [problem]);
  return value;
}

/** True when the client asks for HTML (a browser navigating an iframe) rather than JSON. */
function wantsHtml(request: FastifyRequest): boolean {
  const accept = request.headers.accept;
  if (!accept || !accept.includes('text/html')) return false;
  const json = accept.indexOf('application/json');
  return json < 0 || accept.indexOf('text/html') < json;
}

function sendDocument(reply: FastifyReply, render: WidgetRender, title: string): string {
  const nonce = newNonce();
  reply
    .header('content-type', 'text/html; charset=utf-8')
    .header('content-security-policy', widgetCsp(nonce))
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer')
    // The nonce is fresh per response, so the document itself must not be cached.
    .header('cache-control', 'no-store');
  return widgetDocument(render.view, title, nonce);
}
