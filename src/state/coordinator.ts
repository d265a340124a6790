import { randomUUID } from 'node:crypto';
import { FixedBuffer, Repeater } from '@repeaterjs/repeater';
import { Mutex } from 'async-mutex';
import { type Clock, systemClock } from './clock.js';
import { InvalidInputError } from './errors.js';
import type { EventBus } from './events.js';
import type {
  BatchNeededEvent,
  BatchState,
  ClientPosition,
  CreateStreamSessionInput,
  SessionDefaults,
  SetCurrentBatchInput,
  StreamSessionSettings,
  StreamSessionView,
  UpdateClientPositionInput,
} from './model.js';
import type { Change, StreamSessionStore } from './store.js';

export interface CoordinatorOptions {
  readonly store: StreamSessionStore;
  readonly events: EventBus;
  readonly defaults: SessionDefaults;
  readonly clock?: Clock;
  /**
   * Events a subscriber may leave unread before it is closed with
   * SlowSubscriberError, so one stalled reader cannot grow memory without bound.
   */
  readonly maxQueuedEvents?: number;
}

/** Ends a subscription whose reader fell too far behind. */
export class SlowSubscriberError extends Error {
  constructor(limit: number) {
    super(`Subscription closed: more than ${limit} events were left unread.`);
    this.name = 'SlowSubscriberError';
  }
}

/**
 * The service's one entry point for every operation: it orders the changes
 * to each stream session with a mutex of its own, lets the store change and
 * decide, and publishes what the change announced, after the change and
 * before the next change to that session begins.
 */
export class BatchCoordinator {
  private readonly store: StreamSessionStore;
  private readonly events: EventBus;
  private readonly defaults: SessionDefaults;
  private readonly clock: Clock;
  private readonly maxQueuedEvents: number;
  // One mutex per stream session with work in flight; dropped when idle so
  // that ids of ended or unknown sessions leave nothing behind.
  private readonly locks = new Map<string, { mutex: Mutex; users: number }>();

  constructor(options: CoordinatorOptions) {
    this.store = options.store;
    this.events = options.events;
    this.defaults = options.defaults;
    this.clock = options.clock ?? systemClock;
    this.maxQueuedEvents = options.maxQueuedEvents ?? 1_000;
  }

  /**
   * Creates a session from the input and the server's defaults.
   * InvalidInputError when its threshold exceeds its batch size;
   * ConflictError when the id is taken.
   */
  async createStreamSession(input: CreateStreamSessionInput): Promise<StreamSessionView> {
    const settings: StreamSessionSettings = {
      id: input.id ?? randomUUID(),
      videoSourcePath: input.videoSourcePath,
      segmentDuration: input.segmentDuration ?? this.defaults.segmentDuration,
      batchSize: input.batchSize ?? this.defaults.batchSize,
      threshold: input.threshold ?? this.defaults.threshold,
      startSegment: input.startSegment ?? 0,
    };
    if (settings.threshold > settings.batchSize) {
      throw new InvalidInputError(
        `threshold (${settings.threshold}) must not exceed batchSize (${settings.batchSize}).`,
      );
    }
    return this.change(settings.id, () =>
      this.store.createStreamSession(settings, this.clock.now()),
    );
  }

  /** True when the session existed. */
  endStreamSession(id: string): Promise<boolean> {
    return this.exclusive(id, () => this.store.endStreamSession(id));
  }

  /** NotFoundError for an unknown stream session. */
  updateClientPosition(input: UpdateClientPositionInput): Promise<ClientPosition> {
    return this.change(input.streamSessionId, () =>
      this.store.updateClientPosition(input, this.clock.now()),
    );
  }

  /** True when the client was in the session; NotFoundError for an unknown session. */
  removeClient(streamSessionId: string, sessionId: string): Promise<boolean> {
    return this.change(streamSessionId, () =>
      this.store.removeClient(streamSessionId, sessionId, this.clock.now()),
    );
  }

  /** ConflictError unless input.batchNumber is the one the session expects next. */
  setCurrentBatch(input: SetCurrentBatchInput): Promise<BatchState> {
    return this.change(input.streamSessionId, () =>
      this.store.setCurrentBatch(input, this.clock.now()),
    );
  }

  /** Idempotent; ConflictError when batchNumber is not the current batch. */
  completeBatch(streamSessionId: string, batchNumber: number): Promise<BatchState> {
    return this.change(streamSessionId, () =>
      this.store.completeBatch(streamSessionId, batchNumber, this.clock.now()),
    );
  }

  getStreamSession(id: string): Promise<StreamSessionView | null> {
    return this.store.getStreamSession(id);
  }

  listStreamSessions(limit: number, offset: number): Promise<StreamSessionView[]> {
    return this.store.listStreamSessions(limit, offset);
  }

  isReady(): Promise<boolean> {
    return this.store.isReady();
  }

  /**
   * Every need pending now (of all sessions, or the one named), then each
   * need as it is announced. Live events that arrive while the pending ones
   * are read are held back and dropped when the snapshot already had them,
   * so nothing is missed and nothing is repeated.
   *
   * The iterator ends with SlowSubscriberError when its reader leaves more
   * than `maxQueuedEvents` events unread.
   */
  batchNeeded(streamSessionId?: string | null): AsyncIterableIterator<BatchNeededEvent> {
    const limit = this.maxQueuedEvents;
    // The buffer is the subscriber's queue: it fills only while the reader lags.
    const queue = new FixedBuffer(limit);
    return new Repeater<BatchNeededEvent>(async (push, stop) => {
      const deliver = (event: BatchNeededEvent) => {
        if (queue.full) stop(new SlowSubscriberError(limit));
        else void push(event);
      };
      let held: BatchNeededEvent[] | null = [];
      const unsubscribe = this.events.subscribe((message) => {
        if (message.type !== 'batchNeeded') return;
        const event = message.event;
        if (streamSessionId != null && event.streamSession.id !== streamSessionId) return;
        if (held === null) deliver(event);
        else held.push(event);
      });
      try {
        const pending = await this.store.pendingNeeds(streamSessionId ?? undefined);
        const replayed = new Map<string, number>();
        for (const event of pending) {
          replayed.set(event.streamSession.id, event.sequence);
          deliver(event);
        }
        for (const event of held) {
          if (event.sequence > (replayed.get(event.streamSession.id) ?? 0)) deliver(event);
        }
        held = null;
      } catch (error) {
        stop(error);
      }
      await stop;
      unsubscribe();
    }, queue);
  }

  /** Runs a change under the session's mutex and publishes what it announced. */
  private change<T>(streamSessionId: string, run: () => Promise<Change<T>>): Promise<T> {
    return this.exclusive(streamSessionId, async () => {
      const { result, announcement } = await run();
      if (announcement !== null) this.events.publish({ type: 'batchNeeded', event: announcement });
      return result;
    });
  }

  private async exclusive<T>(streamSessionId: string, run: () => Promise<T>): Promise<T> {
    let lock = this.locks.get(streamSessionId);
    if (lock === undefined) {
      lock = { mutex: new Mutex(), users: 0 };
      this.locks.set(streamSessionId, lock);
    }
    lock.users++;
    try {
      return await lock.mutex.runExclusive(run);
    } finally {
      if (--lock.users === 0) this.locks.delete(streamSessionId);
    }
  }

  /** Stream sessions with work in flight (for tests: it returns to 0 when idle). */
  get lockCount(): number {
    return this.locks.size;
  }
}
