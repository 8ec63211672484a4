import path from 'node:path';
import { ValidationError, type FieldProblem } from '../../errors/index.js';
import { readAddonPackage, ADDON_PACKAGE_FILES, type AddonPackage } from '../../addons/addon-package.js';
import type { AddonLimits } from '../../sandbox/index.js';
import type { ExportedEntries } from '../addon-checks.js';
import { CliError, formatBytes, formatMs, table, type Reporter } from '../cli-io.js';
import type { Command } from '../command.js';
import { readFixtures, FIXTURES_FILE } from '../fixtures.js';
import { LOCAL_SITE_ID, LocalRunner, type EntryRun } from '../local-run.js';

/** What `addon validate --json` prints. */
export interface ValidationReport {
  ok: boolean;
  directory: string;
  addon: { name: string | null; version: string | null };
  /** Every problem, each naming its field (`manifest.widgets[0].name`, `source`, ...). */
  problems: FieldProblem[];
  warnings: string[];
  source: { bytes: number; limit: number; wasmBytes: number | null };
  exports: ExportedEntries | null;
  /** Null when the checks failed before the run, or with `--no-run`. */
  localRun: {
    note: string;
    siteId: string;
    fixtures: string | null;
    limits: AddonLimits;
    entries: EntryRun[];
  } | null;
}

const LOCAL_RUN_NOTE =
  'local run: the real sandbox under the production limits; storage, events, addon calls and HTTP are in-memory fakes';

/**
 * Validates an addon folder: the registry's publish checks, the module's exports against the
 * manifest and, with `run`, one local run of every function and widget (and every handler with a
 * sample event) in the real sandbox. Never throws for problems of the addon: they are in the report.
 *
 * @throws CliError when the folder cannot be read at all.
 */
export async function validateAddonFolder(
  directory: string,
  options: { run: boolean; network?: boolean; fixturesFile?: string; out: Reporter },
): Promise<ValidationReport> {
  const { out } = options;
  let pkg: AddonPackage;
  try {
    pkg = await readAddonPackage(directory);
  } catch (error) {
    if (error instanceof ValidationError) {
      throw new CliError(
        `${path.resolve(directory)} is not an addon folder.`,
        1,
        error.fields,
        'BAD_USER_INPUT',
      );
    }
    throw error;
  }
  // Loaded on use: the registry's limits come with its database layer, which --help and the
  // other commands need not pay for at start.
  const { checkPackage, compareExports } = await import('../addon-checks.js');
  const checked = checkPackage(pkg);
  const report: ValidationReport = {
    ok: false,
    directory: pkg.directory,
    addon: {
      name: typeof pkg.manifest.name === 'string' ? pkg.manifest.name : null,
      version: typeof pkg.manifest.version === 'string' ? pkg.manifest.version : null,
    },
    problems: [...checked.problems],
    warnings: [],
    source: { bytes: checked.sourceBytes, limit: checked.sourceLimit, wasmBytes: checked.wasmBytes },
    exports: null,
    localRun: null,
  };
  const fixtures = options.run ? await readFixtures(pkg.directory, options.fixturesFile) : null;
  const runner = new LocalRunner({
    siblingsDir: path.dirname(pkg.directory),
    network: options.network === true,
  });
  try {
    out.progress(`Starting the sandbox to load ${ADDON_PACKAGE_FILES.source}…`);
    await runner.start();
    if (pkg.source.trim() !== '') {
      const listed = await runner.listExports(pkg);
      if (listed.ok) {
        report.exports = listed.exports;
        const compared = compareExports(checked.declared, listed.exports);
        report.problems.push(...compared.problems);
        report.warnings.push(...compared.warnings);
      } else {
        report.problems.push({
          field: 'source',
          message: `${ADDON_PACKAGE_FILES.source} does not load in the sandbox: ${listed.message} [${listed.code}]`,
        });
      }
    }
    if (options.run && fixtures && checked.manifest && report.problems.length === 0) {
      const addon = runner.load(pkg, checked.manifest, fixtures);
      runner.useHttpFixtures(fixtures.http);
      const entries = await runner.runAll(addon, (kind, name) => out.progress(`Running ${kind} ${name}…`));
      report.localRun = {
        note: LOCAL_RUN_NOTE,
        siteId: LOCAL_SITE_ID,
        fixtures: fixtures.file,
        limits: runner.limits(checked.manifest),
        entries,
      };
      for (const entry of entries) {
        if (entry.status === 'ok' && entry.logsTruncated) {
          report.warnings.push(`${entry.kind} ${entry.name}: logs were cut at the log limit`);
        }
      }
    }
  } finally {
    await runner.close();
  }
  const failedRuns = report.localRun?.entries.filter((e) => e.status === 'error') ?? [];
  report.ok = report.problems.length === 0 && failedRuns.length === 0;
  return report;
}

function plural(count: number, singular: string, pluralForm = `${singular}s`): string {
  return `${count} ${count === 1 ? singular : pluralForm}`;
}

