// The reference point: Apollo Server 5 as its documentation starts it (startStandaloneServer,
// default plugins, one trivial schema), with none of this server's authentication, rate limiting,
// metrics or plugins. Run beside the real server so `{ __typename }` has a yardstick on this machine.
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';

const server = new ApolloServer({ typeDefs: 'type Query { ping: String }' });
const { url } = await startStandaloneServer(server, { listen: { port: 0, host: '127.0.0.1' } });
process.send?.({ url });
