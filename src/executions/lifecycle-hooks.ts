import { randomUUID } from 'node:crypto';
import type { Prisma } from '../generated/prisma/client.js';
import type { LifecycleHooks } from '../installations/installation.service.js';
import type { InstallationRecord } from '../installations/installation.repository.js';
import type { AddonRecord } from '../addons/addon.repository.js';
import type { AddonBundleCache } from './addon-bundle.cache.js';
import type { ExecutionService } from './execution.service.js';

/**
 * Runs an addon's install / upgrade / uninstall hook in the sandbox, inside the installation's
 * transaction: what the hook writes and emits commits or rolls back with the installation change.
 */
export class SandboxLifecycleHooks implements LifecycleHooks {
  constructor(
    private readonly deps: {
      bundles: AddonBundleCache;
      executions: ExecutionService;
    },
  ) {}

  async run(
    hook: 'install' | 'upgrade' | 'uninstall',
    target: { installation: InstallationRecord; addon: AddonRecord; versionId: string; fromVersion?: string },
    tx: Prisma.TransactionClient,
  ): Promise<void> {
    const { bundle } = await this.deps.bundles.load(target.versionId, tx);
    await this.deps.executions.run({
      target: { addon: target.addon, installation: target.installation },
      bundle,
      entry: { kind: 'hook', name: hook },
      input: hook === 'upgrade' ? { fromVersion: target.fromVersion } : null,
      requestId: `hook-${randomUUID()}`,
      db: tx,
    });
  }
}
