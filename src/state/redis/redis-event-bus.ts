import type { Redis } from 'ioredis';
import type { CoordinatorEvent, EventBus, Unsubscribe } from '../events.js';

/**
 * Events through Redis pub/sub, so a subscriber on any instance hears what
 * any instance announced, exactly once: the instance whose change made the
 * announcement publishes it, and every instance (itself included) delivers
 * what arrives on the channel to its local listeners.
 */
export class RedisEventBus implements EventBus {
  private readonly listeners = new Set<(event: CoordinatorEvent) => void>();
  private readonly subscriber: Redis;
  private readonly channel: string;

  constructor(
    private readonly publisher: Redis,
    keyPrefix: string,
    private readonly onError: (error: unknown) => void = () => {},
  ) {
    this.channel = `${keyPrefix}events`;
    // Subscribing takes a connection of its own; it resubscribes by itself after a reconnect.
    this.subscriber = publisher.duplicate({ enableOfflineQueue: true, lazyConnect: false });
    this.subscriber.on('error', () => {});
    this.subscriber.subscribe(this.channel).catch(onError);
    this.subscriber.on('message', (channel, message) => {
      if (channel !== this.channel) return;
      let event: CoordinatorEvent;
      try {
        event = JSON.parse(message) as CoordinatorEvent;
      } catch (error) {
        this.onError(error);
        return;
      }
      for (const listener of this.listeners) {
        try {
          listener(event);
        } catch (error) {
          this.onError(error);
        }
      }
    });
  }

  /** Resolves once the subscription is in place (so no event published after is missed). */
  async ready(): Promise<void> {
    await this.subscriber.subscribe(this.channel);
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