/** Prints a validation report for people (the `--json` form is the report itself). */
export function printReport(report: ValidationReport, out: Reporter): void {
  const title = `${report.addon.name ?? '(no name)'} ${report.addon.version ?? ''}`.trim();
  out.line(`${title}  (${report.directory})`);
  const { bytes, limit, wasmBytes } = report.source;
  const wasm = wasmBytes !== null ? `; ${ADDON_PACKAGE_FILES.wasm} ${formatBytes(wasmBytes)}` : '';
  out.line(`  source   ${ADDON_PACKAGE_FILES.source} ${formatBytes(bytes)} of ${formatBytes(limit)}${wasm}`);
  if (report.exports) {
    const e = report.exports;
    const counts = [
      plural(e.functions.length, 'function'),
      plural(e.widgets.length, 'widget'),
      plural(e.handlers.length, 'handler'),
      plural(e.hooks.length, 'hook'),
    ];
    out.line(`  exports  ${counts.join(', ')}`);
  }
  if (report.problems.length > 0) {
    out.line('');
    out.line(`✗ ${plural(report.problems.length, 'problem')}:`);
    for (const p of report.problems) out.line(`  ${p.field}: ${p.message}`);
  }
  const run = report.localRun;
  if (run) {
    out.line('');
    out.line(`Local run: ${run.note.replace(/^local run: /, '')}.`);
    out.line(`  samples: ${run.fixtures ?? `no ${FIXTURES_FILE}, so {} with the schema defaults`}`);
    const l = run.limits;
    out.line(
      `  limits:  memory ${l.memoryMb} MB, time ${l.timeoutMs} ms, CPU ${l.cpuTimeMs} ms, output ${formatBytes(l.maxOutputBytes)}`,
    );
    if (run.entries.length === 0) out.line('  (no functions or widgets to run)');
    else {
      const rows = [['KIND', 'NAME', 'STATUS', 'TIME', 'CPU', 'MEMORY', 'OUTPUT', 'INPUT']];
      for (const e of run.entries) {
        rows.push([
          e.kind,
          e.name,
          e.status === 'ok' ? 'ok' : `${e.status} ${e.code ?? ''}`.trim(),
          formatMs(e.durationMs),
          formatMs(e.cpuTimeMs),
          formatBytes(e.memoryBytes),
          formatBytes(e.outputBytes),
          e.inputFrom,
        ]);
      }
      out.line('');
      for (const row of table(rows)) out.line(`  ${row}`);
      out.line('');
      for (const e of run.entries) {
        if (e.status !== 'ok' && e.message) out.line(`  ${e.kind} ${e.name}: ${e.message}`);
        for (const log of e.logs.slice(0, 10)) out.line(`  ${e.kind} ${e.name} ${log.level}: ${log.message}`);
        if (e.logs.length > 10)
          out.line(`  ${e.kind} ${e.name}: ${e.logs.length - 10} more log lines (--json)`);
        for (const event of e.events) out.line(`  ${e.kind} ${e.name} emitted ${event.name}`);
      }
    }
  }
  for (const warning of report.warnings) out.line(`warning: ${warning}`);
  out.line('');
  const failed = run?.entries.filter((e) => e.status === 'error').length ?? 0;
  const skipped = run?.entries.filter((e) => e.status === 'skipped').length ?? 0;
  if (!report.ok) {
    const parts = [
      report.problems.length > 0 ? plural(report.problems.length, 'problem') : null,
      failed > 0 ? plural(failed, 'failing run') : null,
    ].filter(Boolean);
    out.line(`✗ ${title} is not valid: ${parts.join(', ')}.`);
  } else if (skipped > 0) {
    out.line(
      `✓ ${title} is valid; ${plural(skipped, 'entry', 'entries')} skipped (give samples in ${FIXTURES_FILE}).`,
    );
  } else out.line(`✓ ${title} is valid${run ? ' and every entry ran' : ''}.`);
}

export const validateCommand: Command = {
  words: ['addon', 'validate'],
  summary: 'Check an addon folder as the server would, then run every function and widget locally.',
  usage: '<dir> [--fixtures <file>] [--no-run] [--network] [--json]',
  options: {
    fixtures: { type: 'string' },
    'no-run': { type: 'boolean' },
    network: { type: 'boolean' },
  },
  arity: { min: 1, max: 1 },
  details: `
Checks, in order:
  1. manifest.json with the server's own rules (the same messages and field names as registerAddon),
     and the size limits of index.js (2 MB) and addon.wasm (8 MB);
  2. that index.js loads in the sandbox and exports every function, widget and event handler the
     manifest names (undeclared exports are warnings);
  3. a local run: each function and widget (and each handler with a sample event) runs once in the
     real sandbox, a fresh isolate each, under the limits the server applies (the manifest's
     "limits", else 64 MB memory, 1000 ms, 500 ms CPU, 1 MB output), reporting time, CPU time,
     memory (the isolate's used heap after the entry, what the memory limit measures) and output size.
     ctx.storage, ctx.events, ctx.addons.call and ctx.http are in-memory fakes: nothing reaches a
     server. A dependency called with ctx.addons.call runs from a sibling folder (../<name>) when
     there is one.

Samples come from fixtures.json in the folder (or --fixtures):
  { "config": {...},                       installation config (ctx.config); schema defaults applied
    "functions": { "<name>": <data> },
    "widgets": { "<name>": { "config": {...}, "context": {...} } },
    "handlers": { "<name>": <event data> }, handlers run only when given here
    "storage": { "<key>": <value> },        ctx.storage before the run
    "addons": { "<addon>": { "<function>": <output> } },   ctx.addons.call answers
    "http": { "GET https://host/path": { "status": 200, "body": ... } } }
Without a sample an entry gets {} with the schema defaults; if that does not match its schema the
entry is skipped with a warning.

Options:
  --fixtures <file>  samples from this file instead of <dir>/fixtures.json
  --no-run           only the checks (1 and 2)
  --network          let ctx.http.fetch calls without a fixture reach the network
  --json             print the report as JSON (progress still goes to stderr)

Exits 1 when there is a problem or an entry fails (error, timeout, memory, output size).

Example:
  themepress addon validate ./my-addon`,
  async run({ positionals, values, out }) {
    const report = await validateAddonFolder(positionals[0], {
      run: values['no-run'] !== true,
      network: values.network === true,
      fixturesFile: values.fixtures as string | undefined,
      out,
    });
    if (out.json) out.result(report);
    else printReport(report, out);
    return report.ok ? 0 : 1;
  },
};
