import { performance } from 'node:perf_hooks';
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
      // Since the process started (Node and module loading included), and per start step.
      startupMs: Math.round(performance.now()),
      startupSteps: app.startup,
    },
    'ThemePress Addon Server ready',
  );
  // Printed with console too so it is visible when LOG_LEVEL is quiet. A newcomer's `npm start`
  // (development) gets where everything is and what to run next.
  if (config.isDevelopment) console.log(startBanner(config, url));
  else console.log(`ThemePress Addon Server listening on ${url}/graphql`);

  let stopping = false;
  let endDrain: (() => void) | null = null;
  const stop = async (signal: string) => {
    // A second signal cuts the drain short.
    if (stopping) return endDrain?.();
    stopping = true;
    app.http.log.info({ signal, drainMs: config.shutdownDrainMs }, 'draining, then shutting down');
    // Bounded: a request or execution that never ends must not keep the process alive.
    const timer = setTimeout(() => {
      console.error(`Shutdown took longer than ${config.shutdownTimeoutMs} ms after draining; exiting.`);
      process.exit(1);
    }, config.shutdownDrainMs + config.shutdownTimeoutMs);
    timer.unref();
    // Still serving, /readyz 503 and `Connection: close` on every response: load balancers stop
    // routing here and keep-alive clients move their next request elsewhere before the listener
    // closes (a request sent on a connection as it closes would be reset).
    await Promise.race([
      app.drain(config.shutdownDrainMs),
      new Promise<void>((resolve) => (endDrain = resolve)),
    ]);
    await app.close();
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}
