import {
  SandboxPool,
  type AddonBundle,
  type ExecutionResult,
  type HostCapabilities,
} from '../../src/sandbox/index.js';
import { ECHO_SOURCE, PAYLOAD } from './fixtures.js';

/** The echo addon as a sandbox bundle, with no permissions: the pool-level benchmarks' addon. */
const ECHO_BUNDLE: AddonBundle = {
  versionId: '00000000-0000-4000-8000-000000000001',
  addonId: '00000000-0000-4000-8000-000000000002',
  addonName: 'bench-echo',
  version: '1.0.0',
  source: ECHO_SOURCE,
  permissions: [],
  dependencies: {},
  httpAllow: [],
  emits: [],
};

/** The echo addon uses no SDK; a call that reached the host would be a benchmark bug. */
const NO_CAPABILITIES = new Proxy({} as HostCapabilities, {
  get: () => () => Promise.reject(new Error('not used')),
});

/**
 * A sandbox pool of `workers` processes (not started; `execute` starts it on first use) and a call
 * of the echo addon with the benchmark payload, as one site.
 */
export function createEchoPool(workers = 2): { pool: SandboxPool; execute: () => Promise<ExecutionResult> } {
  const pool = new SandboxPool({ workers, capabilities: NO_CAPABILITIES });
  const execute = () =>
    pool.execute({
      bundle: ECHO_BUNDLE,
      siteId: 'site',
      installationId: null,
      config: {},
      entry: { kind: 'function', name: 'echo' },
      input: PAYLOAD,
    });
  return { pool, execute };
}
