import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config/app-config.js';
import { createDatabase } from '../infrastructure/database/database.js';
import { AppError } from '../errors/index.js';
import { ApiKeyService } from './api-key.service.js';
import type { Actor } from './actor.js';
import { ApiClient, resolveApiKey, resolveServerUrl } from '../cli/api-client.js';
import { CliError, formatError } from '../cli/cli-io.js';

const usage = `Usage: npm run keys:create -- --role <admin|developer|site> [--name <label>]
                           [--site <siteId>] [--developer <name>] [--create-site <name>]

Creates an API key and prints it once on stdout (only its hash is kept); what else happened goes
to stderr, so KEY=$(npm run -s keys:create -- ...) captures the key alone.
  --role         admin, developer or site
  --site         the site a site key acts for
  --create-site  create a site with this name first and issue a key for it
  --developer    the developer a developer key acts for (created if new)

Where the key is created:
  DATABASE_URL set   directly in that database (whoever can reach it is already an admin)
  otherwise          through the running server (npm start, the embedded database included):
                     THEMEPRESS_URL (default http://localhost:$PORT) with THEMEPRESS_API_KEY, else
                     the admin key a development server keeps in $DATA_DIR/admin-key`;

const CREATE_SITE = `mutation KeysCreateSite($name: String!) { createSite(name: $name) { id name } }`;
const CREATE_KEY = `mutation KeysCreateApiKey($role: ApiKeyRole!, $name: String, $siteId: ID, $developerName: String) {
  createApiKey(role: $role, name: $name, siteId: $siteId, developerName: $developerName) { key apiKey { id prefix } }
}`;

interface KeyRequest {
  role: 'admin' | 'developer' | 'site';
  name?: string;
  siteId: string | null;
  createSite?: string;
  developer?: string;
}

/** With direct database access: the CLI acts as the platform admin. */
async function createInDatabase(databaseUrl: string, request: KeyRequest): Promise<string> {
  const database = createDatabase({ connectionString: databaseUrl, max: 1 });
  const cli: Actor = { kind: 'admin', keyId: 'cli' };
  try {
    let siteId = request.siteId;
    if (request.createSite) {
      siteId = (await database.prisma.site.create({ data: { name: request.createSite } })).id;
      console.error(`created site ${siteId} "${request.createSite}"`);
    }
    const created = await new ApiKeyService(database, 0).create(cli, {
      role: request.role,
      name: request.name,
      siteId,
      developerName: request.developer,
    });
    console.error(`created ${request.role} key ${created.record.prefix}… (id ${created.record.id})`);
    return created.key;
  } finally {
    await database.close();
  }
}

/** Through the server's GraphQL API with an admin key: works whatever database the server uses. */
async function createThroughApi(request: KeyRequest): Promise<string> {
  const env = process.env;
  const url = resolveServerUrl(undefined, env);
  const key = await resolveApiKey(env, process.cwd(), url, 'an admin key (or set DATABASE_URL)');
  const client = new ApiClient(url, key);
  let siteId = request.siteId;
  if (request.createSite) {
    const { createSite } = await client.request<{ createSite: { id: string } }>(
      'create the site',
      CREATE_SITE,
      { name: request.createSite },
    );
    siteId = createSite.id;
    console.error(`created site ${siteId} "${request.createSite}"`);
  }
  const { createApiKey } = await client.request<{
    createApiKey: { key: string; apiKey: { id: string; prefix: string } };
  }>(`create a ${request.role} key`, CREATE_KEY, {
    role: request.role.toUpperCase(),
    name: request.name ?? null,
    siteId,
    developerName: request.developer ?? null,
  });
  console.error(
    `created ${request.role} key ${createApiKey.apiKey.prefix}… (id ${createApiKey.apiKey.id}) on ${url}`,
  );
  return createApiKey.key;
}

/** `npm run keys:create`: issues keys in DATABASE_URL, or through the running server. */
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
    process.exit(values.help ? 0 : 2);
  }
  if (!['admin', 'developer', 'site'].includes(values.role)) {
    console.error(`--role: expected admin, developer or site, got "${values.role}"`);
    process.exit(2);
  }
  try {
    // Values already in the environment win over the file, as for `npm start`.
    process.loadEnvFile('.env');
  } catch {
    // No .env here.
  }
  const config = loadConfig();
  const request: KeyRequest = {
    role: values.role as KeyRequest['role'],
    name: values.name,
    siteId: values.site ?? null,
    createSite: values['create-site'],
    developer: values.developer,
  };
  const key = config.databaseUrl
    ? await createInDatabase(config.databaseUrl, request)
    : await createThroughApi(request);
  console.log(key);
}

main().catch((error: unknown) => {
  if (error instanceof CliError) {
    process.stderr.write(formatError(error));
    process.exit(error.exitCode);
  }
  const message = error instanceof AppError || error instanceof ConfigError ? error.message : String(error);
  console.error(message);
  process.exit(1);
});
