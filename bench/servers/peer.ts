/**
 * The peer: fastify + mercurius with graphql-jit (`jit: 1`: compiled from the
 * first request on) and the floor's one-field schema, over HTTP.
 */
import Fastify from 'fastify';
import mercurius from 'mercurius';
import { CONSTANT_POSITION, ONE_FIELD_SDL } from '../lib/operation.js';
import { serveParent } from '../lib/processes.js';

const app = Fastify({ logger: false });
await app.register(mercurius, {
  schema: ONE_FIELD_SDL,
  resolvers: {
    Query: { ok: () => true },
    Mutation: { updateClientPosition: () => CONSTANT_POSITION },
  },
  jit: 1,
  graphiql: false,
  path: '/graphql',
});
const address = await app.listen({ port: 0, host: '127.0.0.1' });
process.send?.({ type: 'ready', url: `${address}/graphql` });
serveParent({}, () => app.close());
