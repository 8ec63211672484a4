import { setTimeout as sleep } from 'node:timers/promises';

/**
 * Waits, when fewer than `marginMs` are left of the current rate-limit window, for the next one.
 * Windows are fixed and aligned to the clock (the server's, this machine's), so a test that counts
 * requests against a limit would otherwise, now and then, straddle two windows and see the count
 * start again. The daily budgets (events, logs) are such windows of 86,400 s, from 00:00 UTC.
 */
export async function inOneRateWindow(windowSeconds = 60, marginMs = 5_000): Promise<void> {
  const windowMs = windowSeconds * 1000;
  const left = windowMs - (Date.now() % windowMs);
  if (left < marginMs) await sleep(left + 20);
}
