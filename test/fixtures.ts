/**
 * Shared fixtures: a real server on an ephemeral port per test file, and
 * clients for each transport. Everything made here is disposed in `afterAll`
 * through `leftovers`, so a failing test leaves no socket open.
 */
import { randomUUID } from 'node:crypto';
import { createParser } from 'eventsource-parser';
import { type Client, createClient } from 'graphql-ws';
import { Redis } from 'ioredis';
import { expect } from 'vitest';
import WebSocket from 'ws';
import { CONFIG_VARIABLES, type Config, defaultConfig } from '../src/config.js';
import { type App, buildApp } from '../src/server/app.js';
import type { Logger } from '../src/server/logger.js';
import type { Clock } from '../src/state/clock.js';
import { MemoryStore } from '../src/state/memory-store.js';
import { quietLogger } from './log-capture.js';

export interface GraphQLResponse<T = Record<string, unknown>> {
  data?: T | null;
  errors?: Array<{ message: string; path?: unknown[]; extensions?: { code?: string } }>;
}

export interface TestServer {
  app: App;
  /** http://127.0.0.1:PORT */
  baseUrl: string;
  /** http://127.0.0.1:PORT/graphql */
  url: string;
  /** ws://127.0.0.1:PORT/graphql */
  wsUrl: string;
  /** POSTs one operation as JSON and returns the parsed body. */
  gql<T = Record<string, any>>(
    query: string,
    variables?: Record<string, unknown>,
    headers?: Record<string, string>,
  ): Promise<GraphQLResponse<T>>;
  /** A graphql-ws client, disposed with the server. */
  wsClient(options?: { lazy?: boolean }): Client;
  stop(): Promise<void>;
}

/**
 * Starts the real service on 127.0.0.1 and a free port (or the one given, to
 * restart on it), logging errors only unless given a logger.
 */
export async function startTestServer(
  overrides: Partial<Config> = {},
  clock?: Clock,
  port = 0,
  logger: Logger = quietLogger(),
): Promise<TestServer> {
  // Tests of the contract run as admin with no rate limit; auth tests turn both on.
  const config: Config = {
    ...defaultConfig,
    ...storeUnderTest(),
    authEnabled: false,
    positionUpdatesPerSecond: 0,
    wsMaxConnectionsPerToken: 10_000,
    wsMaxSubscriptionsPerToken: 10_000,
    ...overrides,
  };
  const app = buildApp({ config, clock, logger });
  const address = await app.start(port, '127.0.0.1');
  const baseUrl = `http://127.0.0.1:${address.port}`;
  const url = `${baseUrl}/graphql`;
  const wsUrl = `ws://127.0.0.1:${address.port}/graphql`;
  const clients: Client[] = [];
  return {
    app,
    baseUrl,
    url,
    wsUrl,
    async gql(query, variables, headers) {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json', ...headers },
        body: JSON.stringify({ query, variables }),
      });
      return (await response.json()) as GraphQLResponse<any>;
    },
    wsClient(options = {}) {
      const client = createClient({
        url: wsUrl,
        webSocketImpl: WebSocket,
        lazy: options.lazy ?? true,
        retryAttempts: 0,
      });
      clients.push(client);
      return client;
    },
    async stop() {
      await Promise.all(clients.map((c) => c.dispose()));
      await app.stop();
      if (config.store === 'redis') await deleteKeys(config.redisUrl, config.redisKeyPrefix);
    },
  };
}

/**
 * The store the suite runs against: memory, or Redis with TEST_STORE=redis
 * (`npm test` runs the integration suite once per store). Each server gets
 * a key prefix of its own, deleted when it stops.
 */
export function storeUnderTest(): Partial<Config> {
  if (process.env.TEST_STORE !== 'redis') return { store: 'memory' };
  return {
    store: 'redis',
    redisUrl: testRedisUrl(),
    redisKeyPrefix: `hbc-test:${randomUUID()}:`,
  };
}

/**
 * The Redis the Redis tests use: REDIS_URL, which the redis project's global
 * setup points at a server of its own when none answers there.
 */
export function testRedisUrl(): string {
  return process.env.REDIS_URL ?? defaultConfig.redisUrl;
}

/**
 * The environment for a service started as a process: the caller's, without
 * any of the service's own settings (so a developer's exported STORE or PORT
 * cannot leak in), plus `env`.
 */
export function serviceEnv(env: Record<string, string> = {}): NodeJS.ProcessEnv {
  const base: NodeJS.ProcessEnv = { ...process.env };
  for (const name of CONFIG_VARIABLES) delete base[name];
  return { ...base, ...env };
}

/** Deletes every key under a prefix. */
export async function deleteKeys(url: string, prefix: string): Promise<void> {
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
      if (keys.length > 0) await redis.del(...keys);
      cursor = next;
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
}

