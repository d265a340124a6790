import type { Server } from 'node:http';
import type { ExecutionArgs, GraphQLError } from 'graphql';
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

export interface WebSocketOptions {
  /** Milliseconds between pings; a socket that has not answered the last one is dropped. */
  readonly pingInterval: number;
  /** Milliseconds to wait for connection_init before closing with 4408. */
  readonly connectionInitTimeout: number;
  /**
   * Bytes a socket may leave unsent. A reader that stops reading is closed
   * with 1008 past it, instead of growing the server's memory.
   */
  readonly maxBufferedBytes: number;
}

/** Close code and reason for a reader too slow for its subscriptions. */
export const SLOW_READER_CLOSE = { code: 1008, reason: 'Subscriber too slow' } as const;

/**
 * Serves the graphql-ws protocol on `path` of the HTTP server, through
 * yoga's own envelop: the same schema, context, plugins and error masking as
 * over HTTP.
 */
export function serveGraphQLOverWebSocket(
  server: Server,
  yoga: AnyYoga,
  path: string,
  options: WebSocketOptions,
): { close(): Promise<void> } {
  const wss = new WebSocketServer({ server, path });
  const graphqlWs = useServer(
    {
      connectionInitWaitTimeout: options.connectionInitTimeout,
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
          // A syntax error is the operation's error, not a reason to drop the
          // socket (the contract-codes plugin has given it its code).
          if ((error as Error | null)?.name === 'GraphQLError') return [error as GraphQLError];
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
      onNext: (ctx) => {
        const socket = ctx.extra.socket;
        if (socket.bufferedAmount > options.maxBufferedBytes) {
          socket.close(SLOW_READER_CLOSE.code, SLOW_READER_CLOSE.reason);
        }
      },
    },
    wss,
    options.pingInterval,
  );
  return {
    async close() {
      // Completed subscriptions have queued their `complete`; let it reach the wire first.
      await new Promise((resolve) => setImmediate(resolve));
      await graphqlWs.dispose();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}
