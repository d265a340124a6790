import { randomUUID } from 'node:crypto';
import { type ActivityObserver, ActivityReporter } from './activity.js';
import { ChangeRunner } from './change-runner.js';
import { type Clock, systemClock } from './clock.js';
import { sortQualities } from './coverage.js';
import { InvalidInputError, SlowSubscriberError, streamSessionNotFound } from './errors.js';
import type { EventBus } from './events.js';
import { type BatchNeededFeedOptions, batchNeededFeed } from './feeds/batch-needed.js';
import { streamSessionEndedFeed } from './feeds/stream-session-ended.js';
import {
  type StreamSessionUpdatedFeedOptions,
  streamSessionUpdatedFeed,
} from './feeds/stream-session-updated.js';
import { type FeedOptions, Subscriptions } from './feeds/subscriptions.js';
import {
  type BatchNeededEvent,
  type BatchState,
  type ClientPosition,
  type CreateStreamSessionInput,
  type ReleaseSegmentsInput,
  type SessionDefaults,
  type SetCurrentBatchInput,
  type StreamSessionEndedEvent,
  StreamSessionEndReason,
  type StreamSessionSettings,
  type StreamSessionView,
  type UpdateClientPositionInput,
} from './model.js';
import type { StreamSessionStore } from './store.js';
import { Sweeper, type SweepReport } from './sweeper.js';

export interface CoordinatorOptions {
  readonly store: StreamSessionStore;
  /** The bus the store publishes on (createStore pairs them). */
  readonly events: EventBus;
  readonly defaults: SessionDefaults;
  readonly clock?: Clock;
  /**
   * Events a subscriber may leave unread before it is closed with
   * SlowSubscriberError, so one stalled reader cannot grow memory without bound.
   */
  readonly maxQueuedEvents?: number;
  /**
   * The least time between two states of one stream session sent to one
   * streamSessionUpdated subscriber, in milliseconds.
   */
  readonly sessionUpdateInterval?: number;
  /** Called with what each sweep did (for logs); never throws into the sweeper. */
  readonly onSweep?: (report: SweepReport) => void;
  /**
   * Called when a sweep fails (the next one tries again) or when onActivity
   * throws (the change stands); `during` says which.
   */
  readonly onError?: (error: unknown, during: 'sweep' | 'activity') => void;
  /**
   * Told what each change did (for logs and metrics), after it committed;
   * what it throws goes to onError.
   */
  readonly onActivity?: ActivityObserver;
}

export type { SweepReport };
export { SlowSubscriberError };

/**
 * The service's one entry point for every operation. It composes the parts:
 * the store makes each change atomically and publishes its events
 * (ChangeRunner tells the activity observer what each did), the feeds turn
 * the event bus into subscriptions, and the Sweeper acts on deadlines.
 */
export class BatchCoordinator {
  private readonly store: StreamSessionStore;
  private readonly defaults: SessionDefaults;
  private readonly clock: Clock;
  private readonly changes: ChangeRunner;
  private readonly subscriptions = new Subscriptions();
  private readonly sweeper: Sweeper;
  private readonly feeds: {
    readonly batchNeeded: BatchNeededFeedOptions;
    readonly streamSessionEnded: FeedOptions;
    readonly streamSessionUpdated: StreamSessionUpdatedFeedOptions;
  };

  constructor(options: CoordinatorOptions) {
    const { store, events } = options;
    const onError = options.onError ?? (() => {});
    const activity = new ActivityReporter(options.onActivity ?? null, (error) =>
      onError(error, 'activity'),
    );
    this.store = store;
    this.defaults = options.defaults;
    this.clock = options.clock ?? systemClock;
    this.changes = new ChangeRunner(activity);
    this.sweeper = new Sweeper({
      store,
      changes: this.changes,
      clock: this.clock,
      onSweep: options.onSweep ?? (() => {}),
      onError: (error) => onError(error, 'sweep'),
    });
    const feed: FeedOptions = {
      events,
      subscriptions: this.subscriptions,
      maxQueuedEvents: options.maxQueuedEvents ?? 1_000,
    };
    this.feeds = {
      batchNeeded: { ...feed, store, activity, clock: this.clock },
      streamSessionEnded: feed,
      streamSessionUpdated: {
        ...feed,
        store,
        interval: options.sessionUpdateInterval ?? 250, // 4 a second per session
      },
    };
  }

  /**
   * Creates a session from the input and the server's defaults.
   * InvalidInputError when its threshold exceeds its batch size;
   * ConflictError when the id is taken.
   */
  createStreamSession(input: CreateStreamSessionInput): Promise<StreamSessionView> {
    const segmentDuration = input.segmentDuration ?? this.defaults.segmentDuration;
    const durationSeconds = input.durationSeconds ?? null;
    const settings: StreamSessionSettings = {
      id: input.id ?? randomUUID(),
      videoSourcePath: input.videoSourcePath,
      segmentDuration,
      batchSize: input.batchSize ?? this.defaults.batchSize,
      threshold: input.threshold ?? this.defaults.threshold,
      startSegment: input.startSegment ?? 0,
      durationSeconds,
      lastSegment:
        durationSeconds === null ? null : Math.ceil(durationSeconds / segmentDuration) - 1,
      qualities: sortQualities(
        input.qualities && input.qualities.length > 0 ? input.qualities : this.defaults.qualities,
      ),
    };
    if (settings.threshold > settings.batchSize) {
      return Promise.reject(
        new InvalidInputError(
          `threshold (${settings.threshold}) must not exceed batchSize (${settings.batchSize}).`,
        ),
      );
    }
    if (settings.lastSegment !== null && settings.startSegment > settings.lastSegment) {
      return Promise.reject(
        new InvalidInputError(
          `startSegment (${settings.startSegment}) is past the video's last segment (${settings.lastSegment}: ${durationSeconds} s in segments of ${segmentDuration} s).`,
        ),
      );
    }
    return this.changes.run(
      settings.id,
      () => this.store.createStreamSession(settings, this.clock.now()),
      (view) => ({
        type: 'streamSessionCreated',
        streamSessionId: view.id,
        videoSourcePath: view.videoSourcePath,
        batchSize: view.batchSize,
        threshold: view.threshold,
        segmentDuration: view.segmentDuration,
      }),
    );
  }

