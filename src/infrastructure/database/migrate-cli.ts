// Command line for migrations, in place of `prisma migrate`, whose engine binary cannot be downloaded
// here. Usage (from the project root, after `npm run build`):
//   node dist/src/infrastructure/database/migrate-cli.js deploy            (needs DATABASE_URL)
//   node dist/src/infrastructure/database/migrate-cli.js status            (needs DATABASE_URL)
//   node dist/src/infrastructure/database/migrate-cli.js diff <name>       (no database)
// Add --verbose to see the schema engine's own messages.
import { applyPendingMigrations, diffMigration, migrationStatus } from './migration-engine.js';

const USAGE = 'usage: migrate-cli <deploy | status | diff <name>> [--verbose]';

class UsageError extends Error {}

function requireDatabaseUrl(): string {
  const url = process.env.DATABASE_URL;
  if (!url) throw new UsageError('DATABASE_URL is not set');
  return url;
}

async function run(args: string[]): Promise<void> {
  const verbose = args.includes('--verbose');
  const [command, ...rest] = args.filter((arg) => arg !== '--verbose');
  const log = verbose ? (message: string) => console.error(`  ${message}`) : undefined;

  switch (command) {
    case 'deploy': {
      const { applied } = await applyPendingMigrations(requireDatabaseUrl(), { log });
      console.log(
        applied.length === 0
          ? 'No pending migrations to apply.'
          : `Applied ${applied.length} migration(s):\n${applied.map((name) => `  ${name}`).join('\n')}`,
      );
      return;
    }
    case 'status': {
      const status = await migrationStatus(requireDatabaseUrl());
      console.log(`applied: ${status.applied.length}, pending: ${status.pending.length}`);
      for (const name of status.pending) console.log(`  pending  ${name}`);
      for (const name of status.failed) console.log(`  FAILED   ${name}`);
      if (status.failed.length > 0) process.exitCode = 1;
      return;
    }
    case 'diff': {
      const name = rest[0];
      if (!name) throw new UsageError('diff needs a migration name, e.g. `npm run db:diff -- add_events`');
      const { directory } = await diffMigration({ name });
      console.log(directory ? `Wrote ${directory}/migration.sql` : 'No schema changes');
      return;
    }
    default:
      throw new UsageError(command ? `unknown command ${JSON.stringify(command)}` : 'no command given');
  }
}

run(process.argv.slice(2)).catch((error: unknown) => {
  const message = error instanceof Error ? error.message : String(error);
  // One line, so CI logs and container logs show the cause where the failure is reported.
  console.error(`migrate: ${message.replace(/\s*\n\s*/g, ' ')}`);
  if (error instanceof UsageError) console.error(USAGE);
  process.exitCode = 1;
});