/** Runs one query or mutation over a graphql-ws client and returns its single result. */
export function wsRequest<T = Record<string, any>>(
  client: Client,
  query: string,
  variables?: Record<string, unknown>,
): Promise<GraphQLResponse<T>> {
  return new Promise((resolve, reject) => {
    let result: GraphQLResponse<T> | undefined;
    client.subscribe<T>(
      { query, variables },
      {
        next: (value) => {
          result = value as GraphQLResponse<T>;
        },
        error: (error) =>
          Array.isArray(error)
            ? resolve({ errors: error as GraphQLResponse['errors'] })
            : reject(error),
        complete: () =>
          result ? resolve(result) : reject(new Error('completed without a result')),
      },
    );
  });
}

/** Mutations over HTTP, each one expected to succeed. */
export function sessionDriver(
  server: () => TestServer,
  { videoSourcePath = (_id: string): string => '/videos/film.mp4' } = {},
) {
  async function run(query: string, variables: Record<string, unknown>) {
    const response = await server().gql(query, variables);
    expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
    return response.data as Record<string, any>;
  }
  return {
    create: (id: string, input: Record<string, unknown> = {}) =>
      run(Q.create, { input: { id, videoSourcePath: videoSourcePath(id), ...input } }),
    move: (id: string, sessionId: string, segmentNumber: number, quality = 'Q720P') =>
      run(Q.update, { input: { streamSessionId: id, sessionId, segmentNumber, quality } }),
    remove: (id: string, sessionId: string) => run(Q.remove, { streamSessionId: id, sessionId }),
    claim: (id: string, batchNumber: number, startSegment: number, endSegment: number) =>
      run(Q.claim, {
        input: {
          streamSessionId: id,
          batchNumber,
          startSegment,
          endSegment,
          videoSourcePath: videoSourcePath(id),
          videoStartOffset: startSegment * 6,
        },
      }),
    complete: (id: string, batchNumber: number) =>
      run(Q.complete, { streamSessionId: id, batchNumber }),
    end: (id: string) => run(Q.end, { id }),
  };
}

/** A batchNeeded event as the integration tests select it. */
export interface Need {
  streamSession: { id: string; furthestSegment: number | null };
  reason: 'FIRST_BATCH' | 'APPROACHING_END' | 'SEEK_AHEAD' | 'STALLED';
  batchNumber: number;
  startSegment: number;
  endSegment: number;
  videoSourcePath: string;
  videoStartOffset: number;
  furthestSegment: number | null;
  qualities: string[];
}

/** A subscription's events, collected as they come, with a way to wait for the n-th. */
export interface Collected<T> {
  readonly events: T[];
  /** Resolves once at least `count` events arrived (rejects after `timeoutMs`). */
  waitFor(count: number, timeoutMs?: number): Promise<T[]>;
  stop(): void;
}

function collector<T>(): Collected<T> & { push(event: T): void; fail(error: unknown): void } {
  const events: T[] = [];
  const waiters: Array<{ count: number; resolve: (e: T[]) => void; reject: (e: unknown) => void }> =
    [];
  let failure: unknown;
  const api = {
    events,
    stop: () => {},
    push(event: T) {
      events.push(event);
      for (const w of [...waiters]) {
        if (events.length >= w.count) {
          waiters.splice(waiters.indexOf(w), 1);
          w.resolve(events);
        }
      }
    },
    fail(error: unknown) {
      failure = error;
      for (const w of waiters.splice(0)) w.reject(error);
    },
    waitFor(count: number, timeoutMs = 5_000) {
      if (events.length >= count) return Promise.resolve(events);
      if (failure !== undefined) return Promise.reject(failure);
      return new Promise<T[]>((resolve, reject) => {
        const waiter = { count, resolve, reject };
        waiters.push(waiter);
        setTimeout(() => {
          const i = waiters.indexOf(waiter);
          if (i >= 0) {
            waiters.splice(i, 1);
            reject(new Error(`timed out with ${events.length} of ${count} events`));
          }
        }, timeoutMs).unref();
      });
    },
  };
  return api;
}

/** Subscribes over graphql-ws and collects each `next` payload. */
export function wsSubscribe<T = GraphQLResponse>(
  client: Client,
  query: string,
  variables?: Record<string, unknown>,
): Collected<T> {
  const c = collector<T>();
  c.stop = client.subscribe(
    { query, variables },
    { next: (value) => c.push(value as T), error: (e) => c.fail(e), complete: () => {} },
  );
  return c;
}

/** Subscribes over Server-Sent Events (yoga's default) and collects each `next` payload. */
export function sseSubscribe<T = GraphQLResponse>(
  url: string,
  query: string,
  variables?: Record<string, unknown>,
  headers: Record<string, string> = {},
): Collected<T> & { ready: Promise<void> } {
  const c = collector<T>();
  const abort = new AbortController();
  c.stop = () => abort.abort();
  const ready = (async () => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream', ...headers },
      body: JSON.stringify({ query, variables }),
      signal: abort.signal,
    });
    if (!response.ok || !response.body) throw new Error(`SSE answered ${response.status}`);
    const parser = createParser({
      onEvent: (event) => {
        if (event.event === 'next') c.push(JSON.parse(event.data) as T);
      },
    });
    const decoder = new TextDecoder();
    (async () => {
      try {
        for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
          parser.feed(decoder.decode(chunk, { stream: true }));
        }
      } catch (error) {
        if (!abort.signal.aborted) c.fail(error);
      }
    })();
  })();
  ready.catch((error) => c.fail(error));
  return Object.assign(c, { ready });
}

