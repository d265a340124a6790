import type { StreamSessionEndedEvent } from '../model.js';
import { type FeedOptions, subscribeToEvents } from './subscriptions.js';

/** Each stream session (or the one named) that ends from now on, and why. */
export function streamSessionEndedFeed(
  feed: FeedOptions,
  streamSessionId?: string | null,
): AsyncIterableIterator<StreamSessionEndedEvent> {
  return subscribeToEvents<StreamSessionEndedEvent>(feed, {
    select: (message) =>
      message.type === 'streamSessionEnded' &&
      (streamSessionId == null || message.event.id === streamSessionId)
        ? message.event
        : undefined,
  });
}
