import { z } from 'zod';
import { QUALITIES, type Quality } from './state/model.js';

/**
 * The server's settings, read from the environment and checked at start.
 * A bad value throws ConfigError naming the variable, and the process stops.
 */
export interface Config {
  /** TCP port for HTTP, SSE and WebSocket; 0 picks a free one. */
  readonly port: number;
  /** Interface to listen on. */
  readonly host: string;
  /** Defaults for what createStreamSession leaves out. */
  readonly segmentDuration: number;
  readonly batchSize: number;
  readonly threshold: number;
  /** The renditions FIRST_BATCH makes when createStreamSession names none: best first, each once. */
  readonly qualities: readonly Quality[];
  /** Where state lives: this process's memory, or Redis shared by several instances. */
  readonly store: 'memory' | 'redis';
  /** The Redis server, with STORE=redis. */
  readonly redisUrl: string;
  /** Every Redis key starts with it, so deployments (and test runs) can share one Redis. */
  readonly redisKeyPrefix: string;
  /** Events one subscriber may leave unread before it is closed. */
  readonly maxQueuedEvents: number;
  /** Milliseconds a claimed batch may take before it is STALLED. */
  readonly batchTimeout: number;
  /** Milliseconds a client may stay silent before it leaves its session. */
  readonly clientTimeout: number;
  /** Milliseconds a session may stay without clients before it ends. */
  readonly idleTimeout: number;
  /** Where the memory store is saved on shutdown and loaded on start; null: nowhere. */
  readonly snapshotPath: string | null;
  /** Milliseconds between WebSocket pings; a socket that misses a pong is dropped. */
  readonly wsPingInterval: number;
  /** Milliseconds a WebSocket may take to send connection_init. */
  readonly wsConnectionInitTimeout: number;
  /** Bytes a WebSocket may leave unsent before a slow reader is disconnected. */
  readonly wsMaxBufferedBytes: number;
  /** Milliseconds a graceful shutdown may take before connections are cut. */
  readonly shutdownTimeout: number;
  /** False with AUTH=off: every caller is admin (local development only). */
  readonly authEnabled: boolean;
  /** Bearer tokens of the admin and encoder roles; generated at start when null. */
  readonly adminToken: string | null;
  readonly encoderToken: string | null;
  /** Key that signs player tokens; generated at start when null. */
  readonly clientTokenSecret: string | null;
  /** NODE_ENV=development: introspection for every caller, field suggestions on. */
  readonly development: boolean;
  /** Position updates one player may send per second; 0: no limit. */
  readonly positionUpdatesPerSecond: number;
  /** Largest request body, in bytes. */
  readonly maxBodyBytes: number;
  /** Most operations in one batched HTTP request. */
  readonly maxBatchOperations: number;
  /** Most WebSocket connections open at once with one token. */
  readonly wsMaxConnectionsPerToken: number;
  /** Most subscriptions open at once with one token, over all its connections. */
  readonly wsMaxSubscriptionsPerToken: number;
  /** The least level logged (pino's levels; `silent` logs nothing). */
  readonly logLevel: LogLevel;
  /** A bearer token that may read /metrics (besides the admin token); null: none. */
  readonly metricsToken: string | null;
}

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`Invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

const integer = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+$/, 'must be a whole number')
    .transform(Number)
    .pipe(z.number().int().min(min).max(max));

// Durations are given in seconds, decimals allowed (BATCH_TIMEOUT=0.5), kept in milliseconds.
const seconds = (min: number, max: number) =>
  z
    .string()
    .trim()
    .regex(/^\d+(\.\d+)?$/, 'must be a number of seconds, like 30 or 0.5')
    .transform(Number)
    .pipe(
      z
        .number()
        .min(min, `must be at least ${min} seconds`)
        .max(max, `must be at most ${max} seconds`),
    )
    .transform((s) => Math.round(s * 1000));

const DAY = 86_400;

// A comma-separated list of renditions (DEFAULT_QUALITIES=1080p,480p), kept
// best first and each once, as the state layer keeps them. Blank items (a
// trailing comma) are ignored; a list that names none is refused.
const qualityList = z.string().transform((list, context) => {
  const named = list
    .split(',')
    .map((item) => item.trim())
    .filter((item) => item !== '');
  const unknown = named.filter((item) => !(QUALITIES as readonly string[]).includes(item));
  if (unknown.length > 0) {
    context.addIssue({
      code: 'custom',
      message: `${unknown.map((item) => `'${item}'`).join(', ')} ${unknown.length === 1 ? 'is not a quality' : 'are not qualities'}: name one or more of ${QUALITIES.join(', ')}, separated by commas`,
    });
    return z.NEVER;
  }
  if (named.length === 0) {
    context.addIssue({
      code: 'custom',
      message: `must name one or more of ${QUALITIES.join(', ')}, separated by commas`,
    });
    return z.NEVER;
  }
  return QUALITIES.filter((quality) => named.includes(quality));
});

/** Every variable the service reads: its check, and its default when it has one. */
export const envSchema = z.object({
  PORT: integer(0, 65_535).default(4000),
  HOST: z.string().trim().min(1).default('127.0.0.1'),
  SEGMENT_DURATION: integer(1, 3_600).default(6),
  BATCH_SIZE: integer(1, 100_000).default(20),
  THRESHOLD: integer(0, 100_000).default(5),
  DEFAULT_QUALITIES: qualityList.default([...QUALITIES]),
  STORE: z.enum(['memory', 'redis']).default('memory'),
  REDIS_URL: z
    .string()
    .trim()
    .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
    .default('redis://127.0.0.1:6379'),
  REDIS_KEY_PREFIX: z.string().trim().min(1).max(64).default('hbc:'),
  MAX_QUEUED_EVENTS: integer(1, 100_000).default(1_000),
  BATCH_TIMEOUT: seconds(0.01, DAY).default(120_000),
  CLIENT_TIMEOUT: seconds(0.01, DAY).default(30_000),
  SESSION_IDLE_TIMEOUT: seconds(0.01, 30 * DAY).default(300_000),
  SNAPSHOT_PATH: z.string().trim().min(1).optional(),
  WS_PING_INTERVAL: seconds(0.01, 3_600).default(12_000),
  WS_CONNECTION_INIT_TIMEOUT: seconds(0.01, 600).default(3_000),
  WS_MAX_BUFFERED_BYTES: integer(1_024, 1_073_741_824).default(4_194_304),
  SHUTDOWN_TIMEOUT: seconds(0.01, 60).default(8_000),
  AUTH: z.enum(['on', 'off']).default('on'),
  ADMIN_TOKEN: z.string().trim().min(16, 'must be at least 16 characters').optional(),
  ENCODER_TOKEN: z.string().trim().min(16, 'must be at least 16 characters').optional(),
  CLIENT_TOKEN_SECRET: z.string().trim().min(32, 'must be at least 32 characters').optional(),
  NODE_ENV: z.string().optional(),
  RATE_LIMIT_POSITION_UPDATES: integer(0, 100_000).default(10),
  MAX_BODY_BYTES: integer(1_024, 16_777_216).default(65_536),
  MAX_BATCH_OPERATIONS: integer(1, 1_000).default(10),
  WS_MAX_CONNECTIONS_PER_TOKEN: integer(1, 1_000_000).default(50),
  WS_MAX_SUBSCRIPTIONS_PER_TOKEN: integer(1, 1_000_000).default(100),
  LOG_LEVEL: z.enum(LOG_LEVELS).default('info'),
  METRICS_TOKEN: z.string().trim().min(16, 'must be at least 16 characters').optional(),
});

const SECRETS = new Set(['ADMIN_TOKEN', 'ENCODER_TOKEN', 'CLIENT_TOKEN_SECRET', 'METRICS_TOKEN']);

/** Reads the settings from `env` (process.env by default); ConfigError when one is bad. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // An empty variable means "unset", as in most shells' `VAR= cmd`.
  const present = Object.fromEntries(
    Object.entries(env).filter(([, value]) => value !== undefined && value !== ''),
  );
  const parsed = envSchema.safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => {
        const name = String(issue.path[0] ?? 'environment');
        const value = env[name];
        // Secrets are never echoed, not even when they are wrong.
        const shown = value === undefined || SECRETS.has(name) ? '' : `='${value}'`;
        return `${name}${shown}: ${issue.message}`;
      }),
    );
  }
  const e = parsed.data;
  // Checked once both are valid numbers, so a bad BATCH_SIZE is reported alone.
  if (e.THRESHOLD > e.BATCH_SIZE) {
    throw new ConfigError([
      `THRESHOLD='${e.THRESHOLD}': must not exceed BATCH_SIZE (${e.BATCH_SIZE})`,
    ]);
  }
  return {
    port: e.PORT,
    host: e.HOST,
    segmentDuration: e.SEGMENT_DURATION,
    batchSize: e.BATCH_SIZE,
    threshold: e.THRESHOLD,
    qualities: e.DEFAULT_QUALITIES,
    store: e.STORE,
    redisUrl: e.REDIS_URL,
    redisKeyPrefix: e.REDIS_KEY_PREFIX,
    maxQueuedEvents: e.MAX_QUEUED_EVENTS,
    batchTimeout: e.BATCH_TIMEOUT,
    clientTimeout: e.CLIENT_TIMEOUT,
    idleTimeout: e.SESSION_IDLE_TIMEOUT,
    snapshotPath: e.SNAPSHOT_PATH ?? null,
    wsPingInterval: e.WS_PING_INTERVAL,
    wsConnectionInitTimeout: e.WS_CONNECTION_INIT_TIMEOUT,
    wsMaxBufferedBytes: e.WS_MAX_BUFFERED_BYTES,
    shutdownTimeout: e.SHUTDOWN_TIMEOUT,
    authEnabled: e.AUTH === 'on',
    adminToken: e.ADMIN_TOKEN ?? null,
    encoderToken: e.ENCODER_TOKEN ?? null,
    clientTokenSecret: e.CLIENT_TOKEN_SECRET ?? null,
    development: e.NODE_ENV === 'development',
    positionUpdatesPerSecond: e.RATE_LIMIT_POSITION_UPDATES,
    maxBodyBytes: e.MAX_BODY_BYTES,
    maxBatchOperations: e.MAX_BATCH_OPERATIONS,
    wsMaxConnectionsPerToken: e.WS_MAX_CONNECTIONS_PER_TOKEN,
    wsMaxSubscriptionsPerToken: e.WS_MAX_SUBSCRIPTIONS_PER_TOKEN,
    logLevel: e.LOG_LEVEL,
    metricsToken: e.METRICS_TOKEN ?? null,
  };
}

/** Every environment variable the service reads. */
export const CONFIG_VARIABLES: readonly string[] = Object.keys(envSchema.shape);

/** The defaults, as a base for tests and embedders. */
export const defaultConfig: Config = loadConfig({});
