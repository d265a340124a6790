import type {
  BatchNeed,
  BatchNeededEvent,
  BatchState,
  ClientPosition,
  Instant,
  ReleaseSegmentsInput,
  SetCurrentBatchInput,
  StreamSessionSettings,
  StreamSessionView,
  UpdateClientPositionInput,
} from './model.js';

/**
 * What a change did, and the need it made the session announce (if any).
 * The store decides the need and publishes every event the change causes
 * (batchNeeded, streamSessionChanged, streamSessionEnded) on its event bus
 * in the same atomic step as the change, so that a need is announced once
 * however many instances share the store, and no change loses its event.
 */
export interface Change<T> {
  readonly result: T;
  /** The needs this change announced (already published), in announcement order. */
  readonly announced: readonly BatchNeed[];
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
 * Where stream sessions live. Each change is atomic on its own, decides the
 * need it causes, and publishes its events on the store's event bus (the
 * one createStore pairs it with) before anything else can change that
 * session: the embedded store by running to completion in one turn of the
 * event loop (it returns plain values), a remote one (Redis) inside one
 * script. So callers need no lock of their own, and a store stays correct
 * while other processes change it too.
 *
 * Errors: NotFoundError for an unknown stream session, ConflictError for a
 * change the session's state refuses; nothing changes when either is thrown.
 */
export interface StreamSessionStore {
  /** ConflictError when the id is taken. */
  createStreamSession(
    settings: StreamSessionSettings,
    now: Instant,
  ): MaybePromise<Change<StreamSessionView>>;
  /** True when the session existed; its clients and batch go with it (streamSessionEnded, ENDED). */
  endStreamSession(id: string, now: Instant): MaybePromise<Change<boolean>>;
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
  /** The batch's encoder is still at work: it stalls a batch timeout from now. Announces nothing. */
  renewBatchClaim(
    streamSessionId: string,
    batchNumber: number,
    now: Instant,
  ): MaybePromise<Change<BatchState>>;
  /** True when any made segment was in the range. */
  releaseSegments(input: ReleaseSegmentsInput, now: Instant): MaybePromise<Change<boolean>>;

  getStreamSession(id: string): Promise<StreamSessionView | null>;
  /** Oldest first. */
  listStreamSessions(limit: number, offset: number): Promise<StreamSessionView[]>;
  /** The needs pending in every session (or the one named), each as announced, in announcement order per session. */
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
   * Declares the batch stalled if it is still in flight past its deadline,
   * announces STALLED and sets its next deadline.
   */
  stallBatch(
    streamSessionId: string,
    batchNumber: number,
    now: Instant,
  ): MaybePromise<Change<boolean>>;
  /** Ends the session if it is still without clients past the idle timeout (IDLE). */
  endIdleSession(streamSessionId: string, now: Instant): MaybePromise<Change<boolean>>;

  /** How many clients all sessions hold (metrics; tests check the indexes agree). */
  countClients(): Promise<number>;
  /** How many stream sessions are live (metrics). */
  countStreamSessions(): Promise<number>;
  /** True while the store answers. */
  isReady(): Promise<boolean>;
  close(): Promise<void>;
}
