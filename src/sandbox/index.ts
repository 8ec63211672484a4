/**
 * Sandbox engine: runs untrusted addon JavaScript in isolated-vm isolates inside supervised worker
 * processes. See docs/sandbox.md.
 */
export { SandboxPool, sealBundle } from './sandbox-pool.js';
export { SandboxError } from './sandbox-error.js';
export { createHtmlKit } from './in-isolate/html-template.js';
export type {
  AddonBundle,
  AddonLimits,
  CapabilityScope,
  EntryKind,
  ExecutionRequest,
  ExecutionResult,
  HostCapabilities,
  LogEntry,
  SandboxLogger,
  SandboxPoolOptions,
  SandboxStats,
  SandboxWorkerKill,
  WorkerKillReason,
} from './types.js';