  /** True when the session existed; subscribers hear it ENDED. */
  endStreamSession(id: string): Promise<boolean> {
    return this.changes.run(
      id,
      () => this.store.endStreamSession(id, this.clock.now()),
      (ended) =>
        ended && {
          type: 'streamSessionEnded',
          streamSessionId: id,
          reason: StreamSessionEndReason.ENDED,
        },
    );
  }

  /** NotFoundError for an unknown stream session. */
  updateClientPosition(input: UpdateClientPositionInput): Promise<ClientPosition> {
    return this.changes.run(input.streamSessionId, () =>
      this.store.updateClientPosition(input, this.clock.now()),
    );
  }

  /** True when the client was in the session; NotFoundError for an unknown session. */
  removeClient(streamSessionId: string, sessionId: string): Promise<boolean> {
    return this.changes.run(streamSessionId, () =>
      this.store.removeClient(streamSessionId, sessionId, this.clock.now()),
    );
  }

  /**
   * Claims a batch: a pending need's number, a STALLED batch's, or the next
   * unused one with no need pending (StreamSession.setCurrentBatch).
   */
  setCurrentBatch(input: SetCurrentBatchInput): Promise<BatchState> {
    return this.changes.run(
      input.streamSessionId,
      () => this.store.setCurrentBatch(input, this.clock.now()),
      (batch) => ({
        type: 'batchClaimed',
        streamSessionId: input.streamSessionId,
        batchNumber: batch.batchNumber,
        startSegment: batch.startSegment,
        endSegment: batch.endSegment,
      }),
    );
  }

  /** Idempotent; ConflictError when batchNumber is not a batch of the session. */
  completeBatch(streamSessionId: string, batchNumber: number): Promise<BatchState> {
    return this.changes.run(
      streamSessionId,
      () => this.store.completeBatch(streamSessionId, batchNumber, this.clock.now()),
      (batch) => ({
        type: 'batchCompleted',
        streamSessionId,
        batchNumber: batch.batchNumber,
        generationMs: (batch.generationEnded ?? batch.generationStarted) - batch.generationStarted,
      }),
    );
  }

  /** The encoder making a batch is still at work: the batch stalls a batch timeout from now. */
  renewBatchClaim(streamSessionId: string, batchNumber: number): Promise<BatchState> {
    return this.changes.run(streamSessionId, () =>
      this.store.renewBatchClaim(streamSessionId, batchNumber, this.clock.now()),
    );
  }

  /** An encoder deleted these segments; true when any made segment was there. */
  releaseSegments(input: ReleaseSegmentsInput): Promise<boolean> {
    return this.changes.run(input.streamSessionId, () =>
      this.store.releaseSegments(input, this.clock.now()),
    );
  }

  /** The session; NotFoundError when there is none. */
  async requireStreamSession(id: string): Promise<StreamSessionView> {
    const session = await this.store.getStreamSession(id);
    if (session === null) throw streamSessionNotFound(id);
    return session;
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
   * need as it is announced, with no gap and no repeat (see batchNeededFeed).
   * Ends with SlowSubscriberError when its reader leaves more than
   * `maxQueuedEvents` events unread; returns when the coordinator closes.
   */
  batchNeeded(streamSessionId?: string | null): AsyncIterableIterator<BatchNeededEvent> {
    return batchNeededFeed(this.feeds.batchNeeded, streamSessionId);
  }

  /** Each stream session (or the one named) that ends from now on, and why. */
  streamSessionEnded(
    streamSessionId?: string | null,
  ): AsyncIterableIterator<StreamSessionEndedEvent> {
    return streamSessionEndedFeed(this.feeds.streamSessionEnded, streamSessionId);
  }

  /**
   * The state of every stream session (or the one named) now, then again
   * after it changes, at most once per `sessionUpdateInterval` while it keeps
   * changing and always after its last change (see streamSessionUpdatedFeed).
   */
  streamSessionUpdated(streamSessionId?: string | null): AsyncIterableIterator<StreamSessionView> {
    return streamSessionUpdatedFeed(this.feeds.streamSessionUpdated, streamSessionId);
  }

  /**
   * Acts on every deadline that has passed (see Sweeper). Concurrent calls
   * share one sweep.
   */
  sweep(): Promise<SweepReport> {
    return this.sweeper.sweep();
  }

  /** Sweeps every `intervalMs` until close(); one timer for everything. */
  startSweeper(intervalMs: number): void {
    this.sweeper.start(intervalMs);
  }

  /**
   * Stops the sweeper, waits for changes in flight, and completes every
   * open subscription (their clients see a normal completion).
   */
  async close(): Promise<void> {
    await this.sweeper.stop();
    await this.changes.settled();
    this.subscriptions.closeAll();
  }

  /** Open subscriptions (for tests and metrics). */
  get subscriptionCount(): number {
    return this.subscriptions.size;
  }

  /** Changes sent to the store and not answered yet (for tests: 0 when idle). */
  get changesInFlight(): number {
    return this.changes.count;
  }
}
