import type { ActivityReporter } from '../activity.js';
import type { Clock } from '../clock.js';
import type { BatchNeededEvent } from '../model.js';
import type { StreamSessionStore } from '../store.js';
import { type FeedOptions, subscribeToEvents } from './subscriptions.js';

export interface BatchNeededFeedOptions extends FeedOptions {
  /** Where the needs pending now are read, for a new subscriber. */
  readonly store: StreamSessionStore;
  /** Told of each live need handed over (for the delivery latency). */
  readonly activity: ActivityReporter;
  readonly clock: Clock;
}

/**
 * Every need pending now (of all sessions, or the one named), then each
 * need as it is announced. Live events that arrive while the pending ones
 * are read are held back and dropped when the replay already had them (a
 * need's sequence only grows within its session), so nothing is missed and
 * nothing is repeated.
 */
export function batchNeededFeed(
  options: BatchNeededFeedOptions,
  streamSessionId?: string | null,
): AsyncIterableIterator<BatchNeededEvent> {
  const { store, activity, clock } = options;
  // The latest need replayed per session (several may be pending): a live one of the same session at
  // or below its sequence is a repeat. With the session's creation: one
  // ended and made again under the same id starts its sequence over (one
  // made again within the same millisecond, while this subscriber was being
  // replayed to, is not told apart).
  const replayed = new Map<string, { createdAt: number; sequence: number }>();
  return subscribeToEvents<BatchNeededEvent>(options, {
    select: (message) =>
      message.type === 'batchNeeded' &&
      (streamSessionId == null || message.event.streamSession.id === streamSessionId)
        ? message.event
        : undefined,
    replayFirst: async (replay) => {
      const pending = await store.pendingNeeds(streamSessionId ?? undefined);
      for (const { streamSession, sequence } of pending) {
        const seen = replayed.get(streamSession.id);
        if (seen === undefined || sequence > seen.sequence) {
          replayed.set(streamSession.id, { createdAt: streamSession.createdAt, sequence });
        }
      }
      for (const event of pending) await replay(event);
    },
    isFresh: ({ streamSession, sequence }) => {
      const seen = replayed.get(streamSession.id);
      if (seen === undefined) return true;
      if (seen.createdAt === streamSession.createdAt && sequence <= seen.sequence) return false;
      replayed.delete(streamSession.id);
      return true;
    },
    onDelivered: activity.enabled
      ? (event) =>
          activity.report({
            type: 'batchNeededDelivered',
            streamSessionId: event.streamSession.id,
            batchNumber: event.batchNumber,
            reason: event.reason,
            latencyMs: clock.now() - event.streamSession.updatedAt,
          })
      : undefined,
  });
}
