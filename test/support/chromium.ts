import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

/** Chromium for the browser tests; fails with a clear message (never skips) when there is none: CI installs one. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `The dashboard browser test needs Chromium at ${CHROMIUM}: install it (apt-get install chromium) or set CHROMIUM_PATH.`,
    );
  }
  try {
    // --no-sandbox: CI and containers run as root, where Chromium's own sandbox cannot start.
    return await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'], headless: true });
  } catch (error) {
    throw new Error(`Chromium at ${CHROMIUM} did not start: ${(error as Error).message}`);
  }
}
