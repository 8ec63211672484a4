import { Arg, Ctx, FieldResolver, ID, Mutation, Query, Resolver, Root } from 'type-graphql';
import { GraphQLJSON } from 'graphql-scalars';
import type { GraphQLContext } from '../graphql/context.js';
import { Addon, AddonVersion } from '../addons/addon.type.js';
import { Site } from '../sites/site.type.js';
import { AddonInstallResult, Installation } from './installation.type.js';
import type { InstallationRecord } from './installation.repository.js';
import { permissionsNotGranted } from './installation.service.js';
import { AddonQuarantineStatus } from '../executions/addon-quarantine.type.js';

const siteArg = {
  nullable: true,
  description: 'The site to act on; admin keys only (site keys use their own).',
};

@Resolver(() => Installation)
export class InstallationResolver {
  @Query(() => [Installation], {
    description: "The caller's site's installations.",
    complexity: ({ childComplexity }) => 1 + 20 * childComplexity,
  })
  installations(@Arg('siteId', () => ID, siteArg) siteId: string | null, @Ctx() ctx: GraphQLContext) {
    return ctx.services.installations.list(ctx.actor, siteId);
  }

  @Mutation(() => AddonInstallResult, { description: 'Installs an addon (id or name) with a config.' })
  async installAddon(
    @Arg('id', () => ID, { description: 'Addon id or name.' }) id: string,
    @Arg('config', () => GraphQLJSON) config: unknown,
    @Arg('version', () => String, { nullable: true, description: 'Defaults to the latest.' })
    version: string | null,
    @Arg('siteId', () => ID, siteArg) siteId: string | null,
    @Ctx() ctx: GraphQLContext,
  ) {
    const installation = await ctx.services.installations.install(ctx.actor, {
      addon: id,
      config,
      version,
      siteId,
    });
    return { success: true, message: 'Installed.', installation };
  }

  @Mutation(() => Boolean, { description: "Replaces an installation's config." })
  async updateAddonConfig(
    @Arg('id', () => ID, { description: 'Addon id or name.' }) id: string,
    @Arg('config', () => GraphQLJSON) config: unknown,
    @Arg('siteId', () => ID, siteArg) siteId: string | null,
    @Ctx() ctx: GraphQLContext,
  ) {
    await ctx.services.installations.updateConfig(ctx.actor, { addon: id, config, siteId });
    return true;
  }

  @Mutation(() => Boolean, {
    description: 'Removes an addon from the site unless another installed addon needs it.',
  })
  async uninstallAddon(
    @Arg('id', () => ID, { description: 'Addon id or name.' }) id: string,
    @Arg('siteId', () => ID, siteArg) siteId: string | null,
    @Ctx() ctx: GraphQLContext,
  ) {
    await ctx.services.installations.uninstall(ctx.actor, { addon: id, siteId });
    return true;
  }

  @Mutation(() => Installation, { description: 'Turns an installed addon on or off for the site.' })
  setAddonEnabled(
    @Arg('id', () => ID, { description: 'Addon id or name.' }) id: string,
    @Arg('enabled', () => Boolean) enabled: boolean,
    @Arg('siteId', () => ID, siteArg) siteId: string | null,
    @Ctx() ctx: GraphQLContext,
  ) {
    return ctx.services.installations.setEnabled(ctx.actor, { addon: id, enabled, siteId });
  }

  @Mutation(() => Installation, {
    description: 'Moves an installation to another published version (upgrade or rollback).',
  })
  changeAddonVersion(
    @Arg('id', () => ID, { description: 'Addon id or name.' }) id: string,
    @Arg('version', () => String) version: string,
    @Arg('siteId', () => ID, siteArg) siteId: string | null,
    @Arg('acceptPermissions', () => [String], {
      nullable: true,
      description:
        'Permissions the target version asks for that the installation has not granted, accepted: exactly that list (see Installation.pendingPermissions); without it such a move fails with PERMISSIONS_NOT_ACCEPTED.',
    })
    acceptPermissions: string[] | null,
    @Ctx() ctx: GraphQLContext,
  ) {
    return ctx.services.installations.changeVersion(ctx.actor, {
      addon: id,
      version,
      siteId,
      acceptPermissions,
    });
  }

  @FieldResolver(() => Addon)
  addon(@Root() installation: InstallationRecord, @Ctx() ctx: GraphQLContext) {
    return ctx.loaders.addonById.load(installation.addonId);
  }

  @FieldResolver(() => AddonVersion, { description: 'The pinned version.' })
  version(@Root() installation: InstallationRecord, @Ctx() ctx: GraphQLContext) {
    return ctx.loaders.versionById.load(installation.addonVersionId);
  }

  @FieldResolver(() => Site)
  site(@Root() installation: InstallationRecord, @Ctx() ctx: GraphQLContext) {
    return ctx.loaders.siteById.load(installation.siteId);
  }

  @FieldResolver(() => [String], {
    description:
      "Permissions the addon's latest version asks for that this installation has not granted: an upgrade to it must accept them (acceptPermissions).",
  })
  async pendingPermissions(@Root() installation: InstallationRecord, @Ctx() ctx: GraphQLContext) {
    const addon = await ctx.loaders.addonById.load(installation.addonId);
    const latest = addon?.latestVersionId ? await ctx.loaders.versionById.load(addon.latestVersionId) : null;
    return latest ? permissionsNotGranted(latest.permissions, installation.grantedPermissions ?? []) : [];
  }

  @FieldResolver(() => AddonQuarantineStatus, {
    nullable: true,
    description:
      "The pinned version's circuit breaker on this site when it is not closed (calls refused with ADDON_QUARANTINED, or one probe running); null otherwise.",
  })
  quarantine(@Root() installation: InstallationRecord, @Ctx() ctx: GraphQLContext) {
    return ctx.services.quarantine.peek(installation.addonVersionId, installation.siteId);
  }
}
