import { hash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { ForbiddenError, NotFoundError, ValidationError } from '../errors/index.js';
import type { Actor } from '../auth/actor.js';
import { isUuid } from '../shared/ids.js';
import type { GenerationBump } from '../events/effects.repository.js';
import { validateWithDefaults } from '../shared/json-schema.js';
import { canonicalJson } from '../shared/canonical-json.js';
import type { Metrics } from '../infrastructure/metrics/metrics.js';
import type { AddonManifest, WidgetManifest } from '../addons/addon-manifest.js';
import type { AddonBundleCache } from '../executions/addon-bundle.cache.js';
import type { ExecutionService } from '../executions/execution.service.js';
import type { InstallationLookup, ResolvedInstallation } from '../installations/installation-lookup.js';
import type { InstallationChangeListener } from '../installations/installation.service.js';
import type { ResultSources } from '../shared/result-sources.js';
import { WidgetCache, type CachedRender, type WidgetView } from './widget-cache.js';
import { finishRender } from './widget-output.js';

export interface RenderWidgetArgs {
  /** Addon id or name. */
  addon: string;
  widget: string;
  /** The widget config (validated against the widget's configSchema, defaults applied). */
  config: unknown;
  /** The page context; only the fields the widget declares in `varyOn` reach the render. */
  context: unknown;
  /** The site whose installation renders; a site key's own site when omitted. */
  siteId?: string | null;
  requestId?: string;
}

export interface WidgetRender {
  /**
   * What clients receive: the output, and `cached` (true when served from L1 or L2). Frozen: every
   * hit of a cache entry returns the same object.
   */
  view: Readonly<WidgetView>;
  /** `view` as JSON, ready to send (cache hits only). */
  json: string | null;
}

/** What an L1 hit was read through: the same arguments read the same entry while these hold. */
interface RenderHit {
  readonly siteId: string;
  readonly addon: string;
  readonly target: ResolvedInstallation;
  readonly generation: number;
  readonly key: string;
  readonly entry: CachedRender;
}

/**
 * Renders widgets of addons installed on a site, through the two-level {@link WidgetCache}.
 *
 * Rendering model:
 * - The render runs under the site's enabled installation, at its installed version.
 * - The first argument of the render function is the widget config sent by the frontend, validated
 *   against the widget's `configSchema` with defaults applied; `ctx.config` is the installation's
 *   config, as in every other entry.
 * - The second argument holds only the context fields listed in the widget's `varyOn`. The cache
 *   key covers exactly those, so a field the widget did not declare can neither change its output
 *   nor leak one visitor's context into another visitor's cached render.
 * - Renders are cached per site (they run with the site's storage and installation).
 *
 * Who may render: a site key (its own site), or any caller naming a site that has the addon
 * installed and enabled, anonymous callers included: widgets are public page content that a site's
 * frontend, usually in the visitor's browser without a key, embeds.
 */
export class WidgetRenderService {
  constructor(
    private readonly deps: {
      lookup: InstallationLookup;
      bundles: AddonBundleCache;
      executions: ExecutionService;
      cache: WidgetCache;
      metrics: Metrics;
    },
  ) {
    // A render of the new generation must not run with the installation as it was cached before
    // the change that bumped it (learned late, e.g. after a Redis outage, from PostgreSQL).
    deps.cache.onChange((siteId) => deps.lookup.forgetSite(siteId));
  }

  /**
   * What the resolvers return: the view, without a promise on a cache hit. `sources` is told what
   * the render was read from (an L1 hit and what led to it), or that it was a miss.
   */
  view(
    actor: Actor,
    args: RenderWidgetArgs,
    sources?: ResultSources,
  ): Readonly<WidgetView> | Promise<Readonly<WidgetView>> {
    const hit = this.cachedRender(actor, args);
    if (hit) {
      sources?.add(() => this.stillCurrent(hit));
      return hit.entry.view;
    }
    sources?.uncacheable();
    return this.renderUncached(actor, args).then((render) => render.view);
  }

  /** Renders (or serves from cache) one widget for a site. */
  async render(actor: Actor, args: RenderWidgetArgs): Promise<WidgetRender> {
    const hit = this.cachedRender(actor, args);
    return hit ? { view: hit.entry.view, json: hit.entry.json } : this.renderUncached(actor, args);
  }

  /**
   * The L1 hit when everything that leads to it (installation, version, generation) is in memory:
   * found without a promise, so a cache hit waits for nothing. Null whenever {@link render} would
   * have to wait or would fail; `render` then does the work and reports the error.
   */
  private cachedRender(actor: Actor, args: RenderWidgetArgs): RenderHit | null {
    const siteId = permittedSite(actor, args.siteId);
    if (siteId === null || !isContextObject(args.context)) return null;
    const target = this.cachedInstallation(siteId, args.addon);
    const loaded = target && this.deps.bundles.loaded(target.installation.addonVersionId);
    const widget = loaded && findWidget(loaded.manifest, args.widget);
    if (!target || !widget) return null;
    const generation = this.deps.cache.generation(siteId, target.addon.id);
    if (typeof generation !== 'number') return null;
    const varied = pick(args.context ?? {}, widget.varyOn);
    const key = this.cacheKey(siteId, target, widget, generation, args.config, varied);
    const entry = this.deps.cache.getL1(key);
    return entry ? { siteId, addon: args.addon, target, generation, key, entry } : null;
  }

  /**
   * Whether {@link cachedRender} would read the same entry for the same arguments now: the same
   * installation lookup, the same generation, and the entry still in L1. Each check goes through
   * the same call as cachedRender does (the generation's background refresh, L1's expiry, LRU and
   * hit counter included); what it skips (key building, schema and version lookups) is
   * deterministic for the same arguments.
   */
  private stillCurrent(hit: RenderHit): boolean {
    return (
      this.cachedInstallation(hit.siteId, hit.addon) === hit.target &&
      this.deps.cache.generation(hit.siteId, hit.target.addon.id) === hit.generation &&
      this.deps.cache.getL1(hit.key) === hit.entry
    );
  }

  /** {@link render} past a miss of {@link cachedRender}: it may wait, and it reports errors. */
  private async renderUncached(actor: Actor, args: RenderWidgetArgs): Promise<WidgetRender> {
    const siteId = renderingSite(actor, args.siteId);
    const context = args.context ?? {};
    if (!isContextObject(context)) {
      throw ValidationError.of('arguments', [{ field: 'context', message: 'must be a JSON object' }]);
    }
    let target = await this.deps.lookup.require(siteId, args.addon);
    const addonId = target.addon.id;
    const current = this.deps.cache.generation(siteId, addonId);
    const generation = typeof current === 'number' ? current : await current;
    // The installation as read once the generation is known: a bump learned before this point
    // dropped the site's cached installations (see the constructor), so this one is not older.
    target = await this.deps.lookup.require(siteId, args.addon);
    const versionId = target.installation.addonVersionId;
    const { bundle, manifest } =
      this.deps.bundles.loaded(versionId) ?? (await this.deps.bundles.load(versionId));
    const widget = findWidget(manifest, args.widget);
    if (!widget) throw new NotFoundError('Widget', `${target.addon.name}/${args.widget}`);
    const varied = pick(context, widget.varyOn);
    const key = this.cacheKey(siteId, target, widget, generation, args.config, varied);
    const known = this.deps.cache.getL1(key);
    if (known) return { view: known.view, json: known.json };

    const { render, cached } = await this.deps.cache.resolve(key, async () => {
      const validated = validateWithDefaults(widget.configSchema, args.config, 'config');
      if (!validated.ok) throw ValidationError.of(`config of widget ${widget.name}`, validated.problems);
      const started = performance.now();
      const result = await this.deps.executions.run({
        target,
        bundle,
        entry: { kind: 'widget', name: widget.name },
        input: varied,
        widgetConfig: validated.value,
        requestId: args.requestId,
      });
      const cacheKey = hash('sha256', key, 'base64url').slice(0, 32);
      const output = await finishRender(result.output as Record<string, unknown>, {
        rootId: `w${Buffer.from(cacheKey, 'base64url').toString('hex').slice(0, 16)}`,
        cacheKey,
        version: bundle.version,
      });
      this.deps.metrics.widgetRenderTime.observe(
        { addon_id: addonId, widget_id: widget.name },
        (performance.now() - started) / 1000,
      );
      return output;
    });
    if (cached) return { view: render.view, json: render.json };
    return { view: Object.freeze({ ...render.output, cached: false }), json: null };
  }

  /**
   * The cache key of a render. The raw config is keyed: the same text under the same (immutable)
   * version validates the same way, so a hit needs no validation; invalid configs never reach the
   * cache. Of the context, only the fields the widget varies on count (`varied`).
   */
  private cacheKey(
    siteId: string,
    target: ResolvedInstallation,
    widget: WidgetManifest,
    generation: number,
    config: unknown,
    varied: Record<string, unknown>,
  ): string {
    // The installation's last change is keyed too: a render made under a config or version the
    // lookup no longer holds is never read again, whether or not its generation bump arrived.
    const { installation } = target;
    const material = `${installation.addonVersionId}\u0000${installation.updatedAt.getTime()}\u0000${widget.name}\u0000${canonicalJson(config)}\u0000${canonicalJson(varied)}`;
    return this.deps.cache.key(siteId, target.addon.id, generation, material);
  }

  /** The enabled installation from the lookup's memory; undefined when not cached or disabled. */
  private cachedInstallation(siteId: string, addon: string): ResolvedInstallation | undefined {
    try {
      return this.deps.lookup.cached(siteId, addon);
    } catch {
      return undefined; // disabled: render() reports it
    }
  }

  /** Installation changes (config, version, enabled, uninstall) drop that addon's renders on the site. */
  readonly onInstallationChange: InstallationChangeListener = ({ installation }) => {
    void this.deps.cache.invalidate(installation.siteId, installation.addonId).catch(() => undefined);
  };

  /** Generations this instance bumped in an event's transaction: learned here, told to the others. */
  readonly onInvalidated = (bumps: GenerationBump[]): void => {
    void this.deps.cache.learned(bumps);
  };

  /** Starts keeping the render cache current with PostgreSQL (once the migrations are applied). */
  start(): void {
    this.deps.cache.start();
  }

  close(): void {
    this.deps.cache.close();
  }
}

/** The site a render runs for: a site key's own, or the one named (required otherwise). */
function renderingSite(actor: Actor, requested: string | null | undefined): string {
  const site = permittedSite(actor, requested);
  if (site !== null) return site;
  if (actor.kind === 'site') throw new ForbiddenError('A site key can only render widgets of its own site.');
  if (!requested) {
    throw ValidationError.of('arguments', [
      { field: 'siteId', message: 'is required unless the request uses a site key' },
    ]);
  }
  throw new NotFoundError('Site', requested);
}

/** The rule of {@link renderingSite} without its errors: the site, or null where it refuses. */
function permittedSite(actor: Actor, requested: string | null | undefined): string | null {
  if (actor.kind === 'site') return requested && requested !== actor.siteId ? null : actor.siteId;
  return requested && isUuid(requested) ? requested : null;
}

/** A page context is a JSON object (absent means empty). */
function isContextObject(context: unknown): context is Record<string, unknown> | null | undefined {
  return context == null || (typeof context === 'object' && !Array.isArray(context));
}

function findWidget(manifest: AddonManifest, name: string): WidgetManifest | undefined {
  return manifest.widgets.find((w) => w.name === name);
}

/** The declared context fields (top-level names) present in the context. */
function pick(context: Record<string, unknown>, fields: readonly string[]): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const field of fields) {
    if (Object.prototype.hasOwnProperty.call(context, field) && context[field] !== undefined) {
      out[field] = context[field];
    }
  }
  return out;
}
