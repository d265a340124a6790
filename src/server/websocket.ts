import type { Server } from 'node:http';
import type { ExecutionArgs } from 'graphql';
import { GraphQLError } from 'graphql';
import type { YogaServerInstance } from 'graphql-yoga';
import { LRUCache } from 'lru-cache';
import { WebSocketServer } from 'ws';
import { type Authenticator, type Principal, principalKey } from '../auth/principal.js';
import { operationOf } from './operation-of.js';
import { serveGraphQLWs } from './ws-transport.js';

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
  /** Where faults of the server itself are reported. */
  readonly onError: (message: string, error: unknown) => void;
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

/** A query, parsed and validated, or why it cannot run. */
type Prepared =
  | { readonly document: ExecutionArgs['document']; readonly errors?: undefined }
  | { readonly errors: readonly GraphQLError[] };

// On top of yoga's own parser and validation caches, whose hooks still run per
// operation (the validation cache's key joins every rule's name): through them,
// parse and validate took 11% of the server's busy CPU over WebSocket in the
// default configuration, against 1% for this lookup (bench/README.md, levers).
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
  const preparedQueries = new LRUCache<string, Prepared>({ max: PREPARED_CACHE_SIZE });

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
  const graphqlWs = serveGraphQLWs<ConnectionState>(
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
          });
          const context = (await enveloped.contextFactory()) as Record<PropertyKey, unknown>;
          return { enveloped, context };
        })();
        const { enveloped, context } = await ctx.extra.graphql;
        const { schema, execute, subscribe } = enveloped;
        const prepared = prepare(enveloped, payload.query, ctx.extra.principal);
        if (prepared.errors !== undefined) return [...prepared.errors];
        const document = prepared.document;
        const operation = operationOf(document, payload.operationName);
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
          // A child of the connection's context: per-operation caches (Pothos' auth scopes)
          // key on this object, and nothing is copied.
          contextValue: Object.assign(Object.create(context) as object, { params: payload }),
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
    { keepAlive: options.pingInterval, onError: options.onError },
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
