/**
 * Loggers for tests: one that keeps quiet but for errors, and one whose
 * lines are kept as parsed objects for a test to read back.
 */
import { pino } from 'pino';
import type { LogLevel } from '../src/config.js';
import { createLogger, type Logger } from '../src/server/logger.js';

/** A parsed JSON log line. */
export type LogLine = Record<string, unknown> & { level: number; msg: string };

/** pino's numbers for its level names. */
export const LEVEL = pino.levels.values as Record<Exclude<LogLevel, 'silent'>, number>;

/** Errors only, on stderr: expected noise (sweeps, shutdown, domain events) is dropped. */
export function quietLogger(): Logger {
  return createLogger({ level: 'error', destination: pino.destination({ fd: 2, sync: true }) });
}

/** A logger whose lines land, parsed, in `lines` as they are written (synchronously). */
export function captureLogs(level: LogLevel = 'info'): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const destination = {
    write(chunk: string) {
      for (const line of chunk.split('\n')) if (line !== '') lines.push(JSON.parse(line));
    },
  };
  return { logger: createLogger({ level, destination }), lines };
}
