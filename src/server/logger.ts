import { type DestinationStream, type Logger, pino } from 'pino';
import type { LogLevel } from '../config.js';
import type { Activity } from '../state/activity.js';

export type { Logger };

export interface LoggerOptions {
  /** The least level written; `info` unless set (LOG_LEVEL). */
  readonly level?: LogLevel;
  /** 1 (stdout, the default) or 2 (stderr). */
  readonly fd?: 1 | 2;
  /**
   * Human-readable lines (pino-pretty, in a worker thread) instead of JSON.
   * By default only when that fd is a terminal, so that a log collector
   * always gets one JSON object per line.
   */
  readonly pretty?: boolean;
  /** Where the lines go instead of the fd; tests pass a stream to read them back. */
  readonly destination?: DestinationStream;
}

/** The service's logger: structured JSON lines, one per event, with pino. */
export function createLogger({
  level = 'info',
  fd = 1,
  pretty = (fd === 1 ? process.stdout : process.stderr).isTTY === true,
  destination,
}: LoggerOptions = {}): Logger {
  const options = { level, name: 'hls-batch-coordinator' };
  if (destination !== undefined) return pino(options, destination);
  // Synchronous: a line logged just before process.exit() is not lost.
  if (!pretty) return pino(options, pino.destination({ fd, sync: true }));
  return pino({
    ...options,
    transport: {
      target: 'pino-pretty',
      options: {
        destination: fd,
        colorize: true,
        translateTime: 'SYS:HH:MM:ss.l',
        ignore: 'pid,hostname,name',
      },
    },
  });
}

/** A logger that writes nothing (for embedders and tests that want quiet). */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

/**
 * A console-shaped face of a logger, for code that logs as the console does
 * (`error('message', detail, error)`): the message stays the message, an
 * Error becomes `err`, anything else `details`.
 */
export function consoleLike(logger: Logger): Pick<Console, 'error'> {
  return {
    error: (message?: unknown, ...rest: unknown[]) => {
      const err = rest.find((arg) => arg instanceof Error);
      const details = rest.filter((arg) => arg !== err);
      logger.error({ err, details }, String(message));
    },
  };
}

/** The message of each activity's line; its fields are the activity's own. */
const MESSAGES: Record<Activity['type'], string> = {
  streamSessionCreated: 'stream session created',
  streamSessionEnded: 'stream session ended',
  batchNeeded: 'batch needed',
  batchClaimed: 'batch claimed',
  batchCompleted: 'batch completed',
  batchStalled: 'batch stalled',
  clientExpired: 'client expired',
  batchNeededDelivered: 'batch need delivered',
};

/**
 * One line per domain event, `event` naming it (`batchClaimed`, …) beside
 * its fields (`streamSessionId`, `batchNumber`, …). A stall is a warning:
 * an encoder took too long or died. Each need handed to a subscriber is
 * debug (there is one per subscriber).
 */
export function logActivity(logger: Logger, activity: Activity): void {
  const { type, ...fields } = activity;
  const message = MESSAGES[type];
  switch (type) {
    case 'batchStalled':
      logger.warn({ event: type, ...fields }, message);
      return;
    case 'batchNeededDelivered':
      if (logger.isLevelEnabled('debug')) logger.debug({ event: type, ...fields }, message);
      return;
    default:
      logger.info({ event: type, ...fields }, message);
  }
}
