import { ErrorCode } from '../../errors/index.js';
import { SandboxError } from '../sandbox-error.js';
import {
  badArgument,
  jsonBytes,
  optionalStringArg,
  requirePermission,
  stringArg,
  type CapabilityHandler,
} from './capability-context.js';

export const STORAGE_MAX_KEY_CHARS = 200;
export const STORAGE_MAX_VALUE_BYTES = 256 * 1024;
export const STORAGE_LIST_DEFAULT_LIMIT = 100;
export const STORAGE_LIST_MAX_LIMIT = 1000;

/** `ctx.storage.get(key)`: permission `storage.read`. */
export const storageGet: CapabilityHandler = async (env, args) => {
  requirePermission(env, 'storage.read', 'ctx.storage.get');
  const key = stringArg(args, 'key', 'ctx.storage.get', STORAGE_MAX_KEY_CHARS);
  return (await env.capabilities.storageGet(env.scope, key)) ?? null;
};

/** `ctx.storage.set(key, value)`: permission `storage.write`; value JSON, at most 256 KB. */
export const storageSet: CapabilityHandler = async (env, args) => {
  requirePermission(env, 'storage.write', 'ctx.storage.set');
  const key = stringArg(args, 'key', 'ctx.storage.set', STORAGE_MAX_KEY_CHARS);
  if (args.value === undefined) throw badArgument('ctx.storage.set', 'value must not be undefined.');
  const size = jsonBytes(args.value);
  if (size > STORAGE_MAX_VALUE_BYTES) {
    throw new SandboxError(
      ErrorCode.StorageQuotaExceeded,
      `ctx.storage.set: the value takes ${size} bytes; at most ${STORAGE_MAX_VALUE_BYTES} are allowed.`,
    );
  }
  await env.capabilities.storageSet(env.scope, key, args.value);
  return null;
};

/** `ctx.storage.delete(key)`: permission `storage.write`; resolves to whether the key existed. */
export const storageDelete: CapabilityHandler = async (env, args) => {
  requirePermission(env, 'storage.write', 'ctx.storage.delete');
  const key = stringArg(args, 'key', 'ctx.storage.delete', STORAGE_MAX_KEY_CHARS);
  return (await env.capabilities.storageDelete(env.scope, key)) === true;
};

/** `ctx.storage.list({ prefix?, limit?, cursor? })`: permission `storage.read`. */
export const storageList: CapabilityHandler = async (env, args) => {
  requirePermission(env, 'storage.read', 'ctx.storage.list');
  const prefix = optionalStringArg(args, 'prefix', 'ctx.storage.list', STORAGE_MAX_KEY_CHARS);
  const cursor = optionalStringArg(args, 'cursor', 'ctx.storage.list', 1000);
  let limit = STORAGE_LIST_DEFAULT_LIMIT;
  if (args.limit !== undefined && args.limit !== null) {
    if (
      !Number.isInteger(args.limit) ||
      (args.limit as number) < 1 ||
      (args.limit as number) > STORAGE_LIST_MAX_LIMIT
    ) {
      throw badArgument('ctx.storage.list', `limit must be an integer from 1 to ${STORAGE_LIST_MAX_LIMIT}.`);
    }
    limit = args.limit as number;
  }
  const page = await env.capabilities.storageList(env.scope, { prefix, limit, cursor });
  return { keys: page.keys.slice(0, limit), cursor: page.cursor ?? null };
};
