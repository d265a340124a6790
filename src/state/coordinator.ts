import { randomUUID } from 'node:crypto';
import { FixedBuffer, Repeater } from '@repeaterjs/repeater';
import { Mutex } from 'async-mutex';
import type { Activity, ActivityObserver } from './activity.js';
import { ChangeCoalescer } from './change-coalescer.js';
import { type Clock, systemClock } from './clock.js';
import { InvalidInputError, SlowSubscriberError, streamSessionNotFound } from './errors.js';
import type { CoordinatorEvent, EventBus } from './events.js';
import {
  type BatchNeededEvent,
  type BatchState,
  type ClientPosition,
  type CreateStreamSessionInput,
  type SessionDefaults,
  type SetCurrentBatchInput,
  type StreamSessionEndedEvent,
  StreamSessionEndReason,
  type StreamSessionSettings,
  type StreamSessionView,
  type UpdateClientPositionInput,
} from './model.js';
import type { Change, DueWork, MaybePromise, StreamSessionStore } from './store.js';

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

/** What one sweep acted on. */
export interface SweepReport {
  readonly clientsExpired: number;
  readonly batchesStalled: number;
  readonly sessionsEnded: number;
}

export { SlowSubscriberError };

// Enough for any burst one sweep could cause, small enough to bound a sweep's pause.
const SWEEP_BATCH = 10_000;
// Sessions read at once for a new streamSessionUpdated subscriber: one page
// is one consistent read; offset paging could skip a session when one ends.
const SESSIONS_PAGE = 1_000;

/**
 * The service's one entry point for every operation: it orders the changes
 * to each stream session with a mutex of its own, lets the store change and
 * decide, and publishes what the change announced, after the change and
 * before the next change to that session begins. It also runs the sweeper
 * that expires silent clients, re-announces stalled batches and ends idle
 * sessions.
 */
export class BatchCoordinator {
  private readonly store: StreamSessionStore;
  private readonly events: EventBus;
  private readonly defaults: SessionDefaults;
  private readonly clock: Clock;
  private readonly maxQueuedEvents: number;
  private readonly sessionUpdateInterval: number;
  private readonly onSweep: (report: SweepReport) => void;
  private readonly onError: (error: unknown, during: 'sweep' | 'activity') => void;
  private readonly onActivity: ActivityObserver | null;
  // One mutex per stream session with work in flight; dropped when idle so
  // that ids of ended or unknown sessions leave nothing behind.
  private readonly locks = new Map<string, { mutex: Mutex; users: number }>();
  /** Ends every open subscription, for shutdown. */
  private readonly subscriptions = new Set<() => void>();
  private sweeper: NodeJS.Timeout | null = null;
  private sweeping: Promise<SweepReport> | null = null;
  private closed = false;

