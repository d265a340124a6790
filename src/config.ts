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

const envSchema = z
  .object({
    PORT: integer(0, 65_535).default(4000),
    HOST: z.string().trim().min(1).default('127.0.0.1'),
    SEGMENT_DURATION: integer(1, 3_600).default(6),
    BATCH_SIZE: integer(1, 100_000).default(20),
    THRESHOLD: integer(0, 100_000).default(5),
    STORE: z.enum(['memory']).default('memory'),
    MAX_QUEUED_EVENTS: integer(1, 100_000).default(1_000),
  })
  .refine((env) => env.THRESHOLD <= env.BATCH_SIZE, {
    path: ['THRESHOLD'],
    message: 'must not exceed BATCH_SIZE',
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
  return {
    port: e.PORT,
    host: e.HOST,
    segmentDuration: e.SEGMENT_DURATION,
    batchSize: e.BATCH_SIZE,
    threshold: e.THRESHOLD,
    store: e.STORE,
    maxQueuedEvents: e.MAX_QUEUED_EVENTS,
  };
}

/** The defaults, as a base for tests and embedders. */
export const defaultConfig: Config = loadConfig({});
