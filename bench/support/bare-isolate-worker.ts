// The floor of the design, the sandbox side: a forked process that runs the echo addon in one
// isolated-vm isolate and answers each IPC message with the function's output as JSON text. Nothing
// else of the sandbox worker: no per-site context, no ctx, no limits but a time limit, no logs.
import ivm from 'isolated-vm';
import { ECHO_SOURCE } from './echo-addon.js';

const isolate = new ivm.Isolate({ memoryLimit: 64 });
const context = isolate.createContextSync();
context.evalSync(
  `const module = { exports: {} };
  ${ECHO_SOURCE}
  globalThis.call = (name, json) => JSON.stringify(module.exports.functions[name](JSON.parse(json)));`,
);
const call: ivm.Reference<(name: string, json: string) => string> = context.global.getSync('call', {
  reference: true,
});

process.on('message', (message: { id: number; name: string; inputJson: string }) => {
  try {
    // Strings cross into and out of the isolate as primitives: one copy each way.
    const outputJson = call.applySync(undefined, [message.name, message.inputJson], {
      timeout: 1000,
    }) as string;
    process.send?.({ id: message.id, outputJson });
  } catch (error) {
    process.send?.({ id: message.id, error: String(error) });
  }
});
process.on('disconnect', () => process.exit(0));
process.send?.('ready');
