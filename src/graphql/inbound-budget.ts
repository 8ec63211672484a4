import type { WebSocket } from 'ws';

/** The largest message a socket may send (ws closes the socket with 1009 past it). */
export const MAX_MESSAGE_BYTES = 1024 * 1024;

/** A socket being metered: `moveTo` counts it against another caller from then on. */
export interface MeteredSocket {
  moveTo(next: string): void;
}

/** Each message counts at least this many bytes against its caller's budget, so tiny ones are bounded too. */
const MIN_MESSAGE_CHARGE = 1024;

/**
 * Meters what sockets send, per caller: graphql-ws parses each message on the event loop, so
 * unmetered sockets could keep it busy. A socket counts against its address until its
 * `connection_init` is accepted, then against its caller (`callerKey`: the key, or the
 * address when anonymous), so a neighbour behind the same address cannot spend a key's budget. A
 * token bucket per caller holds one largest message and refills at `bytesPerSecond`; a socket whose
 * message takes its caller below zero stops being read until the bucket is back at zero: TCP then
 * pushes back on the sender, and nothing more of it is parsed meanwhile. `attach` registers before
 * graphql-ws's listener, so the message over budget is the last one of that socket read until then.
 */
export function createInboundBudget(bytesPerSecond: number, onPaused: () => void) {
  type Bucket = { tokens: number; last: number; sockets: number };
  const buckets = new Map<string, Bucket>();
  const take = (caller: string): Bucket => {
    const bucket = buckets.get(caller) ?? { tokens: MAX_MESSAGE_BYTES, last: performance.now(), sockets: 0 };
    bucket.sockets += 1;
    buckets.set(caller, bucket);
    return bucket;
  };
  const give = (caller: string, bucket: Bucket): void => {
    bucket.sockets -= 1;
    if (bucket.sockets === 0 && buckets.get(caller) === bucket) buckets.delete(caller);
  };
  return {
    /** Meters `ws` against `caller`; `moveTo` counts it against another caller from then on. */
    attach(ws: WebSocket, caller: string): MeteredSocket {
      let current = caller;
      let bucket = take(caller);
      let timer: NodeJS.Timeout | null = null;
      ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
        const now = performance.now();
        const refill = ((now - bucket.last) / 1000) * bytesPerSecond;
        bucket.tokens = Math.min(MAX_MESSAGE_BYTES, bucket.tokens + refill);
        bucket.last = now;
        const bytes = Array.isArray(data)
          ? data.reduce((sum, part) => sum + part.length, 0)
          : data.byteLength;
        bucket.tokens -= Math.max(MIN_MESSAGE_CHARGE, bytes);
        if (bucket.tokens >= 0 || timer !== null) return;
        ws.pause();
        onPaused();
        timer = setTimeout(
          () => {
            timer = null;
            ws.resume();
          },
          (-bucket.tokens / bytesPerSecond) * 1000,
        );
      });
      ws.once('close', () => {
        if (timer !== null) clearTimeout(timer);
        give(current, bucket);
      });
      return {
        moveTo(next) {
          if (next === current) return;
          give(current, bucket);
          current = next;
          bucket = take(next);
        },
      };
    },
  };
}
