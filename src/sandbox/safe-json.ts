import { AppError, ErrorCode } from '../errors/index.js';
import { SandboxError } from './sandbox-error.js';

// `JSON.parse` decodes `\u005f` escapes in keys, so any escape forces the careful path.
const SUSPICIOUS = /__proto__|constructor|\\u/;

function dropPrototypeKeys(this: unknown, key: string, value: unknown): unknown {
  if (key === '__proto__') return undefined;
  if (key === 'constructor' && value !== null && typeof value === 'object' && 'prototype' in value) {
    return undefined;
  }
  return value;
}

/**
 * Parses JSON that came from addon code. Own `__proto__` keys (and `constructor.prototype`) are dropped,
 * so a later `Object.assign` or deep merge by host code cannot turn them into a prototype.
 */
export function parseUntrustedJson(text: string): unknown {
  return SUSPICIOUS.test(text) ? JSON.parse(text, dropPrototypeKeys) : JSON.parse(text);
}

/**
 * JSON-encodes a host value bound for an isolate and checks its UTF-8 size.
 * @throws SandboxError INPUT_TOO_LARGE over `maxBytes`; AppError BAD_USER_INPUT when not serialisable.
 */
export function encodeJsonInput(value: unknown, what: string, maxBytes: number): string {
  let json: string | undefined;
  try {
    json = JSON.stringify(value);
  } catch (err) {
    throw new AppError(
      ErrorCode.BadUserInput,
      `The ${what} is not JSON-serialisable: ${(err as Error).message}`,
    );
  }
  json ??= 'null';
  // UTF-8 takes one to three bytes per UTF-16 unit: count exactly only when the length cannot decide.
  if (json.length > maxBytes || (json.length * 3 > maxBytes && Buffer.byteLength(json) > maxBytes)) {
    throw new SandboxError(
      ErrorCode.InputTooLarge,
      `The ${what} is larger than the addon's limit of ${maxBytes} bytes.`,
      { limitBytes: maxBytes },
    );
  }
  return json;
}
