import semver from 'semver';
import type { Database } from '../infrastructure/database/database.js';
import type { Prisma } from '../generated/prisma/client.js';
import { resolveSiteId, requireAuthenticated, type Actor } from '../auth/actor.js';
import {
  AppError,
  ConflictError,
  ErrorCode,
  NotFoundError,
  PermissionsNotAcceptedError,
  ValidationError,
  type FieldProblem,
} from '../errors/index.js';
import { validateWithDefaults } from '../shared/json-schema.js';
import { AddonRepository, type AddonRecord, type AddonVersionSummary } from '../addons/addon.repository.js';
import type { AddonManifest } from '../addons/addon-manifest.js';
import { SiteRepository } from '../sites/site.repository.js';
import { AddonStorageRepository } from '../storage/addon-storage.repository.js';
import { InstallationRepository, type InstallationRecord } from './installation.repository.js';

/** What a lifecycle hook runner needs; the sandbox provides one (install, upgrade, uninstall hooks). */
export interface LifecycleHooks {
  /**
   * Runs a hook inside the installation's transaction; throwing rolls the change back and the
   * error reaches the caller.
   */
  run(
    hook: 'install' | 'upgrade' | 'uninstall',
    target: { installation: InstallationRecord; addon: AddonRecord; versionId: string; fromVersion?: string },
    tx: Prisma.TransactionClient,
  ): Promise<void>;
}

/** Notified after a committed change, e.g. to drop cached widget renders on every instance. */
export type InstallationChangeListener = (change: {
  kind: 'installed' | 'config' | 'enabled' | 'version' | 'uninstalled';
  installation: InstallationRecord;
}) => void;

export interface InstallArgs {
  addon: string;
  config: unknown;
  siteId?: string | null;
  version?: string | null;
}

/** Installing, configuring, moving between versions and removing addons on a site. */
export class InstallationService {
  private readonly listeners: InstallationChangeListener[] = [];

  /**
   * @param maxPerSite installations one site may have (INSTALLATIONS_MAX_PER_SITE): each brings its
   *   own storage quota, event subscriptions and rows read on every listing of the site.
   */
  constructor(
    private readonly database: Database,
    private readonly hooks: LifecycleHooks | null = null,
    private readonly maxPerSite = 200,
  ) {}

  onChange(listener: InstallationChangeListener): void {
    this.listeners.push(listener);
  }

  private emit(kind: Parameters<InstallationChangeListener>[0]['kind'], installation: InstallationRecord) {
    for (const listener of this.listeners) listener({ kind, installation });
  }

  /** The caller's site's installations (an admin names the site). */
  async list(actor: Actor, siteId?: string | null): Promise<InstallationRecord[]> {
    const site = resolveSiteId(actor, siteId);
    return new InstallationRepository(this.database.prisma).listBySite(site);
  }

  /**
   * Installs an addon at its latest (or a named) version. Its dependencies must already be
   * installed on the site at satisfying versions; the config must match the addon's schema.
   */
  async install(actor: Actor, args: InstallArgs): Promise<InstallationRecord> {
    const siteId = resolveSiteId(actor, args.siteId);
    const installation = await this.database.transaction(async (tx) => {
      const sites = new SiteRepository(tx);
      if (!(await sites.findById(siteId))) throw new NotFoundError('Site', siteId);
      const addons = new AddonRepository(tx);
      const installations = new InstallationRepository(tx);
      const addon = await requireAddon(addons, args.addon);
      const version = await pickVersion(addons, addon, args.version);
      if (await installations.find(siteId, addon.id)) {
        throw new ConflictError(`Addon "${addon.name}" is already installed on this site.`);
      }
      // Counted before the hook, to refuse at once, and again after it, under the site's lock.
      this.checkRoom(await installations.countBySite(siteId));
      const manifest = version.manifest as unknown as AddonManifest;
      await checkDependenciesInstalled(addons, installations, siteId, manifest);
      const config = validateConfig(manifest, args.config);
      const created = await installations.create({
        siteId,
        addonId: addon.id,
        addonVersionId: version.id,
        config,
        enabled: true,
        // Installing is consenting to what the installed version asks for.
        grantedPermissions: [...version.permissions],
      });
      await this.hooks?.run('install', { installation: created, addon, versionId: version.id }, tx);
      // Locked only now, so one addon's long install hook does not hold the site's other installs:
      // concurrent installs take the lock in turn, each counting what the ones before committed.
      if (!(await sites.lockById(siteId))) throw new NotFoundError('Site', siteId);
      this.checkRoom((await installations.countBySite(siteId)) - 1);
      return created;
    });
    this.emit('installed', installation);
    return installation;
  }

  /** Refuses an install on a site that has `installed` addons, when that is the most it may have. */
  private checkRoom(installed: number): void {
    if (installed >= this.maxPerSite) {
      throw new AppError(
        ErrorCode.StorageQuotaExceeded,
        `This site has ${installed} addons installed, the most a site may have (INSTALLATIONS_MAX_PER_SITE); uninstall one first.`,
      );
    }
  }

