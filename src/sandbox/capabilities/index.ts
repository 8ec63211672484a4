import type { CapabilityHandler } from './capability-context.js';
import { addonsCall } from './addons.js';
import { eventsEmit } from './events.js';
import { httpFetch } from './http.js';
import { storageDelete, storageGet, storageList, storageSet } from './storage.js';

export type { CapabilityEnv, CapabilityHandler } from './capability-context.js';
export { sanitizeLogs } from './log.js';
export { isHostAllowed } from './http.js';

/** Every capability an isolate may ask for, by the operation name the bootstrap sends. */
export const CAPABILITY_HANDLERS: ReadonlyMap<string, CapabilityHandler> = new Map([
  ['storage.get', storageGet],
  ['storage.set', storageSet],
  ['storage.delete', storageDelete],
  ['storage.list', storageList],
  ['events.emit', eventsEmit],
  ['addons.call', addonsCall],
  ['http.fetch', httpFetch],
]);
