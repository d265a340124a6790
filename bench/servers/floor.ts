/**
 * The floor: graphql-yoga with the one-field schema, its resolver returning a
 * constant, and the same yoga settings as ours (masked errors, no landing
 * page, batching limit, graphql-armor, CSRF prevention, the introspection
 * rule, graphql-jit for queries and mutations). What yoga itself costs per
 * request, with nothing of ours in it.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSchema, createYoga } from 'graphql-yoga';
import { defaultConfig } from '../../src/config.js';
import { maskError } from '../../src/server/errors.js';
import { jitPlugins } from '../../src/server/jit.js';
import { protectionPlugins } from '../../src/server/protection.js';
import { CONSTANT_POSITION, ONE_FIELD_SDL } from '../lib/operation.js';
import { serveParent } from '../lib/processes.js';

const yoga = createYoga({
  schema: createSchema({
    typeDefs: ONE_FIELD_SDL,
    resolvers: {
      Query: { ok: () => true },
      Mutation: { updateClientPosition: () => CONSTANT_POSITION },
    },
  }),
  graphqlEndpoint: '/graphql',
  maskedErrors: { maskError },
  landingPage: false,
  batching: { limit: defaultConfig.maxBatchOperations },
  plugins: [...protectionPlugins({ development: false }), ...jitPlugins()],
  logging: { debug: () => {}, info: () => {}, warn: console.warn, error: console.error },
});
const server = createServer(yoga);
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.send?.({ type: 'ready', url: `http://127.0.0.1:${port}/graphql` });
});
serveParent({}, () => new Promise<void>((resolve) => server.close(() => resolve())));
