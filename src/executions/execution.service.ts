import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import {
  SandboxError,
  type SandboxPool,
  type AddonBundle,
  type EntryKind,
  type ExecutionResult,
} from '../sandbox/index.js';
import { AppError, ErrorCode, NotFoundError, ValidationError } from '../errors/index.js';
import { resolveSiteId, type Actor } from '../auth/actor.js';
import { validateWithDefaults } from '../shared/json-schema.js';
import type { Metrics } from '../infrastructure/metrics/metrics.js';
import type { DbClient } from '../infrastructure/database/database.js';
import type { InstallationLookup, ResolvedInstallation } from '../installations/installation-lookup.js';
import type { AddonBundleCache } from './addon-bundle.cache.js';
import type { ExecutionRecorder } from './execution-recorder.js';
import type { ExecutionEffects, ExecutionEffectsRegistry } from './execution-effects.js';
import type { RawJson } from '../shared/raw-json.js';
import { TRIPPING_CODES, type AddonQuarantine, type Admission } from './addon-quarantine.js';
import type { QuarantineKey } from './addon-quarantine.repository.js';

export interface ExecuteFunctionArgs {
  /** Addon id or name. */
  addon: string;
  functionName: string;
  data: unknown;
  /** Query.executeAddonFunction: only functions the manifest marks readonly. */
  readonlyOnly: boolean;
  siteId?: string | null;
  requestId?: string;
}

export interface RunArgs {
  target: ResolvedInstallation;
  bundle: AddonBundle;
  entry: { kind: EntryKind; name: string };
  input: unknown;
  /** Widget entries: the widget config (first argument); `ctx.config` stays the installation's. */
  widgetConfig?: unknown;
  callDepth?: number;
  requestId?: string;
  /** Hand back the output as a RawJson (see ExecutionRequest.rawOutput). */
  rawOutput?: boolean;
  /** A dependency call (ctx.addons.call): its caller's execution, whose effects it joins. */
  parentExecutionId?: string;
  /** The transaction an outermost call runs in (lifecycle hooks): its effects commit there. */
  db?: DbClient;
  /** A dependency call: its caller's deadline (epoch ms), which this call may not outlive. */
  deadlineAt?: number;
}

interface EntryMetrics {
  labels: { addon_id: string; function_name: string };
  responseTime: { observe(seconds: number): void };
  /** `addon_executions_total` by status. */
  executions: Map<string, { inc(): void }>;
}

/**
 * Runs addon code for sites: resolves the installation and version, validates input, runs the
 * entry in the sandbox pool, and records every run (batched) with metrics.
 */
export class ExecutionService {
  private readonly metricsByEntry = new Map<string, EntryMetrics>();

  constructor(
    private readonly deps: {
      pool: SandboxPool;
      bundles: AddonBundleCache;
      lookup: InstallationLookup;
      recorder: ExecutionRecorder;
      metrics: Metrics;
      effects: ExecutionEffectsRegistry;
      /** Circuit breakers per version and site; without it nothing is ever refused. */
      quarantine?: AddonQuarantine | null;
    },
  ) {}

  /**
   * The labelled metrics of an addon entry, made on its first run: prom-client checks and hashes a
   * label object on every update, which costs more than the update itself. As many as the metrics
   * themselves hold (one per addon entry).
   */
  private entryMetrics(addonId: string, entry: { kind: EntryKind; name: string }): EntryMetrics {
    const functionName = `${entry.kind}:${entry.name}`;
    const key = `${addonId}\u0000${functionName}`;
    let metrics = this.metricsByEntry.get(key);
    if (!metrics) {
      const labels = { addon_id: addonId, function_name: functionName };
      metrics = {
        labels,
        responseTime: this.deps.metrics.addonResponseTime.labels(labels),
        executions: new Map(),
      };
      this.metricsByEntry.set(key, metrics);
    }
    return metrics;
  }

  /** executeAddonFunction for the caller's site (an admin names the site): the output's JSON text. */
  async executeFunction(actor: Actor, args: ExecuteFunctionArgs): Promise<RawJson> {
    const siteId = resolveSiteId(actor, args.siteId);
    const target =
      this.deps.lookup.cached(siteId, args.addon) ?? (await this.deps.lookup.require(siteId, args.addon));
    return this.runFunction(target, args.functionName, args.data, {
      readonlyOnly: args.readonlyOnly,
      requestId: args.requestId,
      callDepth: 0,
    });
  }

  /**
   * Runs a declared function of an installed addon (also used by ctx.addons.call). The output
   * comes back as its JSON text, since every caller passes it on: into a response, or to the
   * calling addon's isolate.
   */
  async runFunction(
    target: ResolvedInstallation,
    functionName: string,
    data: unknown,
    opts: {
      readonlyOnly?: boolean;
      requestId?: string;
      callDepth: number;
      db?: DbClient;
      /** From ctx.addons.call: the calling execution, whose effects this call's join. */
      parentExecutionId?: string;
      /** From ctx.addons.call: the caller's deadline, which this call may not outlive. */
      deadlineAt?: number;
    },
  ): Promise<RawJson> {
    const versionId = target.installation.addonVersionId;
    const { bundle, manifest } =
      this.deps.bundles.loaded(versionId) ?? (await this.deps.bundles.load(versionId, opts.db));
    const declared = manifest.functions.find((f) => f.name === functionName);
    if (!declared) throw new NotFoundError('Function', `${target.addon.name}/${functionName}`);
    if (opts.readonlyOnly && !declared.readonly) {
      throw ValidationError.of('arguments', [
        {
          field: 'function',
          message: `"${functionName}" is not readonly; run it with Mutation.executeAddonFunction`,
        },
      ]);
    }
    let input = data;
    if (declared.inputSchema) {
      const result = validateWithDefaults(declared.inputSchema, data, 'data');
      if (!result.ok) throw ValidationError.of(`input of ${functionName}`, result.problems);
      input = result.value;
    }
    const result = await this.run({
      target,
      bundle,
      entry: { kind: 'function', name: functionName },
      input,
      callDepth: opts.callDepth,
      requestId: opts.requestId,
      rawOutput: true,
      parentExecutionId: opts.parentExecutionId,
      deadlineAt: opts.deadlineAt,
    });
    return result.output as RawJson;
  }

