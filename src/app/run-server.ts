import { ConfigError, loadConfig } from '../config/app-config.js';
import { createApp } from './create-app.js';
import { startBanner } from './start-banner.js';

/** `npm start` (through `src/main.ts`): one server process, until SIGTERM or SIGINT. */
export async function runServer(): Promise<void> {
  try {
    // Values already in the environment win over the file.
    process.loadEnvFile('.env');
  } catch {
    // No .env file: configuration comes from the environment alone.
  }
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(`Invalid configuration: ${error.message}`);
      process.exit(1);
    }
    throw error;
  }
  const app = await createApp(config);
  const url = await app.listen();
  app.http.log.info(
    {
      url: `${url}/graphql`,
      database: config.databaseUrl ? 'external' : 'embedded',
      redis: Boolean(config.redisUrl),
    },
    'ThemePress Addon Server ready',
  );
  // Printed with console too so it is visible when LOG_LEVEL is quiet. A newcomer's `npm start`
  // (development) gets where everything is and what to run next.
  if (config.isDevelopment) console.log(startBanner(config, url));
  else console.log(`ThemePress Addon Server listening on ${url}/graphql`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    app.http.log.info({ signal }, 'shutting down');
    // Bounded: a request or execution that never ends must not keep the process alive.
    const timer = setTimeout(() => {
      console.error(`Shutdown took longer than ${config.shutdownTimeoutMs} ms; exiting.`);
      process.exit(1);
    }, config.shutdownTimeoutMs);
    timer.unref();
    await app.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}
