import { FixedBuffer, Repeater } from '@repeaterjs/repeater';
import { SlowSubscriberError } from '../errors.js';
import type { CoordinatorEvent, EventBus } from '../events.js';

/**
 * The subscriptions open on one coordinator, so that a shutdown can end
 * them all (their clients see a normal completion). Once closed, a new
 * subscription ends at once.
 */
export class Subscriptions {
  private readonly open = new Set<() => void>();
  private closed = false;

  get isClosed(): boolean {
    return this.closed;
  }

  get size(): number {
    return this.open.size;
  }

  /** Keeps `end` until the returned function is called. */
  add(end: () => void): () => void {
    this.open.add(end);
    return () => {
      this.open.delete(end);
    };
  }

  /** Ends every open subscription, and every later one at its start. */
  closeAll(): void {
    this.closed = true;
    for (const end of [...this.open]) end();
  }
}

/** What every feed is made of: the bus, the coordinator's subscriptions, and the queue bound. */
export interface FeedOptions {
  readonly events: EventBus;
  readonly subscriptions: Subscriptions;
  /**
   * Events a subscriber may leave unread before it is closed with
   * SlowSubscriberError, so one stalled reader cannot grow memory without bound.
   */
  readonly maxQueuedEvents: number;
}

/** How a feed over the event bus picks, replays and delivers its events. */
export interface EventFeed<T> {
  /** Picks and shapes the events the feed wants; undefined for the others. */
  readonly select: (message: CoordinatorEvent) => T | undefined;
  /**
   * Runs once listening has begun: replays what a new subscriber must see
   * first, at the reader's pace. Live events that arrive meanwhile are held.
   */
  readonly replayFirst?: (replay: (event: T) => Promise<unknown>) => Promise<void>;
  /** Whether a held or live event is new to this subscriber (not in its replay). */
  readonly isFresh?: (event: T) => boolean;
  /** Told of each live event handed to the subscriber. */
  readonly onDelivered?: (event: T) => void;
}

/**
 * A subscription over the event bus: replay first, then live events, with
 * no gap and no repeat. Its queue holds at most `maxQueuedEvents` events
 * unread; past that it ends with SlowSubscriberError, so one stalled reader
 * cannot grow memory without bound. It returns when `subscriptions` closes.
 */
export function subscribeToEvents<T>(
  { events, subscriptions, maxQueuedEvents }: FeedOptions,
  { select, replayFirst, isFresh, onDelivered }: EventFeed<T>,
): AsyncIterableIterator<T> {
  // The buffer is the subscriber's queue: it fills only while the reader lags.
  const queue = new FixedBuffer(maxQueuedEvents);
  return new Repeater<T>(async (push, stop) => {
    if (subscriptions.isClosed) return stop();
    const tooSlow = () => stop(new SlowSubscriberError(maxQueuedEvents));
    const deliver = (event: T) => {
      if (isFresh !== undefined && !isFresh(event)) return;
      if (queue.full) return tooSlow();
      void push(event);
      onDelivered?.(event);
    };
    let held: T[] | null = [];
    const unsubscribe = events.subscribe((message) => {
      const event = select(message);
      if (event === undefined) return;
      if (held === null) deliver(event);
      else if (held.length >= maxQueuedEvents) tooSlow();
      else held.push(event);
    });
    const forget = subscriptions.add(() => stop());
    try {
      // Awaiting each push lets a reader take a replay larger than its queue.
      if (replayFirst !== undefined) await replayFirst((event) => push(event));
      for (const event of held) deliver(event);
      held = null;
    } catch (error) {
      stop(error);
    }
    await stop;
    unsubscribe();
    forget();
  }, queue);
}
