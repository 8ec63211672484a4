import { createHash } from 'node:crypto';
import path from 'node:path';
import type { FieldProblem } from '../errors/index.js';
import { ValidationError } from '../errors/index.js';
import { readAddonPackage, ADDON_PACKAGE_FILES } from '../addons/addon-package.js';
import type { AddonLimits } from '../sandbox/index.js';
import { finishRender, type RenderedWidget } from '../widgets/widget-output.js';
import { checkPackage, compareExports } from './addon-checks.js';
import { readFixtures } from './fixtures.js';
import { LocalRunner, type EntryRun, type LocalAddon } from './local-run.js';

/** What the preview page shows: the last run of every entry, and why nothing ran when nothing did. */
export interface DevState {
  /** Goes up by one with every run (a save, or a function called from the page). */
  revision: number;
  at: string;
  /** What started the run: "start", "index.js changed", "call greet". */
  reason: string;
  addon: { name: string | null; version: string | null; directory: string };
  problems: FieldProblem[];
  warnings: string[];
  limits: AddonLimits | null;
  entries: EntryRun[];
  /** Function samples, editable on the page (from fixtures.json, else {}). */
  samples: Record<string, unknown>;
}

type Obj = Record<string, unknown>;

/**
 * The local side of `themepress addon dev`: one sandbox (the real one, production limits, in-memory
 * storage, events, addon calls and HTTP, as `addon validate` runs it) kept across runs, so storage
 * survives saves, and the last run of every entry. Widget outputs go through the server's own
 * output rules (markup wrapped, CSS scoped, script neutralised) before the page frames them.
 */
export class DevSession {
  private readonly runner: LocalRunner;
  private addon: LocalAddon | null = null;
  private rendered = new Map<string, RenderedWidget>();
  private running: Promise<DevState> | null = null;
  private again = false;
  state: DevState;

  constructor(private readonly options: { directory: string; fixturesFile?: string; network: boolean }) {
    this.runner = new LocalRunner({
      siblingsDir: path.dirname(path.resolve(options.directory)),
      network: options.network,
    });
    this.state = {
      revision: 0,
      at: new Date().toISOString(),
      reason: 'start',
      addon: { name: null, version: null, directory: path.resolve(options.directory) },
      problems: [],
      warnings: [],
      limits: null,
      entries: [],
      samples: {},
    };
  }

  start(): Promise<void> {
    return this.runner.start();
  }

  close(): Promise<void> {
    return this.runner.close();
  }

  /** The framed document's content for a widget of the last run; null when it did not render. */
  widget(name: string): RenderedWidget | null {
    return this.rendered.get(name) ?? null;
  }

  /**
   * Reads the folder again and runs every function and widget (and handlers with a sample). A
   * save during a run queues one more run, so the last save is always what the page shows.
   */
  reload(reason: string): Promise<DevState> {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      let state = await this.runAll(reason);
      while (this.again) {
        this.again = false;
        state = await this.runAll(reason);
      }
      return state;
    })().finally(() => {
      this.running = null;
    });
    return this.running;
  }

  /** Runs one function with the given input; the entry replaces its row of the last run. */
  async call(name: string, input: unknown): Promise<EntryRun> {
    if (!this.addon) throw new ValidationError('The addon did not load; fix the problems listed first.', []);
    const run = await this.runner.runFunction(this.addon, name, { value: input });
    const entries = this.state.entries.map((e) => (e.kind === 'function' && e.name === name ? run : e));
    await this.publish({ ...this.state, entries, reason: `call ${name}` });
    return run;
  }

  private async runAll(reason: string): Promise<DevState> {
    const base = {
      ...this.state,
      reason,
      problems: [] as FieldProblem[],
      warnings: [] as string[],
      entries: [] as EntryRun[],
    };
    let pkg;
    try {
      pkg = await readAddonPackage(this.options.directory);
    } catch (error) {
      this.addon = null;
      const fields = error instanceof ValidationError ? error.fields : [];
      return this.publish({
        ...base,
        problems: fields.length > 0 ? fields : [{ field: 'folder', message: (error as Error).message }],
      });
    }
    const checked = checkPackage(pkg);
    const name = typeof pkg.manifest.name === 'string' ? pkg.manifest.name : null;
    const version = typeof pkg.manifest.version === 'string' ? pkg.manifest.version : null;
    const next: DevState = {
      ...base,
      addon: { ...base.addon, name, version },
      problems: [...checked.problems],
    };
    if (pkg.source.trim() !== '') {
      const listed = await this.runner.listExports(pkg);
      if (listed.ok) {
        const compared = compareExports(checked.declared, listed.exports);
        next.problems.push(...compared.problems);
        next.warnings.push(...compared.warnings);
      } else {
        next.problems.push({
          field: 'source',
          message: `${ADDON_PACKAGE_FILES.source} does not load in the sandbox: ${listed.message} [${listed.code}]`,
        });
      }
    }
    if (!checked.manifest || next.problems.length > 0) {
      this.addon = null;
      return this.publish(next);
    }
    let fixtures;
    try {
      fixtures = await readFixtures(pkg.directory, this.options.fixturesFile);
    } catch (error) {
      this.addon = null;
      return this.publish({ ...next, problems: [{ field: 'fixtures', message: (error as Error).message }] });
    }
    this.addon = this.runner.load(pkg, checked.manifest, fixtures);
    this.runner.useHttpFixtures(fixtures.http);
    next.limits = this.runner.limits(checked.manifest);
    next.entries = await this.runner.runAll(this.addon);
    next.samples = Object.fromEntries(
      checked.manifest.functions.map((f) => {
        const sample = Object.hasOwn(fixtures.functions, f.name)
          ? fixtures.functions[f.name]
          : (fixtures.loose[f.name] ?? {});
        return [f.name, sample];
      }),
    );
    return this.publish(next);
  }

  private async publish(state: DevState): Promise<DevState> {
    const rendered = new Map<string, RenderedWidget>();
    for (const entry of state.entries) {
      if (entry.kind !== 'widget' || entry.status !== 'ok') continue;
      const output = (entry.output ?? {}) as Obj;
      const rootId = `w${createHash('sha256').update(`${state.addon.name}/${entry.name}`).digest('hex').slice(0, 16)}`;
      try {
        rendered.set(
          entry.name,
          await finishRender(output, { rootId, cacheKey: 'dev', version: state.addon.version ?? '' }),
        );
      } catch (error) {
        // What the server would refuse (e.g. OUTPUT_TOO_LARGE) is shown, not thrown at the dev loop.
        state = {
          ...state,
          problems: [
            ...state.problems,
            { field: `widgets.${entry.name}`, message: (error as Error).message },
          ],
        };
      }
    }
    this.rendered = rendered;
    this.state = { ...state, revision: this.state.revision + 1, at: new Date().toISOString() };
    return this.state;
  }
}
