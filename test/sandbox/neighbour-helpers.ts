import { performance } from 'node:perf_hooks';
import { AppError } from '../../src/errors/index.js';
import type { AddonBundle, SandboxPool } from '../../src/sandbox/index.js';
import { call, functionsAddon, makeBundle, sleep } from './helpers.js';

/** An addon with quick honest functions and spinners that busy-wait for `d.ms` (sync or async). */
export const spinnerSource = functionsAddon(`{
  ping: () => 'pong',
  later: async (d, ctx) => { await ctx.storage.get('x'); return 'ok'; },
  spin: (d) => { const end = Date.now() + d.ms; while (Date.now() < end) {} return 'spun'; },
  spinAsync: async (d) => { const end = Date.now() + d.ms; while (Date.now() < end) {} return 'spun'; },
  spinAfterSdk: async (d, ctx) => { await ctx.storage.get('k'); const end = Date.now() + d.ms; while (Date.now() < end) {} return 'spun'; },
  grow: (d) => { globalThis.keep = globalThis.keep || []; for (let i = 0; i < d.buffers; i++) globalThis.keep.push(new Uint8Array(8 * 1024 * 1024)); return globalThis.keep.length; },
}`);

/** A fresh version of the honest neighbour: default limits, answers at once. */
export function honestBundle(): AddonBundle {
  return makeBundle(
    functionsAddon(
      `{ ping: (d, ctx) => 'pong:' + ctx.site.id, later: async (d, ctx) => { await ctx.storage.get('x'); return 'ok'; } }`,
    ),
    {
      permissions: ['storage.read'],
    },
  );
}

/** What an honest addon saw while it was called throughout a test. */
export interface Traffic {
  ok: number;
  /** The first 20 failures. */
  failures: string[];
  /** Stops calling and resolves once the last call returned. */
  stop(): Promise<Traffic>;
}

/**
 * Calls `bundle`'s `ping` on `siteId` one after the other (with `gapMs` between calls) until
 * stopped, alternating with an SDK-using call, and counts what succeeded.
 */
export function honestTraffic(
  pool: SandboxPool,
  bundle: AddonBundle,
  siteId = 'honest-site',
  gapMs = 20,
): Traffic {
  // A test that fails before it stops the traffic must not keep the process alive.
  const givesUpAt = performance.now() + 60_000;
  let running = true;
  const traffic: Traffic = {
    ok: 0,
    failures: [],
    stop: async () => {
      running = false;
      await loop;
      return traffic;
    },
  };
  const loop = (async () => {
    for (let i = 0; running && performance.now() < givesUpAt; i += 1) {
      const started = performance.now();
      try {
        await call(pool, bundle, i % 2 === 0 ? 'ping' : 'later', null, { siteId });
        traffic.ok += 1;
      } catch (err) {
        const code = err instanceof AppError ? err.code : String(err);
        if (traffic.failures.length < 20)
          traffic.failures.push(
            `${code} after ${(performance.now() - started).toFixed(0)} ms: ${(err as Error).message}`,
          );
      }
      await sleep(gapMs);
    }
  })();
  return traffic;
}

/** The worker process ids of a pool, in slot order. */
export function pids(pool: SandboxPool): (number | null)[] {
  return pool.stats().perWorker.map((w) => w.pid);
}

/** Settles every promise; returns the outputs and error codes, in order. */
export async function outcomes(promises: Promise<{ output: unknown }>[]): Promise<string[]> {
  const settled = await Promise.allSettled(promises);
  return settled.map((s) =>
    s.status === 'fulfilled'
      ? String(s.value.output)
      : s.reason instanceof AppError
        ? s.reason.code
        : String(s.reason),
  );
}
