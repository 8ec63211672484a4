/**
 * The Node.js major this server runs on. isolated-vm 7 ships binaries for Node 24's ABI and newer
 * only, and the sandbox's security rests on a V8 that still receives fixes (Node 20 is past its end
 * of life).
 */
export const REQUIRED_NODE_MAJOR = 24;

/**
 * Why `version` (a `process.versions.node` string) cannot run this server, or null when it can.
 * Entry points call it before importing anything native, so an old Node gets this sentence instead
 * of a crash inside a native module.
 */
export function unsupportedNodeReason(version: string): string | null {
  const major = Number.parseInt(version.split('.')[0] ?? '', 10);
  if (Number.isInteger(major) && major >= REQUIRED_NODE_MAJOR) return null;
  return (
    `ThemePress Addon Server needs Node.js ${REQUIRED_NODE_MAJOR} or newer; this is Node.js ${version}. ` +
    `Install Node.js ${REQUIRED_NODE_MAJOR} LTS (see README.md, Prerequisites).`
  );
}

/** Ends the process with {@link unsupportedNodeReason} when the running Node is too old. */
export function exitIfUnsupportedNode(): void {
  const reason = unsupportedNodeReason(process.versions.node);
  if (reason === null) return;
  console.error(reason);
  process.exit(1);
}