  async updateConfig(actor: Actor, args: { addon: string; config: unknown; siteId?: string | null }) {
    const siteId = resolveSiteId(actor, args.siteId);
    const updated = await this.database.transaction(async (tx) => {
      const { installation, version } = await lockInstallation(tx, siteId, args.addon);
      const config = validateConfig(version.manifest as unknown as AddonManifest, args.config);
      return new InstallationRepository(tx).update(installation.id, { config });
    });
    this.emit('config', updated);
    return updated;
  }

  async setEnabled(actor: Actor, args: { addon: string; enabled: boolean; siteId?: string | null }) {
    const siteId = resolveSiteId(actor, args.siteId);
    const updated = await this.database.transaction(async (tx) => {
      const { installation } = await lockInstallation(tx, siteId, args.addon);
      return new InstallationRepository(tx).update(installation.id, { enabled: args.enabled });
    });
    this.emit('enabled', updated);
    return updated;
  }

  /**
   * Moves an installation to another published version: an upgrade or a rollback. The target's
   * dependencies are checked again, and so are the ranges of addons on the site that depend on
   * this one; the config must satisfy the target's schema. A target that asks for permissions the
   * installation has not granted is refused (PERMISSIONS_NOT_ACCEPTED) unless `acceptPermissions`
   * lists exactly those; they are then granted.
   */
  async changeVersion(
    actor: Actor,
    args: { addon: string; version: string; siteId?: string | null; acceptPermissions?: string[] | null },
  ) {
    const siteId = resolveSiteId(actor, args.siteId);
    const updated = await this.database.transaction(async (tx) => {
      const addons = new AddonRepository(tx);
      const installations = new InstallationRepository(tx);
      const { installation, addon, version: current } = await lockInstallation(tx, siteId, args.addon);
      const target = await pickVersion(addons, addon, args.version);
      if (target.id === current.id) {
        throw new ConflictError(`"${addon.name}" is already at version ${target.version} on this site.`);
      }
      const granted = installation.grantedPermissions ?? [];
      const newPermissions = permissionsNotGranted(target.permissions, granted);
      checkConsent(addon.name, target.version, newPermissions, args.acceptPermissions ?? null);
      const manifest = target.manifest as unknown as AddonManifest;
      await checkDependenciesInstalled(addons, installations, siteId, manifest);
      const broken = (await installations.dependents(siteId, addon.name)).filter(
        (d) => !semver.satisfies(target.version, d.range),
      );
      if (broken.length > 0) {
        throw new ConflictError(
          `Cannot move "${addon.name}" to ${target.version}: ${broken
            .map((d) => `${d.addonName} requires ${d.range}`)
            .join(', ')}.`,
          { dependents: broken.map((d) => ({ addon: d.addonName, range: d.range })) },
        );
      }
      const config = validateConfig(manifest, installation.config, 'dropUnknown');
      // A rollback keeps what was granted: moving forward again asks nothing already accepted.
      const moved = await installations.update(installation.id, {
        addonVersionId: target.id,
        config,
        grantedPermissions: [...granted, ...newPermissions],
      });
      await this.hooks?.run(
        'upgrade',
        { installation: moved, addon, versionId: target.id, fromVersion: current.version },
        tx,
      );
      return moved;
    });
    this.emit('version', updated);
    return updated;
  }

  /** Removes an installation, refused while another installed addon depends on it. */
  async uninstall(
    actor: Actor,
    args: { addon: string; siteId?: string | null },
  ): Promise<InstallationRecord> {
    const siteId = resolveSiteId(actor, args.siteId);
    const removed = await this.database.transaction(async (tx) => {
      const installations = new InstallationRepository(tx);
      const { installation, addon } = await lockInstallation(tx, siteId, args.addon);
      const dependents = await installations.dependents(siteId, addon.name);
      if (dependents.length > 0) {
        throw new ConflictError(
          `Cannot uninstall "${addon.name}": ${dependents.map((d) => d.addonName).join(', ')} depend${
            dependents.length === 1 ? 's' : ''
          } on it.`,
          { dependents: dependents.map((d) => d.addonName) },
        );
      }
      await this.hooks?.run('uninstall', { installation, addon, versionId: installation.addonVersionId }, tx);
      await installations.delete(installation.id);
      // The addon's data on this site goes with the installation (after its uninstall hook ran).
      await new AddonStorageRepository(tx).clear({ addonId: addon.id, siteId });
      return installation;
    });
    this.emit('uninstalled', removed);
    return removed;
  }

  /** The enabled installation a site uses to run an addon (execution, widgets, events). */
  async requireEnabled(actor: Actor, addonIdOrName: string, siteId?: string | null) {
    requireAuthenticated(actor);
    const site = resolveSiteId(actor, siteId);
    const addons = new AddonRepository(this.database.prisma);
    const addon = await requireAddon(addons, addonIdOrName);
    const installation = await new InstallationRepository(this.database.prisma).find(site, addon.id);
    if (!installation) throw new NotFoundError('Installation', `${addon.name} on site ${site}`);
    if (!installation.enabled) throw new ConflictError(`Addon "${addon.name}" is disabled on this site.`);
    return { addon, installation };
  }
}

