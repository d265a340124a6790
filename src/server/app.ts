import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createYoga } from 'graphql-yoga';
import getRawBody from 'raw-body';
import { Authenticator, type Principal } from '../auth/principal.js';
import { PositionRateLimiter } from '../auth/rate-limit.js';
import { resolveSecrets } from '../auth/secrets.js';
import type { Config } from '../config.js';
import { schema } from '../resolvers/index.js';
import type { Context } from '../schema/builder.js';
import type { Clock } from '../state/clock.js';
import { BatchCoordinator } from '../state/coordinator.js';
import { createStore } from '../state/create-store.js';
import type { StreamSessionStore } from '../state/store.js';
import { DASHBOARD_PATH, serveDashboard } from './dashboard.js';
import { contractCode, isExpectedError, maskError, useContractErrorCodes } from './errors.js';
import { jitPlugins } from './jit.js';
import { consoleLike, createLogger, type Logger, logActivity } from './logger.js';
import { METRICS_PATH, Metrics, serveMetrics } from './metrics.js';
import { useOperationMetrics } from './operations.js';
import { protectionPlugins } from './protection.js';
import { serveGraphQLOverWebSocket } from './websocket.js';

export const GRAPHQL_PATH = '/graphql';

export interface AppOptions {
  readonly config: Config;
  /** Where time comes from; the system clock unless a test sets one. */
  readonly clock?: Clock;
  /**
   * Where the app logs, as JSON lines; a logger at config.logLevel on stdout
   * unless given (tests pass a silent one, or one that writes to a stream).
   */
  readonly logger?: Logger;
}

export interface App {
  readonly coordinator: BatchCoordinator;
  readonly store: StreamSessionStore;
  readonly authenticator: Authenticator;
  /** What /metrics serves. */
  readonly metrics: Metrics;
  /** Tokens generated at start because none was configured, to show the operator once. */
  readonly generatedTokens: { readonly adminToken?: string; readonly encoderToken?: string };
  /**
   * Loads the snapshot (when SNAPSHOT_PATH is set), starts the sweeper and
   * listens on `port` (config.port by default; 0 picks a free one).
   * Rejects with SnapshotError when a snapshot exists but cannot be used.
   */
  start(port?: number, host?: string): Promise<{ port: number; url: string }>;
  /**
   * Shuts down gracefully: stops accepting, lets requests in flight finish,
   * completes every subscription (SSE streams end with `complete`, WebSocket
   * subscriptions get `complete` and the socket closes with 1001), saves the
   * snapshot, and resolves. Connections still open after the shutdown
   * timeout are cut. Calling it again returns the same promise.
   */
  stop(): Promise<void>;
}

/**
 * Builds the whole service: store, coordinator, GraphQL over HTTP, SSE and
 * WebSocket on one port, and the health endpoints. Nothing is shared between
 * two apps, so each test can run its own.
 */
