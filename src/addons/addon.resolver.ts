import { Arg, Ctx, FieldResolver, ID, Int, Mutation, Query, Resolver, Root } from 'type-graphql';
import { toConnection } from '../graphql/connection.js';
import { AddonCategory, WidgetCategory } from '../generated/prisma/enums.js';
import type { GraphQLContext } from '../graphql/context.js';
import {
  Addon,
  AddonConnection,
  AddonDependency,
  AddonVersion,
  ApiEndpoint,
  RegisterAddonInput,
  RegisterAddonResult,
  RegistryUsage,
  Widget,
} from './addon.type.js';
import { encodeCursor, type AddonPage } from './addon.service.js';
import type { AddonRecord, AddonVersionSummary, WidgetRecord } from './addon.repository.js';

@Resolver(() => Addon)
export class AddonResolver {
  @Query(() => Addon, { nullable: true, description: 'One addon by id or unique name.' })
  addon(
    @Arg('id', () => ID, { nullable: true }) id: string | null,
    @Arg('name', () => String, { nullable: true }) name: string | null,
    @Ctx() ctx: GraphQLContext,
  ) {
    return ctx.services.addons.find({ id, name });
  }

  @Query(() => AddonConnection, {
    description: 'The catalogue, sorted by name, with filters.',
    complexity: ({ args, childComplexity }) => 1 + (args.first ?? 20) * childComplexity,
  })
  async addons(
    @Arg('category', () => AddonCategory, { nullable: true }) category: AddonCategory | null,
    @Arg('search', () => String, { nullable: true, description: 'Text in name or description.' })
    search: string | null,
    @Arg('first', () => Int, { nullable: true, defaultValue: 20 }) first: number,
    @Arg('after', () => String, { nullable: true }) after: string | null,
    @Ctx() ctx: GraphQLContext,
  ) {
    return toAddonConnection(await ctx.services.addons.list({ category, search, first, after }), after);
  }

  @Query(() => RegistryUsage, {
    description:
      "What a developer's addons take of the registry and the most it keeps: a developer key's own, or the named developer's (admin).",
  })
  registryUsage(
    @Arg('developerId', () => ID, { nullable: true }) developerId: string | null,
    @Ctx() ctx: GraphQLContext,
  ) {
    return ctx.services.addons.registryUsage(ctx.actor, developerId);
  }

  @Mutation(() => RegisterAddonResult, {
    description: 'Publishes a version (the first one creates the addon).',
  })
  registerAddon(
    @Arg('input', () => RegisterAddonInput) input: RegisterAddonInput,
    @Ctx() ctx: GraphQLContext,
  ) {
    return ctx.services.addons.publish(ctx.actor, input);
  }

  @Mutation(() => Boolean, {
    description:
      "Deletes a published version that no site has installed, other than the latest and any only one satisfying another addon's dependency, and gives its bytes back to the owner's registry quota (owner or admin).",
  })
  deleteAddonVersion(
    @Arg('id', () => ID, { description: 'Addon id or name.' }) id: string,
    @Arg('version', () => String) version: string,
    @Ctx() ctx: GraphQLContext,
  ) {
    return ctx.services.addons.deleteVersion(ctx.actor, { addon: id, version });
  }

  @FieldResolver(() => String, { description: 'The latest published version.' })
  async version(@Root() addon: AddonRecord, @Ctx() ctx: GraphQLContext) {
    return (await latestVersion(addon, ctx)).version;
  }

  @FieldResolver(() => AddonVersion)
  latestVersion(@Root() addon: AddonRecord, @Ctx() ctx: GraphQLContext) {
    return latestVersion(addon, ctx);
  }

  @FieldResolver(() => [AddonVersion], {
    description: 'Every published version, newest first.',
    // Unbounded list: priced as ten versions.
    complexity: ({ childComplexity }) => 1 + 10 * childComplexity,
  })
  versions(@Root() addon: AddonRecord, @Ctx() ctx: GraphQLContext) {
    return ctx.loaders.versionsByAddonId.load(addon.id);
  }

  @FieldResolver(() => [Widget])
  widgets(@Root() addon: AddonRecord, @Ctx() ctx: GraphQLContext) {
    return ctx.loaders.widgetsByVersionId.load(addon.latestVersionId!);
  }