/** What `wanted` asks for beyond `granted`, sorted, without duplicates. */
export function permissionsNotGranted(wanted: readonly string[], granted: readonly string[]): string[] {
  const have = new Set(granted);
  return [...new Set(wanted.filter((p) => !have.has(p)))].sort();
}

/**
 * A move that asks for new permissions needs the caller to accept exactly those: a list missing
 * one, or naming one the target does not newly ask for, is refused with the list to accept.
 */
function checkConsent(
  addonName: string,
  version: string,
  newPermissions: string[],
  accepted: string[] | null,
): void {
  if (accepted !== null) {
    const problems: FieldProblem[] = [];
    accepted.forEach((p, i) => {
      if (typeof p !== 'string' || p.trim() === '') {
        problems.push({ field: `acceptPermissions[${i}]`, message: 'must be a permission name' });
      }
    });
    if (problems.length > 0) throw ValidationError.of('acceptPermissions', problems);
  }
  const acceptedSet = [...new Set(accepted ?? [])].sort();
  const exact =
    acceptedSet.length === newPermissions.length && acceptedSet.every((p, i) => p === newPermissions[i]);
  if (exact) return;
  if (newPermissions.length === 0) {
    throw ValidationError.of('acceptPermissions', [
      {
        field: 'acceptPermissions',
        message: `${addonName} ${version} asks for no permission this installation has not granted; accept nothing (got: ${acceptedSet.join(', ')})`,
      },
    ]);
  }
  throw new PermissionsNotAcceptedError(addonName, version, newPermissions, accepted);
}

async function requireAddon(addons: AddonRepository, idOrName: string): Promise<AddonRecord> {
  const addon = await addons.findByIdOrName(idOrName);
  if (!addon) throw new NotFoundError('Addon', idOrName);
  return addon;
}

async function pickVersion(
  addons: AddonRepository,
  addon: AddonRecord,
  requested: string | null | undefined,
): Promise<AddonVersionSummary> {
  if (requested) {
    const version = await addons.findVersion(addon.id, requested);
    if (!version) throw new NotFoundError('Version', `${addon.name}@${requested}`);
    return version;
  }
  const [latest] = addon.latestVersionId ? await addons.versionsByIds([addon.latestVersionId]) : [];
  if (!latest) throw new NotFoundError('Version', `${addon.name}@latest`);
  return latest;
}

async function lockInstallation(tx: Prisma.TransactionClient, siteId: string, addonIdOrName: string) {
  const addons = new AddonRepository(tx);
  const addon = await requireAddon(addons, addonIdOrName);
  const installation = await new InstallationRepository(tx).lock(siteId, addon.id);
  if (!installation) throw new NotFoundError('Installation', `${addon.name} on site ${siteId}`);
  const [version] = await addons.versionsByIds([installation.addonVersionId]);
  return { installation, addon, version };
}

async function checkDependenciesInstalled(
  addons: AddonRepository,
  installations: InstallationRepository,
  siteId: string,
  manifest: AddonManifest,
): Promise<void> {
  const names = Object.keys(manifest.dependencies);
  if (names.length === 0) return;
  const depAddons = await addons.findByNames(names);
  const installed = (await installations.listBySite(siteId)).filter((i) =>
    depAddons.some((a) => a.id === i.addonId),
  );
  const versions = await addons.versionsByIds(installed.map((i) => i.addonVersionId));
  const missing: FieldProblem[] = [];
  for (const name of names) {
    const range = manifest.dependencies[name];
    const addon = depAddons.find((a) => a.name === name);
    const installation = addon && installed.find((i) => i.addonId === addon.id);
    const version = installation && versions.find((v) => v.id === installation.addonVersionId);
    if (!version)
      missing.push({ field: `dependencies.${name}`, message: `${name} ${range} is not installed` });
    else if (!semver.satisfies(version.version, range)) {
      missing.push({
        field: `dependencies.${name}`,
        message: `${name} ${version.version} is installed; ${range} is required`,
      });
    }
  }
  if (missing.length > 0) {
    throw new ValidationError(
      `Missing dependencies for "${manifest.name}": ${missing.map((m) => m.message).join('; ')}`,
      missing,
    );
  }
}

function validateConfig(
  manifest: AddonManifest,
  config: unknown,
  mode: 'strict' | 'dropUnknown' = 'strict',
): unknown {
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw ValidationError.of('config', [{ field: 'config', message: 'must be a JSON object' }]);
  }
  const result = validateWithDefaults(manifest.configSchema, config, 'config', mode);
  if (!result.ok) throw ValidationError.of('config', result.problems);
  return result.value;
}
