import { readFileSync } from 'node:fs';
import path from 'node:path';
import { seedCommand } from '../seed/seed.js';
import { CliError, EXIT, formatError, processIo, UsageError, type CliIo } from './cli-io.js';
import { runCommand, type Command } from './command.js';
import { initCommand } from './commands/init.js';
import { devCommand } from './commands/dev.js';
import { loginCommand, logoutCommand } from './commands/login.js';
import { installCommand } from './commands/install.js';
import { upgradeCommand } from './commands/upgrade.js';
import { unpublishCommand } from './commands/unpublish.js';
import { publishCommand } from './commands/publish.js';
import { validateCommand } from './commands/validate.js';
import { PACKAGE_ROOT } from './package-root.js';

/** Every command, in the order `--help` lists them. */
export const COMMANDS: Command[] = [
  initCommand,
  devCommand,
  validateCommand,
  publishCommand,
  unpublishCommand,
  installCommand,
  upgradeCommand,
  loginCommand,
  logoutCommand,
  seedCommand,
];

function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as {
      version?: string;
    };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.words.join(' ').length));
  const lines = COMMANDS.map((c) => `  ${c.words.join(' ').padEnd(width)}  ${c.summary}`);
  return `Usage: themepress <command> [options]

The ThemePress CLI: create, check, publish and install addons, and seed a demo shop.

Commands:
${lines.join('\n')}

Every command takes --help and --json (machine-readable result on stdout; progress always goes to
stderr). Commands that talk to a server use --url, else THEMEPRESS_URL, else the server of
"themepress login", else http://localhost:4000; and the key THEMEPRESS_API_KEY, else the one
"themepress login" stored for that server, else, for a server on this machine, the admin key a
development server wrote to .data/admin-key (of this folder or of the clone this CLI runs from).

Start here:
  themepress addon init my-addon       create an addon folder (it prints what to run next)
  themepress addon dev my-addon        preview its widgets and functions, re-run on every save

Exit codes: 0 success, 1 failed (validation problems, a failing run, the server refused or could
not be reached), 2 wrong usage (unknown command or option, missing argument or API key).
`;
}

function groupHelp(group: string): string {
  const commands = COMMANDS.filter((c) => c.words[0] === group && c.words.length > 1);
  const width = Math.max(...commands.map((c) => c.words.join(' ').length));
  return `Usage: themepress ${group} <command> [options]

Commands:
${commands.map((c) => `  ${c.words.join(' ').padEnd(width)}  ${c.summary}`).join('\n')}

Run "themepress ${group} <command> --help" for a command's options.
`;
}

function findCommand(argv: string[]): { command: Command; rest: string[] } | null {
  for (const command of COMMANDS) {
    if (command.words.every((word, i) => argv[i] === word)) {
      return { command, rest: argv.slice(command.words.length) };
    }
  }
  return null;
}

/**
 * Runs `themepress <argv>` and resolves to its exit code; never throws. Failures the CLI
 * understands print as `error: ...` with one line per field (and as `{ ok: false, error }` on
 * stdout with `--json`); anything else is a bug and prints its stack.
 */
export async function runCli(argv: string[], io: CliIo = processIo()): Promise<number> {
  try {
    const [first, second] = argv;
    if (first === undefined) {
      io.stderr(overview());
      return EXIT.usage;
    }
    if (first === '--help' || first === '-h') {
      io.stdout(overview());
      return EXIT.ok;
    }
    if (first === '--version' || first === '-v') {
      io.stdout(`${version()}\n`);
      return EXIT.ok;
    }
    if (first === 'help') {
      const found = argv.length > 1 ? findCommand(argv.slice(1)) : null;
      if (found) return await runCommand(found.command, ['--help'], io);
      if (second && COMMANDS.some((c) => c.words[0] === second)) {
        io.stdout(groupHelp(second));
        return EXIT.ok;
      }
      io.stdout(overview());
      return second === undefined ? EXIT.ok : EXIT.usage;
    }
    const found = findCommand(argv);
    if (found) return await runCommand(found.command, found.rest, io);
    if (COMMANDS.some((c) => c.words[0] === first && c.words.length > 1)) {
      if (second === '--help' || second === '-h') {
        io.stdout(groupHelp(first));
        return EXIT.ok;
      }
      if (second === undefined || second.startsWith('-')) {
        io.stderr(groupHelp(first));
        return EXIT.usage;
      }
      throw new UsageError(`Unknown command "${first} ${second}".`, `themepress ${first} --help`);
    }
    throw new UsageError(`Unknown command "${first}".`);
  } catch (error) {
    const failure =
      error instanceof CliError
        ? error
        : new CliError(
            `unexpected failure (a bug in the CLI; please report it): ${(error as Error)?.stack ?? error}`,
            EXIT.failure,
            [],
            'INTERNAL',
          );
    io.stderr(formatError(failure));
    if (argv.includes('--json')) {
      const body = {
        ok: false,
        error: { code: failure.code, message: failure.message, fields: failure.fields },
      };
      io.stdout(`${JSON.stringify(body, null, 2)}\n`);
    }
    return failure.exitCode;
  }
}

/**
 * The process entry (bin/themepress.mjs, `npm run seed`): reads `.env` like `npm start` does,
 * runs the command and exits with its code.
 */
export async function main(argv: string[] = process.argv.slice(2)): Promise<void> {
  try {
    // Values already in the environment win over the file; no file is fine.
    process.loadEnvFile('.env');
  } catch {
    // No .env here.
  }
  const code = await runCli(argv);
  // Exit explicitly so nothing left open (an idle keep-alive socket) holds the terminal, but only
  // after stdout and stderr are flushed: on some systems pipes are written asynchronously.
  await Promise.all([process.stdout, process.stderr].map((s) => new Promise((done) => s.write('', done))));
  process.exit(code);
}
