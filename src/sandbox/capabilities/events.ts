import { ErrorCode } from '../../errors/index.js';
import { SandboxError } from '../sandbox-error.js';
import {
  badArgument,
  isPlainRecord,
  jsonBytes,
  requirePermission,
  stringArg,
  type CapabilityHandler,
} from './capability-context.js';

export const EVENT_MAX_NAME_CHARS = 200;
export const EVENT_MAX_DATA_BYTES = 64 * 1024;
export const EVENT_MAX_IDEMPOTENCY_KEY_CHARS = 200;

/**
 * `ctx.events.emit(name, data, { idempotencyKey }?)`: permission `events.emit`, and `name` must be
 * listed in the bundle's `emits`, so an addon cannot impersonate events of the platform or of other
 * addons.
 */
export const eventsEmit: CapabilityHandler = async (env, args) => {
  requirePermission(env, 'events.emit', 'ctx.events.emit');
  const name = stringArg(args, 'name', 'ctx.events.emit', EVENT_MAX_NAME_CHARS);
  if (!env.bundle.emits.includes(name)) {
    throw new SandboxError(
      ErrorCode.PermissionDenied,
      `ctx.events.emit: event "${name}" is not declared in the "emits" of addon "${env.bundle.addonName}".`,
      { permission: 'events.emit', event: name },
    );
  }
  const data = args.data === undefined ? null : args.data;
  const size = jsonBytes(data);
  if (size > EVENT_MAX_DATA_BYTES) {
    throw new SandboxError(
      ErrorCode.InputTooLarge,
      `ctx.events.emit: event data takes ${size} bytes; at most ${EVENT_MAX_DATA_BYTES} are allowed.`,
    );
  }
  let idempotencyKey: string | undefined;
  if (args.options !== undefined && args.options !== null) {
    if (!isPlainRecord(args.options)) throw badArgument('ctx.events.emit', 'options must be an object.');
    if (args.options.idempotencyKey !== undefined) {
      idempotencyKey = stringArg(
        args.options,
        'idempotencyKey',
        'ctx.events.emit',
        EVENT_MAX_IDEMPOTENCY_KEY_CHARS,
      );
    }
  }
  const { id, duplicate } = await env.capabilities.emitEvent(
    env.scope,
    name,
    data,
    idempotencyKey === undefined ? undefined : { idempotencyKey },
  );
  return { id, duplicate: duplicate === true };
};
