import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createYoga } from 'graphql-yoga';
import type { Config } from '../config.js';
import { schema } from '../resolvers/index.js';
import type { Context } from '../schema/builder.js';
import type { Clock } from '../state/clock.js';
import { BatchCoordinator } from '../state/coordinator.js';
import { LocalEventBus } from '../state/events.js';
import { MemoryStore } from '../state/memory-store.js';
import { isExpectedError, maskError } from './errors.js';
import { serveGraphQLOverWebSocket } from './websocket.js';

export const GRAPHQL_PATH = '/graphql';

export interface AppOptions {
  readonly config: Config;
  /** Where time comes from; the system clock unless a test sets one. */
  readonly clock?: Clock;
}

export interface App {
  readonly coordinator: BatchCoordinator;
  /** Listens on `port` (config.port by default; 0 picks a free one). */
  start(port?: number, host?: string): Promise<{ port: number; url: string }>;
  /** Closes every connection and subscription, then the server and the store. */
  stop(): Promise<void>;
}

/**
 * Builds the whole service: store, coordinator, GraphQL over HTTP, SSE and
 * WebSocket on one port, and the health endpoints. Nothing is shared between
 * two apps, so each test can run its own.
 */
export function buildApp({ config, clock }: AppOptions): App {
  const store = new MemoryStore();
  const events = new LocalEventBus((error) => console.error('event listener failed', error));
  const coordinator = new BatchCoordinator({
    store,
    events,
    clock,
    defaults: config,
    maxQueuedEvents: config.maxQueuedEvents,
  });
  const context: Context = { coordinator };

  const yoga = createYoga<object, Context>({
    schema,
    graphqlEndpoint: GRAPHQL_PATH,
    context: () => context,
    maskedErrors: { maskError },
    logging: {
      debug: () => {},
      info: (...args) => console.info(...args),
      warn: (...args) => console.warn(...args),
      // yoga logs every error it masks or maps; a NOT_FOUND is an answer, not a fault.
      error: (...args) => {
        if (!args.some(isExpectedError)) console.error(...args);
      },
    },
    landingPage: false,
  });

  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path === '/healthz') return sendJson(res, 200, { status: 'ok' });
    if (path === '/readyz') return void readiness(req, res);
    return yoga(req, res);
  });

  async function readiness(_req: IncomingMessage, res: ServerResponse) {
    const ready = await coordinator.isReady().catch(() => false);
    sendJson(res, ready ? 200 : 503, {
      status: ready ? 'ready' : 'unavailable',
      store: config.store,
    });
  }

  const closeWebSockets = serveGraphQLOverWebSocket(server, yoga, GRAPHQL_PATH);

  return {
    coordinator,
    start(port = config.port, host = config.host) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const address = server.address() as AddressInfo;
          const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
          resolve({
            port: address.port,
            url: `http://${shownHost}:${address.port}${GRAPHQL_PATH}`,
          });
        });
      });
    },
    async stop() {
      await closeWebSockets();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await events.close();
      await store.close();
    },
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
    'cache-control': 'no-store',
  });
  res.end(text);
}
