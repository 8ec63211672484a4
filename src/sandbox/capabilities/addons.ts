import { ErrorCode } from '../../errors/index.js';
import { MAX_CALL_DEPTH } from '../limits.js';
import { SandboxError } from '../sandbox-error.js';
import { jsonBytes, stringArg, type CapabilityHandler } from './capability-context.js';

/**
 * `ctx.addons.call(addonName, functionName, data)`: allowed only for addons named in the bundle's
 * `dependencies` (the declaration is the grant), and only `MAX_CALL_DEPTH` hops deep, which also ends
 * call cycles.
 */
export const addonsCall: CapabilityHandler = async (env, args) => {
  const addon = stringArg(args, 'addon', 'ctx.addons.call', 200);
  const fn = stringArg(args, 'fn', 'ctx.addons.call', 200);
  if (!Object.prototype.hasOwnProperty.call(env.bundle.dependencies, addon)) {
    throw new SandboxError(
      ErrorCode.PermissionDenied,
      `ctx.addons.call: addon "${addon}" is not a declared dependency of "${env.bundle.addonName}" (permission addons.call).`,
      { permission: 'addons.call', addon },
    );
  }
  if (env.scope.callDepth + 1 > MAX_CALL_DEPTH) {
    throw new SandboxError(
      ErrorCode.AddonError,
      `ctx.addons.call: the call depth limit of ${MAX_CALL_DEPTH} was reached.`,
    );
  }
  const data = args.data === undefined ? null : args.data;
  if (jsonBytes(data) > env.limits.maxInputBytes) {
    throw new SandboxError(
      ErrorCode.InputTooLarge,
      `ctx.addons.call: data is larger than ${env.limits.maxInputBytes} bytes.`,
    );
  }
  const output = await env.capabilities.callAddon(env.scope, addon, fn, data);
  return output === undefined ? null : output;
};
