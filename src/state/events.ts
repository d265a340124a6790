import type {
  BatchNeededEvent,
  StreamSessionChangedEvent,
  StreamSessionEndedEvent,
} from './model.js';

/** Everything the coordinator announces to subscribers. */
export type CoordinatorEvent =
  | { readonly type: 'batchNeeded'; readonly event: BatchNeededEvent }
  | { readonly type: 'streamSessionEnded'; readonly event: StreamSessionEndedEvent }
  | { readonly type: 'streamSessionChanged'; readonly event: StreamSessionChangedEvent };

export type Unsubscribe = () => void;

/**
 * Where events travel from the change that caused them to every subscriber.
 * In one process that is a list of listeners (LocalEventBus); across
 * instances it is Redis pub/sub (RedisEventBus, in ./redis), behind this
 * same interface.
 */
export interface EventBus {
  /** Delivers to every listener, in publish order. */
  publish(event: CoordinatorEvent): void;
  /** Listens from now on; the returned function stops listening. */
  subscribe(listener: (event: CoordinatorEvent) => void): Unsubscribe;
  close(): Promise<void>;
}

/** An EventBus inside one process: delivery is synchronous, in order. */
export class LocalEventBus implements EventBus {
  private readonly listeners = new Set<(event: CoordinatorEvent) => void>();

  constructor(private readonly onListenerError: (error: unknown) => void = () => {}) {}

  publish(event: CoordinatorEvent): void {
    for (const listener of this.listeners) {
      // One failing subscriber must not keep the event from the others.
      try {
        listener(event);
      } catch (error) {
        this.onListenerError(error);
      }
    }
  }

  subscribe(listener: (event: CoordinatorEvent) => void): Unsubscribe {
    // Wrapped so the same function may subscribe twice and unsubscribe once.
    const entry = (event: CoordinatorEvent) => listener(event);
    this.listeners.add(entry);
    return () => {
      this.listeners.delete(entry);
    };
  }

  get listenerCount(): number {
    return this.listeners.size;
  }

  async close(): Promise<void> {
    this.listeners.clear();
  }
}