/** A promise with its resolve and reject in hand. */
export function createDeferred<T = void>() {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Runs `assertion` until it passes, that is returns without throwing and
 * returns something other than `false`; resolves with what it returned.
 * Retries every few milliseconds; after `timeout` ms, rejects with the last
 * failure. Tests wait with it for the condition they assert, never for a time.
 */
export async function eventually<T>(
  assertion: () => T | Promise<T>,
  { timeout = 5_000 }: { timeout?: number } = {},
): Promise<Exclude<T, false>> {
  const deadline = Date.now() + timeout;
  for (;;) {
    let failure: unknown;
    try {
      const result = await assertion();
      if (result !== false) return result as Exclude<T, false>;
      failure = new Error(`condition not met within ${timeout} ms`);
    } catch (error) {
      failure = error;
    }
    if (Date.now() >= deadline) throw failure;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * A fixed pause, never a way to wait for something to happen (that is
 * `eventually`). Only to show that something does *not* happen where nothing
 * observable marks the moment it would have, to pace a load as its clients
 * would, or as a deadline; each caller says which.
 */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export const Q = {
  create: `mutation Create($input: CreateStreamSessionInput!) {
    createStreamSession(input: $input) {
      id videoSourcePath segmentDuration batchSize threshold startSegment
      currentBatch { batchNumber } furthestSegment slowestSegment shouldGenerateNextBatch
      clientPositions { sessionId } createdAt updatedAt
    }
  }`,
  update: `mutation Update($input: UpdateClientPositionInput!) {
    updateClientPosition(input: $input) { sessionId segmentNumber quality lastUpdated }
  }`,
  claim: `mutation Claim($input: SetCurrentBatchInput!) {
    setCurrentBatch(input: $input) {
      batchNumber startSegment endSegment videoSourcePath videoStartOffset
      generationStarted generationEnded isComplete
    }
  }`,
  complete: `mutation Complete($streamSessionId: ID!, $batchNumber: Int!) {
    completeBatch(streamSessionId: $streamSessionId, batchNumber: $batchNumber) {
      batchNumber isComplete generationStarted generationEnded
    }
  }`,
  remove: `mutation Remove($streamSessionId: ID!, $sessionId: ID!) {
    removeClient(streamSessionId: $streamSessionId, sessionId: $sessionId)
  }`,
  end: `mutation End($id: ID!) { endStreamSession(id: $id) }`,
  session: `query Session($id: ID!) {
    streamSession(id: $id) {
      id videoSourcePath segmentDuration batchSize threshold startSegment
      currentBatch { batchNumber startSegment endSegment videoSourcePath videoStartOffset generationStarted generationEnded isComplete }
      clientPositions { sessionId segmentNumber quality lastUpdated }
      furthestSegment slowestSegment shouldGenerateNextBatch createdAt updatedAt
    }
  }`,
  sessions: `query Sessions($limit: Int, $offset: Int) { streamSessions(limit: $limit, offset: $offset) { id } }`,
  batchNeeded: `subscription Needed($streamSessionId: ID) {
    batchNeeded(streamSessionId: $streamSessionId) {
      streamSession { id furthestSegment }
      reason batchNumber startSegment endSegment videoSourcePath videoStartOffset furthestSegment qualities
    }
  }`,
} as const;

/** Fixed secrets for the tests of access control. */
export const ADMIN_TOKEN = 'a'.repeat(24);
export const ENCODER_TOKEN = 'e'.repeat(24);
export const CLIENT_TOKEN_SECRET = 's'.repeat(40);

const DAY = 86_400_000;

/**
 * Overrides that turn access control on with the secrets above; nothing
 * expires behind a test's back, however long the file takes.
 */
export const authOverrides = {
  authEnabled: true,
  adminToken: ADMIN_TOKEN,
  encoderToken: ENCODER_TOKEN,
  clientTokenSecret: CLIENT_TOKEN_SECRET,
  clientTimeout: DAY,
  batchTimeout: DAY,
  idleTimeout: DAY,
} as const;

/**
 * Everything the embedded store of `app` holds, as plain data: every stream
 * session with its settings, batch, clients and need bookkeeping (more than
 * the API shows), to prove that a refused request changed nothing.
 */
export function memoryStoreState(app: App) {
  if (!(app.store instanceof MemoryStore)) throw new Error('This check needs STORE=memory.');
  return app.store.snapshot(0).sessions;
}
