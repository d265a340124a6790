import type { Server } from 'node:http';
import { useGraphQlJit } from '@envelop/graphql-jit';
import type { ExecutionArgs } from 'graphql';
import { GraphQLError, getOperationAST } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { createGraphQLError, type Plugin, type YogaServerInstance } from 'graphql-yoga';
import { WebSocketServer } from 'ws';
import { type Authenticator, type Principal, principalKey } from '../auth/principal.js';

// biome-ignore lint/suspicious/noExplicitAny: any yoga instance, whatever its context.
type AnyYoga = YogaServerInstance<any, any>;
type Enveloped = ReturnType<AnyYoga['getEnveloped']>;

interface ExecutionRoot {
  execute: Enveloped['execute'];
  subscribe: Enveloped['subscribe'];
}

export interface WebSocketOptions {
  /** Checks connectionParams.authorization at connection_init; bad credentials close with 4403. */
  readonly authenticator: Authenticator;
  /** Connections one token may hold open at once; past it, a new one closes with 4429. */
  readonly maxConnectionsPerToken: number;
  /** Subscriptions one token may hold open at once; past it, a new one gets RATE_LIMITED. */
  readonly maxSubscriptionsPerToken: number;
  /** Largest message a client may send; past it, the socket closes with 1009. */
  readonly maxMessageBytes: number;
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

/** Close code and reason for a token over its connection cap. */
export const TOO_MANY_CONNECTIONS_CLOSE = {
  code: 4429,
  reason: 'Too many connections for this token',
} as const;

/** What a connection carries once its connection_init was accepted. */
type ConnectionState = {
  principal?: Principal;
  key?: string;
  /** Ids of its operations that count as subscriptions. */
  subscriptions?: Set<string>;
  /** yoga's envelop and context for this connection, made at its first operation. */
  graphql?: Promise<{ enveloped: Enveloped; context: Record<PropertyKey, unknown> }>;
};

/** Marks the context of an operation that came over WebSocket (see isWebSocketContext). */
const OVER_WEBSOCKET = Symbol('overWebSocket');

/** True for the context of an operation that came over WebSocket. */
function isWebSocketContext(context: unknown): boolean {
  return typeof context === 'object' && context !== null && OVER_WEBSOCKET in context;
}

/**
 * yoga plugins that run WebSocket queries and mutations compiled by
 * graphql-jit (each query compiled once, kept with its parsed document).
 * HTTP and every subscription keep graphql-js: graphql-jit 0.8 hands a
 * subscription's resolver the operation's variables instead of the field's
 * arguments. Variables that do not fit their types are BAD_USER_INPUT, as
 * graphql-js' executor makes them over HTTP (graphql-jit gives them no code).
 */
export function webSocketJitPlugins(): Plugin[] {
  const compiled = (args: ExecutionArgs) =>
    isWebSocketContext(args.contextValue) &&
    getOperationAST(args.document, args.operationName)?.operation !== 'subscription';
  return [
    useGraphQlJit({}, { enableIf: compiled }) as Plugin,
    {
      // After graphql-jit's own onExecute, and inside execution, so the errors get
      // their code before yoga masks errors it does not know (graphql-jit's come
      // from the other build of graphql-js, CommonJS).
      onExecute({ args, executeFn, setExecuteFn }) {
        if (!compiled(args)) return;
        setExecuteFn(async (executionArgs) => {
          const result = await executeFn(executionArgs);
          // Errors and no data: the request was refused before anything ran.
          if (Symbol.asyncIterator in result || 'data' in result || !result.errors) return result;
          return { ...result, errors: result.errors.map(asBadUserInput) };
        });
      },
    },
  ];
}

function asBadUserInput(error: GraphQLError): GraphQLError {
  if (error.extensions?.code !== undefined) return error;
  // yoga's own factory, so that yoga knows the error for one of its own.
  return createGraphQLError(error.message, {
    nodes: error.nodes,
    source: error.source,
    positions: error.positions,
    path: error.path,
    extensions: { ...error.extensions, code: 'BAD_USER_INPUT' },
  });
}

/** A query, parsed and validated, or why it cannot run. */
type Prepared =
  | { readonly document: ExecutionArgs['document']; readonly errors?: undefined }
  | { readonly errors: readonly GraphQLError[] };

/** Distinct queries kept parsed and validated, per server. */
const PREPARED_CACHE_SIZE = 1_000;
/** Longer queries are parsed and validated each time rather than kept. */
const PREPARED_MAX_QUERY_LENGTH = 16_384;

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
): {
  close(): Promise<void>;
  readonly connectionCount: number;
  readonly subscriptionCount: number;
} {
  // The same cap on one message as on one HTTP request body.
  const wss = new WebSocketServer({ server, path, maxPayload: options.maxMessageBytes });
  const preparedQueries = new LruCache<string, Prepared>(PREPARED_CACHE_SIZE);

  /**
   * Parses and validates through yoga's envelop (its plugins' limits
   * included), keeping the outcome per query. Validation depends on the
   * caller only through its role (introspection is for admins), so the role
   * is part of the key.
   */
  function prepare(enveloped: Enveloped, query: string, principal?: Principal): Prepared {
    const cacheable = query.length <= PREPARED_MAX_QUERY_LENGTH;
    const key = `${principal?.role}\n${query}`;
    const cached = cacheable ? preparedQueries.get(key) : undefined;
    if (cached !== undefined) return cached;
    let prepared: Prepared;
    try {
      const document = enveloped.parse(query);
      const errors = enveloped.validate(enveloped.schema, document);
      prepared = errors.length > 0 ? { errors } : { document };
    } catch (error) {
      // A syntax error is the operation's error, not a reason to drop the socket
      // (the contract-codes plugin has given it its code). Duck-typed: the
      // parser may be another copy of graphql-js (ESM or CJS).
      if ((error as Error | null)?.name !== 'GraphQLError') throw error;
      prepared = { errors: [error as GraphQLError] };
    }
    if (cacheable) preparedQueries.set(key, prepared);
    return prepared;
  }

  const connections = new Counter();
  const subscriptions = new Counter();
  const graphqlWs = useServer<Record<string, unknown> | undefined, ConnectionState>(
    {
      connectionInitWaitTimeout: options.connectionInitTimeout,
      // Returning false closes the socket with 4403 Forbidden.
      onConnect: async (ctx) => {
        const authorization = ctx.connectionParams?.authorization;
        const principal = await options.authenticator.authenticate(
          typeof authorization === 'string' ? authorization : null,
        );
        if (principal.role === 'anonymous' || principal.role === 'invalid') return false;
        const key = principalKey(
          principal,
          typeof authorization === 'string' ? authorization : null,
        );
        if (connections.get(key) >= options.maxConnectionsPerToken) {
          ctx.extra.socket.close(
            TOO_MANY_CONNECTIONS_CLOSE.code,
            TOO_MANY_CONNECTIONS_CLOSE.reason,
          );
          return false;
        }
        connections.add(key, 1);
        Object.assign(ctx.extra, { principal, key, subscriptions: new Set<string>() });
        return true;
      },
      onClose: (ctx) => {
        const { key, subscriptions: open } = ctx.extra;
        if (key === undefined) return;
        connections.add(key, -1);
        subscriptions.add(key, -(open?.size ?? 0));
        open?.clear();
      },
      onComplete: (ctx, id) => {
        const { key, subscriptions: open } = ctx.extra;
        if (key !== undefined && open?.delete(id)) subscriptions.add(key, -1);
      },
      execute: (args) => (args.rootValue as ExecutionRoot).execute(args),
      subscribe: (args) => (args.rootValue as ExecutionRoot).subscribe(args),
      onSubscribe: async (ctx, id, payload) => {
        // The principal and the socket are the connection's: yoga's envelop and
        // context are made once for it, and each operation gets a shallow copy
        // of that context, so what is cached per context (Pothos' auth scopes)
        // stays per operation.
        ctx.extra.graphql ??= (async () => {
          const enveloped = yoga.getEnveloped({
            ...ctx,
            req: ctx.extra.request,
            socket: ctx.extra.socket,
            params: payload,
            principal: ctx.extra.principal,
            [OVER_WEBSOCKET]: true,
          });
          const context = (await enveloped.contextFactory()) as Record<PropertyKey, unknown>;
          return { enveloped, context };
        })();
        const { enveloped, context } = await ctx.extra.graphql;
        const { schema, execute, subscribe } = enveloped;
        const prepared = prepare(enveloped, payload.query, ctx.extra.principal);
        if (prepared.errors !== undefined) return [...prepared.errors];
        const document = prepared.document;
        const operation = getOperationAST(document, payload.operationName);
        if (operation == null) {
          // Said here, with a code, rather than by graphql-ws without one.
          return [
            new GraphQLError(
              payload.operationName
                ? `No operation named '${payload.operationName}' in the document.`
                : 'The document holds several operations: name the one to run (operationName).',
              { extensions: { code: 'BAD_USER_INPUT' } },
            ),
          ];
        }
        const { key, subscriptions: open } = ctx.extra;
        if (key !== undefined && operation.operation === 'subscription') {
          if (subscriptions.get(key) >= options.maxSubscriptionsPerToken) {
            return [
              new GraphQLError(
                `This token already holds ${options.maxSubscriptionsPerToken} subscriptions; complete one first.`,
                { extensions: { code: 'RATE_LIMITED' } },
              ),
            ];
          }
          subscriptions.add(key, 1);
          open?.add(id);
        }
        const args: ExecutionArgs = {
          schema,
          operationName: payload.operationName,
          document,
          variableValues: payload.variables,
          contextValue: { ...context, params: payload },
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
    // For metrics: accepted connections and their subscriptions, over every token.
    get connectionCount() {
      return connections.total;
    },
    get subscriptionCount() {
      return subscriptions.total;
    },
    async close() {
      // Completed subscriptions have queued their `complete`; let it reach the wire first.
      await new Promise((resolve) => setImmediate(resolve));
      await graphqlWs.dispose();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

/** A Map that forgets its least recently used entry past `max` entries. */
class LruCache<K, V> {
  private readonly entries = new Map<K, V>();

  constructor(private readonly max: number) {}

  get(key: K): V | undefined {
    const value = this.entries.get(key);
    if (value !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, value);
    }
    return value;
  }

  set(key: K, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, value);
    if (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value as K);
  }
}

/** Counts per key, forgetting keys that drop to zero. */
class Counter {
  private readonly counts = new Map<string, number>();
  /** The sum over every key. */
  total = 0;

  get(key: string): number {
    return this.counts.get(key) ?? 0;
  }

  add(key: string, delta: number): void {
    this.total += delta;
    const next = this.get(key) + delta;
    if (next <= 0) this.counts.delete(key);
    else this.counts.set(key, next);
  }
}