export function buildApp({
  config,
  clock,
  logger = createLogger({ level: config.logLevel }),
}: AppOptions): App {
  const backend = createStore(config, {
    clock,
    sweepLease: Math.max(1_000, 5 * sweepInterval(config)),
    onEventError: (error) => logger.error({ err: error }, 'event delivery failed'),
  });
  const { store, events, persistence } = backend;
  // Gauges read these at each scrape, once everything below exists.
  const metrics = new Metrics({
    countStreamSessions: () => store.countStreamSessions(),
    countClients: () => store.countClients(),
    isReady: () => store.isReady(),
    subscriptions: () => coordinator.subscriptionCount,
    webSocketConnections: () => webSockets.connectionCount,
    webSocketSubscriptions: () => webSockets.subscriptionCount,
  });
  const coordinator = new BatchCoordinator({
    store,
    events,
    clock,
    defaults: config,
    maxQueuedEvents: config.maxQueuedEvents,
    // Each thing a sweep did has its own line (onActivity); this is the summary.
    onSweep: (report) => logger.debug(report, 'sweep'),
    onError: (error, during) => logger.error({ err: error }, `${during} failed`),
    onActivity: (activity) => {
      metrics.record(activity);
      logActivity(logger, activity);
    },
  });
  const secrets = resolveSecrets(config);
  const authenticator = new Authenticator(secrets.settings);
  const positionRateLimiter = new PositionRateLimiter(config.positionUpdatesPerSecond);
  const anonymous: Principal = { role: 'anonymous' };

  // Over WebSocket the caller's principal comes in yoga's server context; over
  // HTTP and SSE it is kept beside the request (a second server-context
  // argument would make yoga merge the two objects on every request).
  const principals = new WeakMap<IncomingMessage, Principal>();
  const principalOf = (context: { principal?: Principal; req?: IncomingMessage }) =>
    context.principal ?? (context.req && principals.get(context.req)) ?? anonymous;
  const yoga = createYoga<{ principal?: Principal; req?: IncomingMessage }, Context>({
    schema,
    graphqlEndpoint: GRAPHQL_PATH,
    context: (serverContext): Context => ({
      coordinator,
      authenticator,
      positionRateLimiter,
      principal: principalOf(serverContext),
    }),
    maskedErrors: { maskError },
    landingPage: false,
    batching: { limit: config.maxBatchOperations },
    plugins: [
      useContractErrorCodes(),
      ...protectionPlugins({ development: config.development, principalOf }),
      ...jitPlugins(),
      // Last, so that it sees the errors' codes as the other plugins left them.
      useOperationMetrics(metrics, logger),
    ],
    logging: {
      debug: () => {},
      info: (...args) => logger.info({ details: args }, 'graphql-yoga'),
      warn: (...args) => logger.warn({ details: args }, 'graphql-yoga'),
      // yoga logs every error it masks or maps; a NOT_FOUND is an answer, not a fault.
      error: (...args) => {
        if (args.some(isExpectedError)) return;
        const err = args.find((arg) => arg instanceof Error);
        logger.error({ err, code: contractCode(err) }, 'unexpected error');
      },
    },
  });

  let stopping = false;
  const dashboard = serveDashboard({ log: consoleLike(logger), cache: !config.development });
  const metricsEndpoint = serveMetrics(metrics, authenticator);
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path === '/healthz') return sendJson(res, 200, { status: 'ok' });
    if (path === '/readyz') return void readiness(res);
    if (path === METRICS_PATH) return void metricsEndpoint(req, res);
    if (path === DASHBOARD_PATH || path?.startsWith(`${DASHBOARD_PATH}/`)) {
      return void dashboard(req, res, path);
    }
    void serveGraphQL(req, res);
  });

  /** Authenticates, reads the body within its limit, and hands the request to yoga. */
  async function serveGraphQL(req: IncomingMessage & { body?: unknown }, res: ServerResponse) {
    const authenticated = authenticator.authenticate(req.headers.authorization);
    const principal = authenticated instanceof Promise ? await authenticated : authenticated;
    // With a Content-Length within the limit, Node's parser delivers exactly that
    // many bytes: yoga reads the body itself. Chunked bodies are counted here.
    const length = req.headers['content-length'];
    if (req.method === 'POST' && !(length !== undefined && Number(length) <= config.maxBodyBytes)) {
      try {
        req.body = await getRawBody(req, {
          limit: config.maxBodyBytes,
          length: req.headers['content-length'],
        });
      } catch (error) {
        const status = (error as { status?: number }).status ?? 400;
        const message =
          status === 413
            ? `The request body is larger than ${config.maxBodyBytes} bytes.`
            : 'The request body could not be read.';
        res.setHeader('connection', 'close');
        return sendJson(res, status, {
          errors: [{ message, extensions: { code: 'BAD_USER_INPUT' } }],
        });
      }
    }
    principals.set(req, principal);
    return yoga(req, res);
  }

  async function readiness(res: ServerResponse) {
    const ready = !stopping && (await coordinator.isReady().catch(() => false));
    sendJson(res, ready ? 200 : 503, {
      status: ready ? 'ready' : 'unavailable',
      store: config.store,
    });
  }

  const webSockets = serveGraphQLOverWebSocket(server, yoga, GRAPHQL_PATH, {
    authenticator,
    maxMessageBytes: config.maxBodyBytes,
    maxConnectionsPerToken: config.wsMaxConnectionsPerToken,
    maxSubscriptionsPerToken: config.wsMaxSubscriptionsPerToken,
    pingInterval: config.wsPingInterval,
    connectionInitTimeout: config.wsConnectionInitTimeout,
    maxBufferedBytes: config.wsMaxBufferedBytes,
    onError: (message, error) => logger.error({ err: error }, message),
  });

  let stopped: Promise<void> | null = null;

  async function shutdown() {
    stopping = true;
    // Stop accepting; the callback fires once every connection has ended.
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    // Changes in flight finish, then every subscription completes normally.
    await coordinator.close();
    await webSockets.close();
    const cut = setTimeout(() => server.closeAllConnections(), config.shutdownTimeout);
    // Keep-alive connections that went idle since are closed as they do.
    const idle = setInterval(() => server.closeIdleConnections(), 50);
    await closed;
    clearTimeout(cut);
    clearInterval(idle);
    const saved = await persistence.save();
    if (saved !== null) {
      logger.info(saved, `saved ${saved.streamSessions} stream sessions to ${saved.path}`);
    }
    await backend.close();
  }

  return {
    coordinator,
    store,
    authenticator,
    metrics,
    generatedTokens: secrets.generated,
    async start(port = config.port, host = config.host) {
      const restored = await persistence.restore();
      if (restored !== null) {
        logger.info(
          restored,
          `loaded ${restored.streamSessions} stream sessions from ${restored.path}`,
        );
      }
      // Not ready is not fatal: Redis keeps reconnecting and /readyz says 503 meanwhile.
      await backend.open();
      const address = await new Promise<AddressInfo>((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve(server.address() as AddressInfo);
        });
      });
      coordinator.startSweeper(sweepInterval(config));
      const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
      return { port: address.port, url: `http://${shownHost}:${address.port}${GRAPHQL_PATH}` };
    },
    stop() {
      stopped ??= shutdown();
      return stopped;
    },
  };
}

/** Often enough to act within a tenth of the shortest timeout, at most once a second. */
export function sweepInterval(config: Config): number {
  const shortest = Math.min(config.batchTimeout, config.clientTimeout, config.idleTimeout);
  return Math.min(1_000, Math.max(10, Math.floor(shortest / 10)));
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
