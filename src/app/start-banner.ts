import path from 'node:path';
import type { AppConfig } from '../config/app-config.js';
import { localAdminKeyPath } from '../auth/local-admin-key.js';

/**
 * What a development server prints once it listens: where GraphQL and the dashboard are, where the
 * admin key is kept (its path, never the key) and the command to run next. `listenUrl` is the URL
 * `App.listen()` resolved to; the banner names `localhost` with that port, as the docs do.
 */
export function startBanner(config: AppConfig, listenUrl: string, cwd = process.cwd()): string {
  const { port } = new URL(listenUrl);
  const base = config.host === '0.0.0.0' || config.host === '::' ? `http://localhost:${port}` : listenUrl;
  const relative = (file: string) => {
    const rel = path.relative(cwd, file);
    return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : file;
  };
  const database = config.databaseUrl
    ? 'PostgreSQL from DATABASE_URL'
    : `embedded PostgreSQL in ${relative(path.join(config.dataDir, 'pglite'))}`;
  const key = config.adminApiKey
    ? 'ADMIN_API_KEY (from the environment)'
    : `${relative(localAdminKeyPath(config.dataDir))} (mode 0600; the CLI and the seed read it)`;
  return [
    '',
    `ThemePress Addon Server is running (development, ${database}${config.redisUrl ? ', Redis' : ''})`,
    `  GraphQL    ${base}/graphql`,
    `  Dashboard  ${base}/dashboard`,
    `  Admin key  ${key}`,
    '  Next       npm run seed   (in a second terminal: example addons on a "Demo shop" site)',
    '',
  ].join('\n');
}
