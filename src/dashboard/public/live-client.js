// A small client of the graphql-transport-ws protocol (the one graphql-ws speaks), written here
// because the page loads no third-party code and nothing from a CDN. It does what the dashboard
// needs: authenticate in connection_init, multiplex subscriptions, answer pings, and reconnect
// with backoff, re-subscribing everything, unless the server refused the key (4403).

/** The close code the server uses for a bad key in connection_init. */
export const FORBIDDEN_CLOSE_CODE = 4403;
const PROTOCOL = 'graphql-transport-ws';
const MAX_RETRY_DELAY_MS = 15_000;

/**
 * Opens a connection at once and keeps it open until close().
 *
 * @param {{ url: string, key: string, onStatus: (status: 'connecting' | 'live' | 'reconnecting' | 'forbidden' | 'closed', detail: { reconnected?: boolean, code?: number, reason?: string }) => void }} options
 */
export function createLiveClient({ url, key, onStatus }) {
  /** @type {Map<string, { payload: object, sink: { next: (value: object) => void, error?: (errors: unknown) => void } }>} */
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
        for (const [id, { payload }] of subscriptions) send({ id, type: 'subscribe', payload });
        onStatus('live', { reconnected });
        break;
      }
      case 'ping':
        send({ type: 'pong' });
        break;
      case 'next':
        subscriptions.get(message.id)?.sink.next(message.payload);
        break;
      case 'error': {
        const entry = subscriptions.get(message.id);
        subscriptions.delete(message.id);
        entry?.sink.error?.(message.payload);
        break;
      }
      case 'complete':
        subscriptions.delete(message.id);
        break;
      default:
        break;
    }
  };

  connect();

  return {
    /**
     * Starts a subscription (now, or as soon as the connection is acknowledged); returns a function
     * that stops it.
     *
     * @param {string} query
     * @param {Record<string, unknown>} variables
     * @param {{ next: (result: { data?: object, errors?: unknown[] }) => void, error?: (errors: unknown) => void }} sink
     */
    subscribe(query, variables, sink) {
      nextId += 1;
      const id = String(nextId);
      const payload = { query, variables };
      subscriptions.set(id, { payload, sink });
      if (acknowledged) send({ id, type: 'subscribe', payload });
      return () => {
        if (subscriptions.delete(id) && acknowledged) send({ id, type: 'complete' });
      };
    },
    close() {
      closed = true;
      clearTimeout(retryTimer);
      subscriptions.clear();
      const ws = socket;
      socket = null;
      ws?.close(1000, 'closed by the dashboard');
      onStatus('closed', {});
    },
  };
}
