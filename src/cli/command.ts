import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { CliError, EXIT, Reporter, UsageError, type CliIo } from './cli-io.js';

type OptionsConfig = NonNullable<ParseArgsConfig['options']>;

/** What a command's `run` receives: parsed arguments and where to write. */
export interface CommandContext {
  positionals: string[];
  values: Record<string, string | boolean | undefined>;
  io: CliIo;
  out: Reporter;
}

/** One `themepress` command: its words, help text, options and what it does. */
export interface Command {
  /** `['addon', 'validate']`. */
  words: string[];
  /** One line for the command list. */
  summary: string;
  /** `<dir> [--json]`: the arguments after the words. */
  usage: string;
  /** The rest of `--help`: what it does, options, exit codes, examples. */
  details: string;
  options: OptionsConfig;
  /** How many positionals it takes. */
  arity: { min: number; max: number };
  run(context: CommandContext): Promise<number>;
}

/** Options every command accepts. */
export const COMMON_OPTIONS: OptionsConfig = {
  help: { type: 'boolean', short: 'h' },
  json: { type: 'boolean' },
};

/** The full `--help` text of a command. */
export function helpText(command: Command): string {
  return `Usage: themepress ${command.words.join(' ')} ${command.usage}

${command.summary}

${command.details.trim()}

Exit codes: 0 success, 1 failed (validation problems, a failing run, the server refused or could
not be reached), 2 wrong usage (unknown command or option, missing argument or API key).
`;
}

/**
 * Parses a command's arguments strictly (an unknown option or a missing argument is a usage error,
 * exit code 2), then runs it; `--help` prints the help and succeeds.
 */
export async function runCommand(command: Command, args: string[], io: CliIo): Promise<number> {
  const name = `themepress ${command.words.join(' ')}`;
  let parsed: { values: Record<string, string | boolean | undefined>; positionals: string[] };
  try {
    parsed = parseArgs({
      args,
      options: { ...COMMON_OPTIONS, ...command.options },
      allowPositionals: true,
      strict: true,
    }) as typeof parsed;
  } catch (error) {
    throw new UsageError(
      `${(error as Error).message.replace(/\s*To specify a positional argument.*$/s, '')}`,
      `${name} --help`,
    );
  }
  if (parsed.values.help) {
    io.stdout(helpText(command));
    return 0;
  }
  const { min, max } = command.arity;
  if (parsed.positionals.length < min) {
    throw new UsageError(`Missing argument: ${name} ${command.usage}`, `${name} --help`);
  }
  if (parsed.positionals.length > max) {
    throw new UsageError(
      `Unexpected argument "${parsed.positionals[max]}": ${name} ${command.usage}`,
      `${name} --help`,
    );
  }
  const out = new Reporter(io, parsed.values.json === true);
  return command.run({ positionals: parsed.positionals, values: parsed.values, io, out });
}

/** Parses `--config` / `--input`: inline JSON, or `@file` holding JSON. */
export async function jsonArgument(raw: string | undefined, option: string, cwd: string): Promise<unknown> {
  if (raw === undefined) return undefined;
  let text = raw;
  if (raw.startsWith('@')) {
    const file = path.resolve(cwd, raw.slice(1));
    try {
      text = await readFile(file, 'utf8');
    } catch (error) {
      const why = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      throw new CliError(`${option}: cannot read ${file} (${why}).`, EXIT.usage, [], 'USAGE');
    }
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new CliError(`${option}: not valid JSON (${(error as Error).message}).`, EXIT.usage, [], 'USAGE');
  }
}
