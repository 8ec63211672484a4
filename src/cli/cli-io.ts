import { createInterface } from 'node:readline/promises';
import type { FieldProblem } from '../errors/index.js';

/**
 * Exit codes of every `themepress` command (documented in `--help` and docs/authoring-an-addon.md):
 * 0 success, 1 the work failed (validation problems, a failing local run, the server refused or was
 * unreachable), 2 the command was called wrongly (unknown command or option, missing argument,
 * missing API key).
 */
export const EXIT = { ok: 0, failure: 1, usage: 2 } as const;
export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** A failure the CLI explains itself: printed as is (no stack), with its exit code. */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode: ExitCode = EXIT.failure,
    /** Per-field problems, printed one per line under the message. */
    readonly fields: FieldProblem[] = [],
    /** Machine-readable code for `--json` output (e.g. the server's `extensions.code`). */
    readonly code: string | null = null,
    /** The server's other `extensions` (e.g. `newPermissions`), for commands that act on them. */
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'CliError';
  }
}

/** The command line itself is wrong: exit code 2, with a pointer to `--help`. */
export class UsageError extends CliError {
  constructor(message: string, helpCommand = 'themepress --help') {
    super(`${message}\nRun "${helpCommand}" for usage.`, EXIT.usage, [], 'USAGE');
    this.name = 'UsageError';
  }
}

/** Where a command writes and what it may read: injected so tests can run commands in-process. */
export interface CliIo {
  /** Results: human text, or one JSON document with `--json`. */
  stdout(text: string): void;
  /** Progress and diagnostics, so stdout stays parseable. */
  stderr(text: string): void;
  env: Record<string, string | undefined>;
  cwd: string;
  /**
   * Asks the person at the terminal and resolves to the answer; absent when nobody can answer
   * (stdin or stdout is not a terminal), where commands need their flags instead.
   */
  prompt?: (question: string) => Promise<string>;
}

/** The real process's streams, environment and working directory. */
export function processIo(): CliIo {
  return {
    stdout: (text) => void process.stdout.write(text),
    stderr: (text) => void process.stderr.write(text),
    env: process.env,
    cwd: process.cwd(),
    prompt:
      process.stdin.isTTY && process.stderr.isTTY
        ? async (question) => {
            // Asked on stderr: stdout stays the command's result.
            const rl = createInterface({ input: process.stdin, output: process.stderr });
            try {
              return await rl.question(question);
            } finally {
              rl.close();
            }
          }
        : undefined,
  };
}

/** Output helpers shared by the commands: results to stdout, progress to stderr. */
export class Reporter {
  constructor(
    readonly io: CliIo,
    readonly json: boolean,
  ) {}

  /** A line of the human result (suppressed with `--json`, where {@link result} prints instead). */
  line(text = ''): void {
    if (!this.json) this.io.stdout(`${text}\n`);
  }

  /** Progress of a long step, on stderr so `--json` output stays clean. */
  progress(text: string): void {
    this.io.stderr(`${text}\n`);
  }

  warn(text: string): void {
    this.io.stderr(`warning: ${text}\n`);
  }

  /** The machine-readable result; printed only with `--json`. */
  result(value: unknown): void {
    if (this.json) this.io.stdout(`${JSON.stringify(value, null, 2)}\n`);
  }
}

/** Renders an error the way every command prints it: message, then one line per field. */
export function formatError(error: CliError): string {
  const lines = [`error: ${error.message}`];
  for (const f of error.fields) lines.push(`  ${f.field}: ${f.message}`);
  return `${lines.join('\n')}\n`;
}

/** `1536` -> `1.5 KB`: sizes in reports. */
export function formatBytes(bytes: number | null): string {
  if (bytes === null) return 'n/a';
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/** Milliseconds with one decimal, as reported per entry. */
export function formatMs(ms: number | null): string {
  return ms === null ? 'n/a' : `${ms.toFixed(1)} ms`;
}

/** Left-aligned columns for the per-entry tables. */
export function table(rows: string[][]): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) =>
    r
      .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i])))
      .join('  ')
      .trimEnd(),
  );
}
