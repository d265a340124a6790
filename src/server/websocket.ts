import type { Server } from 'node:http';
import type { ExecutionArgs } from 'graphql';
import { GraphQLError } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import type { YogaServerInstance } from 'graphql-yoga';
import { WebSocketServer } from 'ws';

// biome-ignore lint/suspicious/noExplicitAny: any yoga instance, whatever its context.
type AnyYoga = YogaServerInstance<any, any>;
type Enveloped = ReturnType<AnyYoga['getEnveloped']>;

interface ExecutionRoot {
  execute: Enveloped['execute'];
  subscribe: Enveloped['subscribe'];
}

/**
 * Serves the graphql-ws protocol on `path` of the HTTP server, through
 * yoga's own envelop: the same schema, context, plugins and error masking as
 * over HTTP. Returns a function that closes every socket and the server.
 */
export function serveGraphQLOverWebSocket(
  server: Server,
  yoga: AnyYoga,
  path: string,
): () => Promise<void> {
  const wss = new WebSocketServer({ server, path });
  const graphqlWs = useServer(
    {
      execute: (args) => (args.rootValue as ExecutionRoot).execute(args),
      subscribe: (args) => (args.rootValue as ExecutionRoot).subscribe(args),
      onSubscribe: async (ctx, _id, payload) => {
        const { schema, execute, subscribe, contextFactory, parse, validate } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params: payload,
        });
        let document: ExecutionArgs['document'];
        try {
          document = parse(payload.query);
        } catch (error) {
          // A syntax error is the operation's error, not a reason to drop the socket.
          if (error instanceof GraphQLError) return [error];
          throw error;
        }
        const errors = validate(schema, document);
        if (errors.length > 0) return errors;
        const args: ExecutionArgs = {
          schema,
          operationName: payload.operationName,
          document,
          variableValues: payload.variables,
          contextValue: await contextFactory(),
          rootValue: { execute, subscribe } satisfies ExecutionRoot,
        };
        return args;
      },
    },
    wss,
  );
  return async () => {
    await graphqlWs.dispose();
    await new Promise<void>((resolve) => wss.close(() => resolve()));
  };
}
