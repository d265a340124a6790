import { Repeater } from '@repeaterjs/repeater';
import { ChangeCoalescer } from '../change-coalescer.js';
import type { StreamSessionView } from '../model.js';
import type { StreamSessionStore } from '../store.js';
import type { FeedOptions } from './subscriptions.js';

// Sessions read at once for a new subscriber: one page is one consistent
// read; offset paging could skip a session when one ends.
const SESSIONS_PAGE = 1_000;

export interface StreamSessionUpdatedFeedOptions extends FeedOptions {
  /** Where each state is read when it is sent. */
  readonly store: StreamSessionStore;
  /** The least time between two states of one session sent to one subscriber, in milliseconds. */
  readonly interval: number;
}

/**
 * The state of every stream session (or the one named) now, then its state
 * again after it changes: at once after a quiet spell, at most once per
 * `interval` while it keeps changing, and always after its last change. So
 * a busy session cannot flood the reader, and the reader always ends with
 * every session's latest state. Each state is read from the store when it
 * is sent, not when it changed.
 *
 * Endings are not sent (the type has no room for them): a session that ends
 * is dropped, and streamSessionEnded tells of the end. A slow reader gets
 * fewer, fresher states: what waits for it is at most one mark per session
 * (so `maxQueuedEvents` does not apply). Ends when the subscriptions close;
 * a store error ends it with that error.
 */
export function streamSessionUpdatedFeed(
  { store, events, subscriptions, interval }: StreamSessionUpdatedFeedOptions,
  streamSessionId?: string | null,
): AsyncIterableIterator<StreamSessionView> {
  const wanted = (id: string) => streamSessionId == null || id === streamSessionId;
  return new Repeater<StreamSessionView>(async (push, stop) => {
    if (subscriptions.isClosed) return stop();
    const changes = new ChangeCoalescer<string>(interval);
    // Sessions that end while the first states are read, so as not to send them after their end.
    let endedDuringReplay: Set<string> | null = new Set();
    const unsubscribe = events.subscribe((message) => {
      if (message.type === 'streamSessionChanged') {
        if (wanted(message.event.id)) changes.changed(message.event.id);
      } else if (message.type === 'streamSessionEnded' && wanted(message.event.id)) {
        changes.forget(message.event.id);
        endedDuringReplay?.add(message.event.id);
      }
    });
    const forget = subscriptions.add(() => stop());
    const stopped = stop.then(() => null);
    try {
      // Listening began first: a change from here on is sent after the replay.
      for (const view of await currentStreamSessions(store, streamSessionId)) {
        // Each push waits for the reader, so a replay larger than its pace is fine.
        if (!endedDuringReplay.has(view.id)) await push(view);
      }
      endedDuringReplay = null;
      for (;;) {
        const taken = await Promise.race([changes.take(), stopped]);
        if (taken === null) break;
        const view = await store.getStreamSession(taken.key);
        if (view !== null && changes.isCurrent(taken)) await push(view);
        changes.done(taken);
      }
    } catch (error) {
      stop(error);
    }
    await stop;
    unsubscribe();
    changes.close();
    forget();
  });
}

/** Every stream session (or the one named), oldest first, for a new subscriber. */
async function currentStreamSessions(
  store: StreamSessionStore,
  streamSessionId?: string | null,
): Promise<StreamSessionView[]> {
  if (streamSessionId != null) {
    const session = await store.getStreamSession(streamSessionId);
    return session === null ? [] : [session];
  }
  const sessions: StreamSessionView[] = [];
  for (let offset = 0; ; offset += SESSIONS_PAGE) {
    const page = await store.listStreamSessions(SESSIONS_PAGE, offset);
    sessions.push(...page);
    if (page.length < SESSIONS_PAGE) return sessions;
  }
}