  @FieldResolver(() => [ApiEndpoint])
  apis(@Root() addon: AddonRecord, @Ctx() ctx: GraphQLContext) {
    return ctx.loaders.functionsByVersionId.load(addon.latestVersionId!);
  }

  @FieldResolver(() => [AddonDependency])
  async dependencies(@Root() addon: AddonRecord, @Ctx() ctx: GraphQLContext) {
    return toDependencies(await ctx.loaders.dependenciesByVersionId.load(addon.latestVersionId!));
  }

  @FieldResolver(() => [String])
  async permissions(@Root() addon: AddonRecord, @Ctx() ctx: GraphQLContext) {
    return (await latestVersion(addon, ctx)).permissions;
  }
}

@Resolver(() => AddonVersion)
export class AddonVersionResolver {
  @FieldResolver(() => Addon)
  addon(@Root() version: AddonVersionSummary, @Ctx() ctx: GraphQLContext) {
    return ctx.loaders.addonById.load(version.addonId);
  }

  @FieldResolver(() => [Widget])
  widgets(@Root() version: AddonVersionSummary, @Ctx() ctx: GraphQLContext) {
    return ctx.loaders.widgetsByVersionId.load(version.id);
  }

  @FieldResolver(() => [ApiEndpoint])
  apis(@Root() version: AddonVersionSummary, @Ctx() ctx: GraphQLContext) {
    return ctx.loaders.functionsByVersionId.load(version.id);
  }

  @FieldResolver(() => [AddonDependency])
  async dependencies(@Root() version: AddonVersionSummary, @Ctx() ctx: GraphQLContext) {
    return toDependencies(await ctx.loaders.dependenciesByVersionId.load(version.id));
  }
}

@Resolver(() => Widget)
export class WidgetResolver {
  @Query(() => [Widget], {
    description: "Widgets of every addon's latest version.",
    complexity: ({ childComplexity }) => 1 + 50 * childComplexity,
  })
  widgets(
    @Arg('category', () => WidgetCategory, { nullable: true }) category: WidgetCategory | null,
    @Ctx() ctx: GraphQLContext,
  ) {
    return ctx.services.addons.widgets(category);
  }

  @Query(() => Widget, { description: "One widget of an addon's latest version." })
  widget(
    @Arg('addon', () => String, { description: 'Addon id or name.' }) addon: string,
    @Arg('name', () => String) name: string,
    @Ctx() ctx: GraphQLContext,
  ) {
    return ctx.services.addons.widget(addon, name, ctx.sources);
  }

  @FieldResolver(() => Addon)
  addon(@Root() widget: WidgetRecord, @Ctx() ctx: GraphQLContext) {
    return ctx.loaders.addonById.load(widget.addonId);
  }

  @FieldResolver(() => String, { description: 'REST URL that renders this widget.' })
  async renderEndpoint(@Root() widget: WidgetRecord, @Ctx() ctx: GraphQLContext) {
    const addon = await ctx.loaders.addonById.load(widget.addonId);
    return `${ctx.services.config.publicUrl}/api/widgets/${addon!.name}/${widget.name}`;
  }
}

@Resolver(() => AddonConnection)
export class AddonConnectionResolver {
  @FieldResolver(() => Int, { description: 'Addons matching the filters, across all pages.' })
  totalCount(@Root() connection: AddonConnection & { countTotal: () => Promise<number> }) {
    return connection.countTotal();
  }
}

async function latestVersion(addon: AddonRecord, ctx: GraphQLContext): Promise<AddonVersionSummary> {
  return (await ctx.loaders.versionById.load(addon.latestVersionId!))!;
}

function toDependencies(rows: { addonName: string; range: string }[]): AddonDependency[] {
  return rows.map((d) => ({ name: d.addonName, range: d.range }));
}

function toAddonConnection(page: AddonPage, after: string | null) {
  const rows = {
    rows: page.addons,
    hasNextPage: page.hasNextPage,
    encode: (a: AddonRecord) => encodeCursor(a.name),
  };
  return { ...toConnection(rows, after), countTotal: page.totalCount };
}
