import type {
  BatchNeed,
  BatchNeededEvent,
  BatchState,
  ClientPosition,
  Instant,
  SetCurrentBatchInput,
  StreamSessionSettings,
  StreamSessionView,
  UpdateClientPositionInput,
} from './model.js';

/**
 * What a change did, and the need it made the session announce (if any).
 * The store decides the announcement in the same atomic step as the change,
 * so that a need is announced once however many instances share the store.
 */
export interface Change<T> {
  readonly result: T;
  readonly announcement: BatchNeededEvent | null;
  /**
   * The need a store that publishes its own events announced (its
   * `announcement` is then null), so that the coordinator can tell its
   * observer of it all the same. Unset by stores that return `announcement`.
   */
  readonly announced?: BatchNeed | null;
  /** True when the change had already been made (completing a complete batch again). */
  readonly repeated?: boolean;
}

/** A value, or a promise of it: what a store that may be remote returns. */
export type MaybePromise<T> = T | Promise<T>;

/** How long things may wait before the sweeper acts, in milliseconds. */
export interface Timeouts {
  /** A claimed batch not completed within this is STALLED. */
  readonly batchTimeout: number;
  /** A client that has not reported within this leaves its session. */
  readonly clientTimeout: number;
  /** A session without clients for this long ends. */
  readonly idleTimeout: number;
}

/** One thing whose deadline has passed, for the sweeper to act on. */
export type DueWork =
  | { readonly kind: 'clientExpired'; readonly streamSessionId: string; readonly sessionId: string }
  | {
      readonly kind: 'batchStalled';
      readonly streamSessionId: string;
      readonly batchNumber: number;
    }
  | { readonly kind: 'sessionIdle'; readonly streamSessionId: string };

/**
 * Where stream sessions live. Reads are async so that a store on another
 * machine (Redis) fits behind it; changes may be async too, and each change
 * is atomic on its own. Callers serialise changes to one stream session (the
 * coordinator's mutex), and a store must still be correct when other
 * processes change it too. A store whose changes all finish before they
 * return (the embedded one) says so with `synchronousChanges` and returns
 * plain values: nothing can run between such a change and the publishing of
 * its events, so the coordinator needs no lock for it.
 *
 * Errors: NotFoundError for an unknown stream session, ConflictError for a
 * change the session's state refuses; nothing changes when either is thrown.
 */
export interface StreamSessionStore {
  /**
   * True when the store publishes the events its changes cause itself, in
   * the same atomic step (Redis: PUBLISH inside the script), so that no
   * announcement is lost between a change and its event; the coordinator
   * then publishes none, and the announcements it gets back are null.
   */
  readonly publishesEvents: boolean;
  /**
   * True when every change method returns its Change itself (or throws),
   * never a promise: the change, its decision and its events then happen in
   * one turn of the event loop.
   */
  readonly synchronousChanges: boolean;
  /** ConflictError when the id is taken. */
  createStreamSession(
    settings: StreamSessionSettings,
    now: Instant,
  ): MaybePromise<Change<StreamSessionView>>;
  /** True when the session existed; its clients and batch go with it. */
  endStreamSession(id: string, now: Instant): MaybePromise<boolean>;
  updateClientPosition(
    input: UpdateClientPositionInput,
    now: Instant,
  ): MaybePromise<Change<ClientPosition>>;
  removeClient(
    streamSessionId: string,
    sessionId: string,
    now: Instant,
  ): MaybePromise<Change<boolean>>;
  setCurrentBatch(input: SetCurrentBatchInput, now: Instant): MaybePromise<Change<BatchState>>;
  completeBatch(
    streamSessionId: string,
    batchNumber: number,
    now: Instant,
  ): MaybePromise<Change<BatchState>>;

  getStreamSession(id: string): Promise<StreamSessionView | null>;
  /** Oldest first. */
  listStreamSessions(limit: number, offset: number): Promise<StreamSessionView[]>;
  /** The need every session (or the one named) has now, with its latest sequence. */
  pendingNeeds(streamSessionId?: string): Promise<BatchNeededEvent[]>;
  /**
   * What is due at `now` (at most `limit` items), oldest first. Costs
   * O(what is due), never O(what exists). Items stay due until acted on.
   */
  dueWork(now: Instant, limit: number): Promise<DueWork[]>;
  /** Removes the client if it is still silent past the client timeout. */
  expireClient(
    streamSessionId: string,
    sessionId: string,
    now: Instant,
  ): MaybePromise<Change<boolean>>;
  /**
   * Declares the batch stalled if it is still the current, incomplete batch
   * past its deadline, announces STALLED and sets the next deadline.
   */
  stallBatch(
    streamSessionId: string,
    batchNumber: number,
    now: Instant,
  ): MaybePromise<Change<boolean>>;
  /** Ends the session if it is still without clients past the idle timeout. */
  endIdleSession(streamSessionId: string, now: Instant): MaybePromise<boolean>;

  /** How many clients all sessions hold (metrics; tests check the indexes agree). */
  countClients(): Promise<number>;
  /** How many stream sessions are live (metrics). */
  countStreamSessions(): Promise<number>;
  /** True while the store answers. */
  isReady(): Promise<boolean>;
  close(): Promise<void>;
}