  /**
   * Runs any entry (function, widget, handler, hook), recording it whatever the outcome. Its storage
   * writes and emitted events commit together once it succeeds (before this resolves), or not at
   * all: a call that fails, times out or dies with its process leaves nothing behind.
   *
   * A version quarantined on the site is refused (ADDON_QUARANTINED) and recorded so; lifecycle
   * hooks are never refused, so a site can always uninstall or move away from a quarantined
   * version. A dependency call whose caller's deadline cut it short is recorded as
   * EXECUTION_CANCELLED (its caller, out of time too, gets EXECUTION_TIMEOUT).
   */
  async run(args: RunArgs): Promise<ExecutionResult> {
    const { target, bundle, entry } = args;
    const started = performance.now();
    const executionId = randomUUID();
    const quarantine = entry.kind === 'hook' ? null : (this.deps.quarantine ?? null);
    const key: QuarantineKey = {
      addonVersionId: bundle.versionId,
      siteId: target.installation.siteId,
      addonId: bundle.addonId,
      addonName: bundle.addonName,
      version: bundle.version,
    };
    // Whether the caller's deadline, rather than the addon's own limit, bounds this call.
    const leftOfCaller = args.deadlineAt === undefined ? Infinity : Math.round(args.deadlineAt - Date.now());
    const cutByCaller =
      args.deadlineAt !== undefined && leftOfCaller < this.deps.pool.effectiveLimits(bundle).timeoutMs;
    let admission: Admission | null = null;
    let effects: ExecutionEffects | null = null;
    let result: ExecutionResult | null = null;
    let failure: unknown = null;
    let sandboxFailure: SandboxError | null = null;
    try {
      if (quarantine) {
        const admitted = quarantine.admit(key, () => this.deps.pool.effectiveLimits(bundle).timeoutMs);
        admission = admitted instanceof Promise ? await admitted : admitted;
      }
      effects = this.deps.effects.begin(executionId, { parentId: args.parentExecutionId, db: args.db });
      result = await this.deps.pool.execute({
        bundle,
        siteId: target.installation.siteId,
        installationId: target.installation.id,
        config: target.installation.config,
        entry,
        input: args.input,
        widgetConfig: args.widgetConfig,
        callDepth: args.callDepth ?? 0,
        requestId: args.requestId,
        rawOutput: args.rawOutput,
        executionId,
        deadlineAt: args.deadlineAt,
      });
      await this.deps.effects.settle(executionId, effects);
      return result;
    } catch (error) {
      if (error instanceof SandboxError) sandboxFailure = error;
      // The record says the caller's deadline stopped it; the caller itself, at its deadline,
      // gets the timeout the sandbox reports (its own EXECUTION_TIMEOUT).
      failure =
        cutByCaller && error instanceof AppError && error.code === ErrorCode.ExecutionTimeout
          ? new AppError(
              ErrorCode.ExecutionCancelled,
              `Cancelled because its caller's deadline passed: this dependency call had ${Math.max(0, leftOfCaller)} ms of the calling addon's time left when it started.`,
            )
          : error;
      if (effects) this.deps.effects.discard(executionId, effects);
      throw error;
    } finally {
      const seconds = (performance.now() - started) / 1000;
      const status = failure
        ? failure instanceof AppError
          ? failure.code
          : ErrorCode.InternalServerError
        : 'SUCCESS';
      const metrics = this.entryMetrics(bundle.addonId, entry);
      let executions = metrics.executions.get(status);
      if (!executions) {
        executions = this.deps.metrics.addonExecutions.labels({ ...metrics.labels, status });
        metrics.executions.set(status, executions);
      }
      executions.inc();
      metrics.responseTime.observe(seconds);
      if (quarantine && admission && (admission.probe || TRIPPING_CODES.has(status))) {
        // A crash shared with other versions' calls is not held against this one.
        const blamed = status !== ErrorCode.SandboxCrashed || sandboxFailure?.blamed === true;
        // A probe's outcome is stored before its caller hears it, so the caller's next call finds
        // the breaker closed; failures of a closed breaker are counted off the call's path.
        if (admission.probe) await quarantine.observe(key, admission, status, blamed);
        else void quarantine.observe(key, admission, status, blamed);
      }
      this.deps.recorder.record({
        id: executionId,
        addonId: bundle.addonId,
        addonName: bundle.addonName,
        addonVersionId: bundle.versionId,
        version: bundle.version,
        siteId: target.installation.siteId,
        kind: entry.kind,
        entry: entry.name,
        status,
        errorMessage: failure instanceof Error ? failure.message.slice(0, 1000) : null,
        durationMs: result?.durationMs ?? seconds * 1000,
        cpuTimeMs: result?.cpuTimeMs ?? 0,
        cold: result?.cold ?? false,
        logs: result?.logs ?? sandboxFailure?.logs ?? [],
        logsTruncated: result?.logsTruncated ?? sandboxFailure?.logsTruncated ?? false,
        requestId: args.requestId ?? null,
        parentExecutionId: args.parentExecutionId ?? null,
        createdAt: new Date(),
      });
    }
  }
}
