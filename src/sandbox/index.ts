/**
 * Sandbox engine: runs untrusted addon JavaScript in isolated-vm isolates inside supervised worker
 * processes. See docs/sandbox.md.
 */
export { SandboxPool, MAX_CAPABILITY_CALLS_PER_EXECUTION, sealBundle } from './sandbox-pool.js';
export { SandboxError } from './sandbox-error.js';
export { DEFAULT_ADDON_LIMITS, DEFAULT_PLATFORM_LIMITS, MAX_CALL_DEPTH, resolveLimits } from './limits.js';
export { parseUntrustedJson } from './safe-json.js';
export { createHtmlKit, type HtmlKit, type SafeHtml } from './in-isolate/html-template.js';
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
  SandboxGuilty,
  SandboxStats,
  SandboxWorkerKill,
  SandboxWorkerStats,
  WorkerKillReason,
} from './types.js';