  constructor(options: CoordinatorOptions) {
    this.store = options.store;
    this.events = options.events;
    this.defaults = options.defaults;
    this.clock = options.clock ?? systemClock;
    this.maxQueuedEvents = options.maxQueuedEvents ?? 1_000;
    this.sessionUpdateInterval = options.sessionUpdateInterval ?? 250; // 4 a second per session
    this.onSweep = options.onSweep ?? (() => {});
    this.onError = options.onError ?? (() => {});
    this.onActivity = options.onActivity ?? null;
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
    return this.change(
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
    return this.exclusive(id, async () => {
      const ended = await this.store.endStreamSession(id, this.clock.now());
      if (ended) this.publishEnded(id, StreamSessionEndReason.ENDED);
      return ended;
    });
  }

  /** NotFoundError for an unknown stream session. */
  updateClientPosition(input: UpdateClientPositionInput): Promise<ClientPosition> {
    return this.change(input.streamSessionId, () =>
      this.store.updateClientPosition(input, this.clock.now()),
    );
  }

  /**
   * updateClientPosition for a caller that takes a value as well as a
   * promise (the resolver, on the hot path): with the embedded store it
   * answers at once, and throws instead of rejecting.
   */
  updateClientPositionNow(input: UpdateClientPositionInput): MaybePromise<ClientPosition> {
    return this.changeNow(input.streamSessionId, () =>
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
    return this.change(
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

  /** Idempotent; ConflictError when batchNumber is not the current batch. */
  completeBatch(streamSessionId: string, batchNumber: number): Promise<BatchState> {
    return this.change(
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
   * need as it is announced. Live events that arrive while the pending ones
   * are read are held back and dropped when the snapshot already had them,
   * so nothing is missed and nothing is repeated.
   *
   * The iterator ends with SlowSubscriberError when its reader leaves more
   * than `maxQueuedEvents` events unread, and returns when the coordinator
   * closes.
   */
  batchNeeded(streamSessionId?: string | null): AsyncIterableIterator<BatchNeededEvent> {
    // The latest sequence replayed per session: a live event at or below it is a repeat.
    const replayed = new Map<string, number>();
    return this.subscribe<BatchNeededEvent>(
      (message) =>
        message.type === 'batchNeeded' &&
        (streamSessionId == null || message.event.streamSession.id === streamSessionId)
          ? message.event
          : undefined,
      async (replay) => {
        const pending = await this.store.pendingNeeds(streamSessionId ?? undefined);
        for (const event of pending) replayed.set(event.streamSession.id, event.sequence);
        for (const event of pending) await replay(event);
      },
      (event) => {
        const seen = replayed.get(event.streamSession.id);
        if (seen === undefined) return true;
        if (event.sequence <= seen) return false;
        replayed.delete(event.streamSession.id);
        return true;
      },
      this.onActivity === null
        ? undefined
        : (event) =>
            this.report({
              type: 'batchNeededDelivered',
              streamSessionId: event.streamSession.id,
              batchNumber: event.batchNumber,
              reason: event.reason,
              latencyMs: this.clock.now() - event.streamSession.updatedAt,
            }),
    );
  }

  /** Each stream session (or the one named) that ends from now on, and why. */
  streamSessionEnded(
    streamSessionId?: string | null,
  ): AsyncIterableIterator<StreamSessionEndedEvent> {
    return this.subscribe<StreamSessionEndedEvent>((message) =>
      message.type === 'streamSessionEnded' &&
      (streamSessionId == null || message.event.id === streamSessionId)
        ? message.event
        : undefined,
    );
  }

  /**
   * The state of every stream session (or the one named) now, then its state
   * again after it changes: at once after a quiet spell, at most once per
   * `sessionUpdateInterval` while it keeps changing, and always after its
   * last change. So a busy session cannot flood the reader, and the reader
   * always ends with every session's latest state. Each state is read from
   * the store when it is sent, not when it changed.
   *
   * Endings are not sent (the type has no room for them): a session that ends
   * is dropped, and streamSessionEnded tells of the end. A slow reader gets
   * fewer, fresher states: what waits for it is at most one mark per session.
   * Ends when the coordinator closes; a store error ends it with that error.
   */
  streamSessionUpdated(streamSessionId?: string | null): AsyncIterableIterator<StreamSessionView> {
    const wanted = (id: string) => streamSessionId == null || id === streamSessionId;
    return new Repeater<StreamSessionView>(async (push, stop) => {
      if (this.closed) return stop();
      const changes = new ChangeCoalescer<string>(this.sessionUpdateInterval);
      // Sessions that end while the first states are read, so as not to send them after their end.
      let endedDuringReplay: Set<string> | null = new Set();
      const unsubscribe = this.events.subscribe((message) => {
        if (message.type === 'streamSessionChanged') {
          if (wanted(message.event.id)) changes.changed(message.event.id);
        } else if (message.type === 'streamSessionEnded' && wanted(message.event.id)) {
          changes.forget(message.event.id);
          endedDuringReplay?.add(message.event.id);
        }
      });
      const end = () => stop();
      this.subscriptions.add(end);
      const stopped = stop.then(() => null);
      try {
        // Listening began first: a change from here on is sent after the replay.
        for (const view of await this.currentStreamSessions(streamSessionId)) {
          // Each push waits for the reader, so a replay larger than its pace is fine.
          if (!endedDuringReplay.has(view.id)) await push(view);
        }
        endedDuringReplay = null;
        for (;;) {
          const taken = await Promise.race([changes.take(), stopped]);
          if (taken === null) break;
          const view = await this.store.getStreamSession(taken.key);
          if (view !== null && changes.isCurrent(taken)) await push(view);
          changes.done(taken);
        }
      } catch (error) {
        stop(error);
      }
      await stop;
      unsubscribe();
      changes.close();
      this.subscriptions.delete(end);
    });
  }

  /**
   * Acts on every deadline that has passed: silent clients leave (as by
   * removeClient), batches claimed too long ago are announced STALLED, and
   * sessions empty for too long end (IDLE). Its cost follows what is due,
   * not what exists. Concurrent calls share one sweep.
   */
  sweep(): Promise<SweepReport> {
    this.sweeping ??= this.runSweep().finally(() => {
      this.sweeping = null;
    });
    return this.sweeping;
  }

  /** Sweeps every `intervalMs` until close(); one timer for everything. */
  startSweeper(intervalMs: number): void {
    if (this.sweeper !== null || this.closed) return;
    this.sweeper = setInterval(() => {
      // A tick that finds the last sweep still running leaves it alone (and
      // does not report its result a second time).
      if (this.sweeping !== null) return;
      this.sweep().then(
        (report) => {
          if (report.clientsExpired + report.batchesStalled + report.sessionsEnded > 0) {
            this.onSweep(report);
          }
        },
        (error) => this.onError(error, 'sweep'),
      );
    }, intervalMs);
    // The sweeper alone must not keep a process alive.
    this.sweeper.unref();
  }

  /**
   * Stops the sweeper, waits for changes in flight, and completes every
   * open subscription (their clients see a normal completion).
   */
  async close(): Promise<void> {
    this.closed = true;
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.sweeper = null;
    // A sweep that failed (the store away) must not stop the shutdown.
    await this.sweeping?.catch(() => {});
    await Promise.all([...this.locks.values()].map(({ mutex }) => mutex.waitForUnlock()));
    for (const end of [...this.subscriptions]) end();
  }

  /** Open subscriptions (for tests and metrics). */
  get subscriptionCount(): number {
    return this.subscriptions.size;
  }

  /** Stream sessions with work in flight (for tests: it returns to 0 when idle). */
  get lockCount(): number {
    return this.locks.size;
  }

  private async runSweep(): Promise<SweepReport> {
    const report = { clientsExpired: 0, batchesStalled: 0, sessionsEnded: 0 };
    const due = await this.store.dueWork(this.clock.now(), SWEEP_BATCH);
    for (const work of due) await this.act(work, report);
    return report;
  }

  private async act(work: DueWork, report: { -readonly [K in keyof SweepReport]: number }) {
    const id = work.streamSessionId;
    switch (work.kind) {
      case 'clientExpired':
        if (
          await this.change(
            id,
            () => this.store.expireClient(id, work.sessionId, this.clock.now()),
            (expired) =>
              expired && { type: 'clientExpired', streamSessionId: id, sessionId: work.sessionId },
          )
        ) {
          report.clientsExpired++;
        }
        return;
      case 'batchStalled':
        if (
          await this.change(
            id,
            () => this.store.stallBatch(id, work.batchNumber, this.clock.now()),
            (stalled) =>
              stalled && {
                type: 'batchStalled',
                streamSessionId: id,
                batchNumber: work.batchNumber,
              },
          )
        ) {
          report.batchesStalled++;
        }
        return;
      case 'sessionIdle': {
        const ended = await this.exclusive(id, async () => {
          const done = await this.store.endIdleSession(id, this.clock.now());
          if (done) this.publishEnded(id, StreamSessionEndReason.IDLE);
          return done;
        });
        if (ended) report.sessionsEnded++;
        return;
      }
    }
  }

  /**
   * A subscription over the event bus. `select` picks and shapes the events
   * it wants. `replayFirst` runs once listening has begun and replays what a
   * new subscriber must see first, at the reader's pace; live events that
   * arrive meanwhile are held, then delivered if `isFresh` keeps them.
   * `onDelivered` is told of each live event handed to the subscriber.
   */
  private subscribe<T>(
    select: (message: CoordinatorEvent) => T | undefined,
    replayFirst: (replay: (event: T) => Promise<unknown>) => Promise<void> = async () => {},
    isFresh: (event: T) => boolean = () => true,
    onDelivered?: (event: T) => void,
  ): AsyncIterableIterator<T> {
    const limit = this.maxQueuedEvents;
    // The buffer is the subscriber's queue: it fills only while the reader lags.
    const queue = new FixedBuffer(limit);
    return new Repeater<T>(async (push, stop) => {
      if (this.closed) return stop();
      const tooSlow = () => stop(new SlowSubscriberError(limit));
      const deliver = (event: T) => {
        if (!isFresh(event)) return;
        if (queue.full) return tooSlow();
        void push(event);
        onDelivered?.(event);
      };
      let held: T[] | null = [];
      const unsubscribe = this.events.subscribe((message) => {
        const event = select(message);
        if (event === undefined) return;
        if (held === null) deliver(event);
        else if (held.length >= limit) tooSlow();
        else held.push(event);
      });
      const end = () => stop();
      this.subscriptions.add(end);
      try {
        // Awaiting each push lets a reader take a replay larger than its queue.
        await replayFirst((event) => push(event));
        for (const event of held) deliver(event);
        held = null;
      } catch (error) {
        stop(error);
      }
      await stop;
      unsubscribe();
      this.subscriptions.delete(end);
    }, queue);
  }

  /** Every stream session (or the one named), oldest first, for a new subscriber. */
  private async currentStreamSessions(
    streamSessionId?: string | null,
  ): Promise<StreamSessionView[]> {
    if (streamSessionId != null) {
      const session = await this.store.getStreamSession(streamSessionId);
      return session === null ? [] : [session];
    }
    const sessions: StreamSessionView[] = [];
    for (let offset = 0; ; offset += SESSIONS_PAGE) {
      const page = await this.store.listStreamSessions(SESSIONS_PAGE, offset);
      sessions.push(...page);
      if (page.length < SESSIONS_PAGE) return sessions;
    }
  }

  private publishEnded(id: string, reason: StreamSessionEndReason): void {
    this.report({ type: 'streamSessionEnded', streamSessionId: id, reason });
    if (this.store.publishesEvents) return;
    this.events.publish({
      type: 'streamSessionEnded',
      event: { id, reason, endedAt: this.clock.now() },
    });
  }

  /**
   * Runs a change under the session's mutex and publishes what it announced,
   * then that the session changed (just its id: this runs on every position
   * update, so no view is built here). A store whose changes are synchronous
   * needs no mutex: the change and its publishing run in one turn of the
   * event loop, and nothing else can run between them.
   */
  private change<T>(
    streamSessionId: string,
    run: () => MaybePromise<Change<T>>,
    describe?: (result: T) => Activity | false,
  ): Promise<T> {
    try {
      const result = this.changeNow(streamSessionId, run, describe);
      return result instanceof Promise ? result : Promise.resolve(result);
    } catch (error) {
      return Promise.reject(error);
    }
  }

  /**
   * change(), answering at once (or throwing) when the store's change is
   * synchronous: no promise is made at all on that path.
   */
  private changeNow<T>(
    streamSessionId: string,
    run: () => MaybePromise<Change<T>>,
    describe?: (result: T) => Activity | false,
  ): MaybePromise<T> {
    if (this.store.synchronousChanges) {
      const change = run();
      return change instanceof Promise
        ? change.then((done) => this.announce(streamSessionId, done, describe))
        : this.announce(streamSessionId, change, describe);
    }
    return this.exclusive(streamSessionId, async () =>
      this.announce(streamSessionId, await run(), describe),
    );
  }

  /**
   * Publishes what a change announced, unless the store did (Redis), tells
   * the observer what it did, and returns its result.
   */
  private announce<T>(
    streamSessionId: string,
    change: Change<T>,
    describe?: (result: T) => Activity | false,
  ): T {
    const { result, announcement } = change;
    // A store that publishes its own events (Redis) does so in the change's atomic step.
    if (!this.store.publishesEvents) {
      if (announcement !== null) {
        this.events.publish({ type: 'batchNeeded', event: announcement });
      }
      // A result of false is a change that found nothing to do (no such client, not due).
      if (result !== false) {
        this.events.publish({ type: 'streamSessionChanged', event: { id: streamSessionId } });
      }
    }
    if (this.onActivity !== null) this.reportChange(streamSessionId, change, describe);
    return result;
  }

  /** Tells the observer what a change did, then the need it announced (in that order). */
  private reportChange<T>(
    streamSessionId: string,
    { result, announcement, announced, repeated }: Change<T>,
    describe?: (result: T) => Activity | false,
  ): void {
    const activity = describe !== undefined && repeated !== true && describe(result);
    if (activity) this.report(activity);
    const need = announcement ?? announced;
    if (need == null) return;
    this.report({
      type: 'batchNeeded',
      streamSessionId,
      reason: need.reason,
      batchNumber: need.batchNumber,
      startSegment: need.startSegment,
      endSegment: need.endSegment,
      furthestSegment: need.furthestSegment,
    });
  }

  /** An observer's failure is reported, never thrown into the change that caused it. */
  private report(activity: Activity): void {
    if (this.onActivity === null) return;
    try {
      this.onActivity(activity);
    } catch (error) {
      this.onError(error, 'activity');
    }
  }

  private async exclusive<T>(streamSessionId: string, run: () => Promise<T>): Promise<T> {
    if (this.store.synchronousChanges) return run();
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
}
