import { Arg, Ctx, FieldResolver, ID, Query, Resolver, Root } from 'type-graphql';
import { GraphQLJSON } from 'graphql-scalars';
import type { GraphQLContext } from '../graphql/context.js';
import { Widget } from '../addons/addon.type.js';
import type { WidgetRecord } from '../addons/addon.repository.js';
import { WidgetOutput } from './widget.type.js';

/**
 * The fields a kept GraphQL response may hold (see useResponseCache): `Query.widget` and the
 * render fields report what they read to `ctx.sources`; the rest are plain data of those.
 */
export const RENDER_RESPONSE_FIELDS = [
  'Query.renderWidget',
  'Query.widget',
  'Widget.render',
  ...[
    'id',
    'name',
    'displayName',
    'description',
    'category',
    'configSchema',
    'previewImage',
    'responsive',
    'varyOn',
  ].map((field) => `Widget.${field}`),
  'WidgetOutput.*',
];

const siteIdDescription =
  'Site whose installation renders; defaults to the site of a site key, required otherwise.';

/** Widget rendering: `Widget.render` and the direct `Query.renderWidget`. */
@Resolver(() => Widget)
export class WidgetRenderResolver {
  @FieldResolver(() => WidgetOutput, {
    description:
      "Renders this widget at the version installed on the site. config: the widget's config (validated " +
      'against configSchema, defaults applied); context: page context, of which only the varyOn fields are used.',
  })
  render(
    @Root() widget: WidgetRecord,
    @Arg('config', () => GraphQLJSON) config: unknown,
    @Arg('context', () => GraphQLJSON) context: unknown,
    @Arg('siteId', () => ID, { nullable: true, description: siteIdDescription }) siteId: string | null,
    @Ctx() ctx: GraphQLContext,
  ) {
    const args = {
      addon: widget.addonId,
      widget: widget.name,
      config,
      context,
      siteId,
      requestId: ctx.requestId,
    };
    return ctx.services.widgets.view(ctx.actor, args, ctx.sources);
  }

  @Query(() => WidgetOutput, {
    description: 'Renders a widget of an addon installed on the site, without fetching the Widget first.',
  })
  renderWidget(
    @Arg('addon', () => String, { description: 'Addon id or name.' }) addon: string,
    @Arg('widget', () => String) widget: string,
    @Arg('config', () => GraphQLJSON) config: unknown,
    @Arg('context', () => GraphQLJSON) context: unknown,
    @Arg('siteId', () => ID, { nullable: true, description: siteIdDescription }) siteId: string | null,
    @Ctx() ctx: GraphQLContext,
  ) {
    const args = { addon, widget, config, context, siteId, requestId: ctx.requestId };
    return ctx.services.widgets.view(ctx.actor, args, ctx.sources);
  }
}
