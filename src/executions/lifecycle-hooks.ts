import { randomUUID } from 'node:crypto';
import type { Prisma } from '../generated/prisma/client.js';
import type { LifecycleHooks } from '../installations/installation.service.js';
import type { InstallationRecord } from '../installations/installation.repository.js';
import type { AddonRecord } from '../addons/addon.repository.js';
import type { AddonBundleCache } from './addon-bundle.cache.js';
import type { ExecutionService } from './execution.service.js';
import type { AddonHostCapabilities } from './addon-host-capabilities.js';

/**
 * Runs an addon's install / upgrade / uninstall hook in the sandbox, inside the installation's
 * transaction: storage the hook writes commits or rolls back with the installation change.
 */
export class SandboxLifecycleHooks implements LifecycleHooks {
  constructor(
    private readonly deps: {
      bundles: AddonBundleCache;
      executions: ExecutionService;
      capabilities: AddonHostCapabilities;
    },
  ) {}

  async run(
    hook: 'install' | 'upgrade' | 'uninstall',
    target: { installation: InstallationRecord; addon: AddonRecord; versionId: string; fromVersion?: string },
    tx: Prisma.TransactionClient,
  ): Promise<void> {
    const { bundle } = await this.deps.bundles.load(target.versionId, tx);
    const requestId = `hook-${randomUUID()}`;
    await this.deps.capabilities.withTransaction(requestId, tx, () =>
      this.deps.executions.run({
        target: { addon: target.addon, installation: target.installation },
        bundle,
        entry: { kind: 'hook', name: hook },
        input: hook === 'upgrade' ? { fromVersion: target.fromVersion } : null,
        requestId,
      }),
    );
  }
}
