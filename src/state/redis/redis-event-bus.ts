import type { Redis } from 'ioredis';
import { LRUCache } from 'lru-cache';
import type { CoordinatorEvent, EventBus, Unsubscribe } from '../events.js';
import type { BatchNeed, BatchNeededEvent, StreamSessionView } from '../model.js';
import { list, normalize } from './normalize.js';

const READ_ATTEMPTS = 20;
const READ_RETRY_DELAY = 250; // ms: 5 s in all, longer than a reconnection takes
/** Stream sessions whose last delivered need is remembered (for the resync after a reconnect). */
const REMEMBERED_SESSIONS = 100_000;

/**
 * What the store's scripts publish for a change that announced needs: the
 * needs, in order, without their session view (see publish in
 * scripts/prelude.lua). One message per change, so that the view is read once.
 */
interface PublishedNeeds {
  readonly type: 'batchNeeded';
  readonly streamSessionId: string;
  readonly needs: ReadonlyArray<BatchNeed & { readonly sequence: number }>;
}

/**
 * Events through Redis pub/sub, so a subscriber on any instance hears what
 * any instance announced, exactly once: the store's scripts publish each
 * event in the same atomic step as the change that caused it, and every
 * instance (itself included) delivers what arrives on the channel to its
 * local listeners, in order, after adding the session view a need shows.
 *
 * Pub/sub keeps nothing for a connection that is away: needs published while
 * this instance's subscriber connection was down would never reach its
 * listeners. So after every reconnection the bus reads the needs pending in
 * the store and delivers those newer than the last it delivered for their
 * session (needs carry a sequence per session), before anything that
 * arrives live after them. Endings and dashboard changes published during
 * the gap are not recovered: an ending is about a session that is gone, and
 * the dashboard's next change of that session shows its state.
 */
export class RedisEventBus implements EventBus {
  private readonly listeners = new Set<(event: CoordinatorEvent) => void>();
  private readonly subscriber: Redis;
  private readonly channel: string;

  // Arrivals are handled one after another, so events keep their order even
  // though completing a need reads its session first.
  private delivered: Promise<void> = Promise.resolve();

  // The last need delivered, per stream session: its sequence, and the session's creation.
  private readonly lastNeed = new LRUCache<string, { createdAt: number; sequence: number }>({
    max: REMEMBERED_SESSIONS,
  });

  constructor(
    private readonly publisher: Redis,
    keyPrefix: string,
    private readonly resolveSession: (id: string) => Promise<StreamSessionView | null>,
    private readonly onError: (error: unknown) => void = () => {},
    private readonly pendingNeeds: () => Promise<BatchNeededEvent[]> = async () => [],
  ) {
    this.channel = `${keyPrefix}events`;
    // Subscribing takes a connection of its own; it resubscribes by itself after a reconnect.
    this.subscriber = publisher.duplicate({
      enableOfflineQueue: true,
      lazyConnect: false,
      // Named, for CLIENT LIST (a name may not hold spaces).
      connectionName: `${keyPrefix}events`.replace(/[^\w:.-]/g, '_'),
    });
    this.subscriber.on('error', () => {});
    this.subscriber.subscribe(this.channel).catch(onError);
    this.subscriber.on('message', (channel, message) => {
      if (channel !== this.channel) return;
      this.enqueue(() => this.deliver(message));
    });
    let connections = 0;
    this.subscriber.on('ready', () => {
      if (++connections > 1) this.enqueue(() => this.resync());
    });
  }

  /** Arrivals and resyncs are handled one after another, in the order they came. */
  private enqueue(work: () => Promise<void>): void {
    this.delivered = this.delivered.then(work, work);
  }

  /** After a reconnection: the needs announced while the subscriber was away. */
  private async resync(): Promise<void> {
    try {
      // Subscribed again first (SUBSCRIBE is idempotent), so nothing falls between.
      await this.subscriber.subscribe(this.channel);
      if (this.listeners.size === 0) return;
      const pending = await this.withRetries(() => this.pendingNeeds());
      for (const event of pending) this.emit({ type: 'batchNeeded', event });
    } catch (error) {
      this.onError(error);
    }
  }

  private async deliver(message: string): Promise<void> {
    let events: readonly CoordinatorEvent[];
    try {
      events = await this.complete(JSON.parse(message) as CoordinatorEvent | PublishedNeeds);
    } catch (error) {
      this.onError(error);
      return;
    }
    for (const event of events) this.emit(event);
  }

  /** Hands an event to every listener; a need no newer than one already delivered is a repeat. */
  private emit(event: CoordinatorEvent): void {
    if (event.type === 'batchNeeded') {
      const { streamSession, sequence } = event.event;
      const { id, createdAt } = streamSession;
      const last = this.lastNeed.get(id);
      // A session made again under the same id starts over (told by its creation
      // time should its ending have been missed while the subscriber was away).
      if (last !== undefined && last.createdAt === createdAt && sequence <= last.sequence) return;
      this.lastNeed.set(id, { createdAt, sequence });
    } else if (event.type === 'streamSessionEnded') {
      // Its successor under the same id may be created within the same millisecond.
      this.lastNeed.delete(event.event.id);
    }
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (error) {
        this.onError(error);
      }
    }
  }

  /**
   * The needs of a change from a script get the session they are about (one
   * read for them all); a session gone since drops them.
   */
  private async complete(
    message: CoordinatorEvent | PublishedNeeds,
  ): Promise<readonly CoordinatorEvent[]> {
    if (!('needs' in message)) return [message];
    // No listener, no read: the view is built only for someone to see it.
    if (this.listeners.size === 0) return [];
    const session = await this.withRetries(() => this.resolveSession(message.streamSessionId));
    if (session === null) return [];
    return list(message.needs).map((need) => ({
      type: 'batchNeeded',
      event: { ...normalize(need), streamSession: session },
    }));
  }

  /** Resolves once the subscription is in place (so no event published after is missed). */
  async ready(): Promise<void> {
    await this.subscriber.subscribe(this.channel);
  }

  /**
   * A need published as Redis came back may arrive before the store trusts
   * Redis again: try the read a few times before giving the event up.
   */
  private async withRetries<T>(read: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await read();
      } catch (error) {
        if (attempt >= READ_ATTEMPTS) throw error;
        await new Promise((resolve) => setTimeout(resolve, READ_RETRY_DELAY));
      }
    }
  }

  publish(event: CoordinatorEvent): void {
    this.publisher.publish(this.channel, JSON.stringify(event)).catch(this.onError);
  }

  subscribe(listener: (event: CoordinatorEvent) => void): Unsubscribe {
    const entry = (event: CoordinatorEvent) => listener(event);
    this.listeners.add(entry);
    return () => {
      this.listeners.delete(entry);
    };
  }

  async close(): Promise<void> {
    this.listeners.clear();
    this.subscriber.disconnect();
  }
}
