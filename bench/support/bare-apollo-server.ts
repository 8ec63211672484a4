// The reference point: Apollo Server 5 as its documentation starts it (startStandaloneServer,
// default plugins, one trivial schema), with none of this server's authentication, rate limiting,
// metrics or plugins. Run beside the real server so `{ __typename }` has a yardstick on this machine.
//
// Its `executeAddonFunction` is the floor of the design: the same echo function in an
// isolated-vm isolate in another process, one IPC round trip per call, and nothing else (no
// installation or permission lookups, per-site context, limits, execution records or metrics).
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { GraphQLJSON } from 'graphql-scalars';

const script = path.join(path.dirname(fileURLToPath(import.meta.url)), 'bare-isolate-worker.js');
const worker = fork(script, [], {
  serialization: 'json',
  execArgv: ['--no-node-snapshot'],
  stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
});
await new Promise((resolve) => worker.once('message', resolve));
const answers = new Map<number, { resolve: (output: unknown) => void; reject: (error: Error) => void }>();
let nextId = 0;
worker.on('message', (message: { id: number; outputJson?: string; error?: string }) => {
  const answer = answers.get(message.id);
  answers.delete(message.id);
  if (message.outputJson !== undefined) answer?.resolve(JSON.parse(message.outputJson));
  else answer?.reject(new Error(message.error));
});
// The benchmark stops this process with a signal; its worker goes with it.
process.on('SIGTERM', () => {
  worker.kill();
  process.exit(0);
});

const server = new ApolloServer({
  typeDefs: `scalar JSON
    type Query { ping: String }
    type Mutation { executeAddonFunction(addonId: ID!, function: String!, data: JSON!): JSON }`,
  resolvers: {
    JSON: GraphQLJSON,
    Mutation: {
      executeAddonFunction: (_: unknown, args: { function: string; data: unknown }) =>
        new Promise((resolve, reject) => {
          const id = nextId++;
          answers.set(id, { resolve, reject });
          worker.send({ id, name: args.function, inputJson: JSON.stringify(args.data) });
        }),
    },
  },
});
const { url } = await startStandaloneServer(server, { listen: { port: 0, host: '127.0.0.1' } });
process.send?.({ url });
