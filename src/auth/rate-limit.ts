import { RateLimiterMemory, RateLimiterRes } from 'rate-limiter-flexible';
import { RateLimitedError } from '../state/errors.js';

/**
 * Limits how often one player (one stream session and session id) may report
 * its position. Over the limit, the update is refused with RATE_LIMITED and
 * changes nothing.
 */
export class PositionRateLimiter {
  private readonly limiter: RateLimiterMemory | null;

  /** `perSecond` 0 turns the limit off. */
  constructor(private readonly perSecond: number) {
    this.limiter = perSecond > 0 ? new RateLimiterMemory({ points: perSecond, duration: 1 }) : null;
  }

  /**
   * Runs `update` if the player is within its limit (at once when there is
   * no limit); RateLimitedError, and no update, when it is over.
   */
  within<T>(
    streamSessionId: string,
    sessionId: string,
    update: () => T | Promise<T>,
  ): T | Promise<T> {
    if (this.limiter === null) return update();
    return this.consume(streamSessionId, sessionId).then(update);
  }

  /** Counts one update; RateLimitedError when the player is over its limit. */
  async consume(streamSessionId: string, sessionId: string): Promise<void> {
    if (this.limiter === null) return;
    try {
      await this.limiter.consume(`${streamSessionId}\u0000${sessionId}`);
    } catch (error) {
      if (!(error instanceof RateLimiterRes)) throw error;
      throw new RateLimitedError(
        `Client '${sessionId}' of stream session '${streamSessionId}' sent more than ${this.perSecond} position updates in a second; retry in ${Math.ceil(error.msBeforeNext)} ms.`,
      );
    }
  }
}
