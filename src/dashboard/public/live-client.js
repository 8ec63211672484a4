// A small client of the graphql-transport-ws protocol (the one graphql-ws speaks), written here
// because the page loads no third-party code and nothing from a CDN. It does what the dashboard
// needs: authenticate in connection_init, multiplex subscriptions, answer pings, reconnect with
// backoff, re-subscribing everything, unless the server refused the key (4403), and subscribe
// again to a subscription the server ended with LIVE_STREAM_INTERRUPTED (it may have missed
// messages), telling the page when the gap began and when the subscription holds again.

/** The close code the server uses for a bad key in connection_init. */
export const FORBIDDEN_CLOSE_CODE = 4403;
const PROTOCOL = 'graphql-transport-ws';
const MAX_RETRY_DELAY_MS = 15_000;
/** The code of a subscription the server ended because it may have missed messages. */
export const INTERRUPTED_CODE = 'LIVE_STREAM_INTERRUPTED';
const MAX_RESUBSCRIBE_DELAY_MS = 5_000;
/** A resubscription not ended again within this long holds: the gap is over. */
const HOLDS_AFTER_MS = 1_000;

/**
 * Opens a connection at once and keeps it open until close().
 *
 * @param {{ url: string, key: string, onStatus: (status: 'connecting' | 'live' | 'reconnecting' | 'forbidden' | 'closed', detail: { reconnected?: boolean, code?: number, reason?: string }) => void }} options
 */
export function createLiveClient({ url, key, onStatus }) {
  /**
   * @type {Map<string, { payload: object, sink: LiveSink, interruption: object | null, attempts: number,
   *   timer?: ReturnType<typeof setTimeout> }>}
   */
  const subscriptions = new Map();
  /** @type {WebSocket | null} */
  let socket = null;
  let acknowledged = false;
  let closed = false;
  let failures = 0;
  let everConnected = false;
  let nextId = 0;
  /** @type {ReturnType<typeof setTimeout> | undefined} */
  let retryTimer;

  const send = (message) => {
    if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(message));
  };

  const connect = () => {
    onStatus(everConnected ? 'reconnecting' : 'connecting', {});
    const ws = new WebSocket(url, PROTOCOL);
    socket = ws;
    ws.addEventListener('open', () => {
      send({ type: 'connection_init', payload: { authorization: `Bearer ${key}` } });
    });
    ws.addEventListener('message', (event) => {
      let message;
      try {
        message = JSON.parse(String(event.data));
      } catch {
        return;
      }
      handle(message);
    });
    ws.addEventListener('close', (event) => {
      if (socket !== ws) return;
      socket = null;
      acknowledged = false;
      if (closed) return;
      if (event.code === FORBIDDEN_CLOSE_CODE) {
        closed = true;
        onStatus('forbidden', { code: event.code, reason: event.reason });
        return;
      }
      failures += 1;
      // Exponential backoff with jitter, so a restarted server is not hit by every tab at once.
      const delay =
        Math.min(MAX_RETRY_DELAY_MS, 500 * 2 ** Math.min(failures, 5)) * (0.5 + Math.random() / 2);
      onStatus('reconnecting', { code: event.code, reason: event.reason });
      retryTimer = setTimeout(connect, delay);
    });
  };

  const handle = (message) => {
    switch (message.type) {
      case 'connection_ack': {
        acknowledged = true;
        failures = 0;
        const reconnected = everConnected;
        everConnected = true;
        for (const [id, entry] of subscriptions) {
          clearTimeout(entry.timer);
          send({ id, type: 'subscribe', payload: entry.payload });
          if (entry.interruption) entry.timer = setTimeout(() => holds(id, entry), HOLDS_AFTER_MS);
        }
        onStatus('live', { reconnected });
        break;
      }
      case 'ping':
        send({ type: 'pong' });
        break;
      case 'next': {
        const entry = subscriptions.get(message.id);
        if (!entry) break;
        const interrupted = (message.payload?.errors ?? []).find(
          (error) => error?.extensions?.code === INTERRUPTED_CODE,
        );
        if (interrupted) {
          // The server ends this subscription next: subscribe again once it has.
          if (!entry.interruption) entry.sink.interrupted?.(interrupted);
          entry.interruption = interrupted;
          clearTimeout(entry.timer);
          break;
        }
        if (message.payload?.data) holds(message.id, entry);
        entry.sink.next(message.payload);
        break;
      }
      case 'error': {
        const entry = subscriptions.get(message.id);
        subscriptions.delete(message.id);
        entry?.sink.error?.(message.payload);
        break;
      }
      case 'complete': {
        const entry = subscriptions.get(message.id);
        if (entry?.interruption) resubscribe(message.id, entry);
        else subscriptions.delete(message.id);
        break;
      }
      default:
        break;
    }
  };

  /** After a backoff (refused again while the server has no Redis), the same subscription again. */
  const resubscribe = (id, entry) => {
    entry.attempts += 1;
    const delay = Math.min(MAX_RESUBSCRIBE_DELAY_MS, 250 * 2 ** Math.min(entry.attempts, 5));
    clearTimeout(entry.timer);
    entry.timer = setTimeout(() => {
      if (subscriptions.get(id) !== entry || !acknowledged) return;
      send({ id, type: 'subscribe', payload: entry.payload });
      entry.timer = setTimeout(() => holds(id, entry), HOLDS_AFTER_MS);
    }, delay);
  };

  /** A resubscription delivers (or was not ended again): the gap is over. */
  const holds = (id, entry) => {
    if (!entry.interruption || subscriptions.get(id) !== entry) return;
    clearTimeout(entry.timer);
    const gap = entry.interruption;
    entry.interruption = null;
    entry.attempts = 0;
    entry.sink.resumed?.(gap);
  };

  connect();

  return {
    /**
     * Starts a subscription (now, or as soon as the connection is acknowledged); returns a function
     * that stops it. A subscription the server ends with LIVE_STREAM_INTERRUPTED is started again
     * (with backoff): `interrupted` is told when that happens, `resumed` once it holds again, so
     * the page can fetch what the gap held from the stored records.
     *
     * @param {string} query
     * @param {Record<string, unknown>} variables
     * @param {LiveSink} sink
     */
    subscribe(query, variables, sink) {
      nextId += 1;
      const id = String(nextId);
      const payload = { query, variables };
      subscriptions.set(id, { payload, sink, interruption: null, attempts: 0 });
      if (acknowledged) send({ id, type: 'subscribe', payload });
      return () => {
        const entry = subscriptions.get(id);
        clearTimeout(entry?.timer);
        if (subscriptions.delete(id) && acknowledged) send({ id, type: 'complete' });
      };
    },
    close() {
      closed = true;
      clearTimeout(retryTimer);
      for (const entry of subscriptions.values()) clearTimeout(entry.timer);
      subscriptions.clear();
      const ws = socket;
      socket = null;
      ws?.close(1000, 'closed by the dashboard');
      onStatus('closed', {});
    },
  };
}

/**
 * @typedef {{
 *   next: (result: { data?: object, errors?: unknown[] }) => void,
 *   error?: (errors: unknown) => void,
 *   interrupted?: (error: { message: string, extensions?: { code?: string, reason?: string } }) => void,
 *   resumed?: (error: { message: string, extensions?: { code?: string, reason?: string } }) => void,
 * }} LiveSink
 */
