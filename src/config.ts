import { z } from 'zod';

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
  readonly store: 'memory';
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
}

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

const envSchema = z.object({
  PORT: integer(0, 65_535).default(4000),
  HOST: z.string().trim().min(1).default('127.0.0.1'),
  SEGMENT_DURATION: integer(1, 3_600).default(6),
  BATCH_SIZE: integer(1, 100_000).default(20),
  THRESHOLD: integer(0, 100_000).default(5),
  STORE: z.enum(['memory']).default('memory'),
  MAX_QUEUED_EVENTS: integer(1, 100_000).default(1_000),
  BATCH_TIMEOUT: seconds(0.01, DAY).default(120_000),
  CLIENT_TIMEOUT: seconds(0.01, DAY).default(30_000),
  SESSION_IDLE_TIMEOUT: seconds(0.01, 30 * DAY).default(300_000),
  SNAPSHOT_PATH: z.string().trim().min(1).optional(),
  WS_PING_INTERVAL: seconds(0.01, 3_600).default(12_000),
  WS_CONNECTION_INIT_TIMEOUT: seconds(0.01, 600).default(3_000),
  WS_MAX_BUFFERED_BYTES: integer(1_024, 1_073_741_824).default(4_194_304),
  SHUTDOWN_TIMEOUT: seconds(0.01, 60).default(8_000),
});

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
        return `${name}${value === undefined ? '' : `='${value}'`}: ${issue.message}`;
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
    store: e.STORE,
    maxQueuedEvents: e.MAX_QUEUED_EVENTS,
    batchTimeout: e.BATCH_TIMEOUT,
    clientTimeout: e.CLIENT_TIMEOUT,
    idleTimeout: e.SESSION_IDLE_TIMEOUT,
    snapshotPath: e.SNAPSHOT_PATH ?? null,
    wsPingInterval: e.WS_PING_INTERVAL,
    wsConnectionInitTimeout: e.WS_CONNECTION_INIT_TIMEOUT,
    wsMaxBufferedBytes: e.WS_MAX_BUFFERED_BYTES,
    shutdownTimeout: e.SHUTDOWN_TIMEOUT,
  };
}

/** The defaults, as a base for tests and embedders. */
export const defaultConfig: Config = loadConfig({});
