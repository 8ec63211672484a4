import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config/app-config.js';
import { createDatabase } from '../infrastructure/database/database.js';
import { AppError } from '../errors/index.js';
import { ApiKeyService } from './api-key.service.js';
import type { Actor } from './actor.js';

const usage = `Usage: npm run keys:create -- --role <admin|developer|site> [--name <label>]
                           [--site <siteId>] [--developer <name>] [--create-site <name>]

Creates an API key in the database named by DATABASE_URL and prints it once (only its hash is kept).
  --role         admin, developer or site
  --site         the site a site key acts for
  --create-site  create a site with this name first and issue a key for it
  --developer    the developer a developer key acts for (created if new)`;

/** `npm run keys:create`: issues keys with direct database access (acts as the platform admin). */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      role: { type: 'string' },
      name: { type: 'string' },
      site: { type: 'string' },
      'create-site': { type: 'string' },
      developer: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help || !values.role) {
    console.log(usage);
    process.exit(values.help ? 0 : 1);
  }
  const config = loadConfig();
  if (!config.databaseUrl) {
    console.error('DATABASE_URL: expected the PostgreSQL URL to create the key in, got nothing');
    process.exit(1);
  }
  const database = createDatabase({ connectionString: config.databaseUrl, max: 1 });
  // The CLI runs with the database's own credentials: whoever can run it is already an admin.
  const cli: Actor = { kind: 'admin', keyId: 'cli' };
  try {
    let siteId = values.site ?? null;
    if (values['create-site']) {
      siteId = (await database.prisma.site.create({ data: { name: values['create-site'] } })).id;
      console.error(`created site ${siteId}`);
    }
    const created = await new ApiKeyService(database, 0).create(cli, {
      role: values.role as 'admin' | 'developer' | 'site',
      name: values.name,
      siteId,
      developerName: values.developer,
    });
    console.error(`created ${values.role} key ${created.record.prefix}… (id ${created.record.id})`);
    console.log(created.key);
  } finally {
    await database.close();
  }
}

main().catch((error: unknown) => {
  const message = error instanceof AppError || error instanceof ConfigError ? error.message : String(error);
  console.error(message);
  process.exit(1);
});
