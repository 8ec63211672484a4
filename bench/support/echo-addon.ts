// The echo addon's source, in a module of its own so that the bare reference processes can use it
// without loading the benchmark helpers (and through them the server's code).

/** An addon with one function returning its input: the warm execution of the issue-3 benchmark. */
export const ECHO_SOURCE = `module.exports = { functions: { echo: (data) => ({ ok: true, echo: data }) } };`;
