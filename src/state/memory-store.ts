import { ConflictError, streamSessionNotFound } from './errors.js';
import type { EventBus } from './events.js';
import { message } from './messages.js';
import {
  type BatchNeed,
  type BatchNeededEvent,
  type BatchState,
  type ClientPosition,
  type Instant,
  type ReleaseSegmentsInput,
  type SetCurrentBatchInput,
  StreamSessionEndReason,
  type StreamSessionSettings,
  type StreamSessionView,
  type UpdateClientPositionInput,
} from './model.js';
import type { Change, DueWork, MaybePromise, StreamSessionStore, Timeouts } from './store.js';
import {
  type ClientSlot,
  StreamSession,
  type StreamSessionState,
  stallBase,
  toPosition,
} from './stream-session.js';

/** The whole of a memory store as plain data: what a snapshot file holds. */
export interface MemoryStoreSnapshot {
  readonly version: 2;
  readonly savedAt: Instant;
  /** Oldest first. */
  readonly sessions: ReadonlyArray<
    StreamSessionState & {
      /** Since when the session has had no clients; null while it has some. */
      readonly idleSince?: Instant | null;
    }
  >;
}

/**
 * The embedded store: every stream session in this process's memory. Its
 * changes run synchronously to completion and publish their events on the
 * bus before they return, so each change and its events are one atomic step.
 *
 * Deadlines cost nothing until they pass: clients, claims and empty
 * sessions each sit in an insertion-ordered index that a change moves to
 * the back, so the front holds the oldest, and a sweep reads only the front
 * entries that are due (the timeouts are the same for all, so insertion
 * order is deadline order).
 */
export class MemoryStore implements StreamSessionStore {
  // A Map iterates in insertion order: oldest first, as the contract lists them.
  private readonly sessions = new Map<string, StreamSession>();
  /** Every client, least recently updated first. */
  private readonly clientsByAge = new Set<ClientSlot>();
  /** Batches in flight ("<id>\n<batchNumber>"), and when each stalls. */
  private readonly claimDeadlines = new Map<string, ClaimDeadline>();
  /** Sessions without clients, and since when. */
  private readonly idleSince = new Map<StreamSession, Instant>();

  constructor(
    private readonly timeouts: Timeouts,
    private readonly events: EventBus,
  ) {}

  /** Replaces everything with what a snapshot saved (before serving). */
  load(snapshot: MemoryStoreSnapshot): void {
    this.sessions.clear();
    this.clientsByAge.clear();
    this.claimDeadlines.clear();
    this.idleSince.clear();
    const slots: ClientSlot[] = [];
    const claims: ClaimDeadline[] = [];
    const idle: Array<[StreamSession, Instant]> = [];
    for (const state of snapshot.sessions) {
      const session = StreamSession.restore(state);
      this.sessions.set(session.id, session);
      slots.push(...session.clientSlots());
      for (const batch of session.batchRecords()) {
        if (batch.isComplete) continue;
        const since = stallBase(batch);
        claims.push({
          session,
          batchNumber: batch.batchNumber,
          deadline: since + this.timeouts.batchTimeout,
        });
      }
      if (session.clientCount === 0) idle.push([session, state.idleSince ?? session.updatedAt]);
    }
    // The indexes must be in deadline order, as if built change by change.
    for (const slot of slots.sort((a, b) => a.lastUpdated - b.lastUpdated)) {
      this.clientsByAge.add(slot);
    }
    for (const claim of claims.sort((a, b) => a.deadline - b.deadline)) {
      this.claimDeadlines.set(claimKey(claim.session, claim.batchNumber), claim);
    }
    for (const [session, since] of idle.sort((a, b) => a[1] - b[1])) {
      this.idleSince.set(session, since);
    }
  }

  /** Everything, as plain data. */
  snapshot(now: Instant): MemoryStoreSnapshot {
    return {
      version: 2,
      savedAt: now,
      sessions: [...this.sessions.values()].map((s) => ({
        ...s.state(),
        idleSince: this.idleSince.get(s) ?? null,
      })),
    };
  }

  createStreamSession(
    settings: StreamSessionSettings,
    now: Instant,
  ): MaybePromise<Change<StreamSessionView>> {
    if (this.sessions.has(settings.id)) {
      throw new ConflictError(message('streamSessionExists', { id: settings.id }));
    }
    const session = StreamSession.create(settings, now);
    this.sessions.set(settings.id, session);
    this.idleSince.set(session, now);
    return this.changed(session, session.view());
  }

  endStreamSession(id: string, now: Instant): MaybePromise<Change<boolean>> {
    return this.end(id, StreamSessionEndReason.ENDED, now);
  }

  private end(id: string, reason: StreamSessionEndReason, now: Instant): Change<boolean> {
    const session = this.sessions.get(id);
    if (session === undefined) return NOTHING_DONE;
    this.sessions.delete(id);
    for (const slot of session.clientSlots()) this.clientsByAge.delete(slot);
    for (const batch of session.batchRecords()) {
      this.claimDeadlines.delete(claimKey(session, batch.batchNumber));
    }
    this.idleSince.delete(session);
    this.events.publish({ type: 'streamSessionEnded', event: { id, reason, endedAt: now } });
    return DONE;
  }

  updateClientPosition(
    input: UpdateClientPositionInput,
    now: Instant,
  ): MaybePromise<Change<ClientPosition>> {
    const session = this.require(input.streamSessionId);
    const slot = session.updateClientPosition(
      input.sessionId,
      input.segmentNumber,
      input.quality,
      now,
    );
    // To the back of the expiry order: it is now the most recently heard.
    this.clientsByAge.delete(slot);
    this.clientsByAge.add(slot);
    if (session.clientCount === 1) this.idleSince.delete(session);
    return this.changed(session, toPosition(slot));
  }

  removeClient(
    streamSessionId: string,
    sessionId: string,
    now: Instant,
  ): MaybePromise<Change<boolean>> {
    const session = this.require(streamSessionId);
    const slot = session.removeClient(sessionId, now);
    if (slot === undefined) return NOTHING_DONE;
    this.clientsByAge.delete(slot);
    if (session.clientCount === 0) this.idleSince.set(session, now);
    return this.changed(session, true);
  }

  setCurrentBatch(input: SetCurrentBatchInput, now: Instant): MaybePromise<Change<BatchState>> {
    const session = this.require(input.streamSessionId);
    const result = session.setCurrentBatch(input, now);
    // To the back: every claim's deadline is now + the same timeout.
    const key = claimKey(session, result.batchNumber);
    this.claimDeadlines.delete(key);
    this.claimDeadlines.set(key, {
      session,
      batchNumber: result.batchNumber,
      deadline: now + this.timeouts.batchTimeout,
    });
    return this.changed(session, result);
  }

  completeBatch(
    streamSessionId: string,
    batchNumber: number,
    now: Instant,
  ): MaybePromise<Change<BatchState>> {
    const session = this.require(streamSessionId);
    const result = session.completeBatch(batchNumber, now);
    const key = claimKey(session, batchNumber);
    if (!this.claimDeadlines.has(key)) return { result, announced: NONE, repeated: true };
    this.claimDeadlines.delete(key);
    return this.changed(session, result);
  }

  renewBatchClaim(
    streamSessionId: string,
    batchNumber: number,
    now: Instant,
  ): MaybePromise<Change<BatchState>> {
    const session = this.require(streamSessionId);
    const result = session.renewClaim(batchNumber, now);
    // To the back, like a claim: its deadline is now + the same timeout.
    const key = claimKey(session, batchNumber);
    this.claimDeadlines.delete(key);
    this.claimDeadlines.set(key, {
      session,
      batchNumber,
      deadline: now + this.timeouts.batchTimeout,
    });
    // Nothing a reader sees changed: no event.
    return { result, announced: NONE };
  }

  releaseSegments(input: ReleaseSegmentsInput, now: Instant): MaybePromise<Change<boolean>> {
    const session = this.require(input.streamSessionId);
    if (!session.releaseSegments(input, now)) return NOTHING_DONE;
    return this.changed(session, true);
  }

  async getStreamSession(id: string): Promise<StreamSessionView | null> {
    return this.sessions.get(id)?.view() ?? null;
  }

  async listStreamSessions(limit: number, offset: number): Promise<StreamSessionView[]> {
    const page: StreamSessionView[] = [];
    let index = 0;
    for (const session of this.sessions.values()) {
      if (page.length >= limit) break;
      if (index++ >= offset) page.push(session.view());
    }
    return page;
  }

  async pendingNeeds(streamSessionId?: string): Promise<BatchNeededEvent[]> {
    const sessions =
      streamSessionId === undefined
        ? this.sessions.values()
        : [this.sessions.get(streamSessionId)].filter((s) => s !== undefined);
    const needs: BatchNeededEvent[] = [];
    for (const session of sessions) {
      const pending = session.pendingNeeds();
      if (pending.length === 0) continue;
      const view = session.view();
      // As announced, but with the furthest client now (the contract: null
      // for FIRST_BATCH only while no client has reported).
      const furthestSegment = view.furthestSegment;
      for (const need of pending) needs.push({ ...need, furthestSegment, streamSession: view });
    }
    return needs;
  }

  async dueWork(now: Instant, limit: number): Promise<DueWork[]> {
    const due: DueWork[] = [];
    const { clientTimeout, idleTimeout } = this.timeouts;
    for (const claim of this.claimDeadlines.values()) {
      if (due.length >= limit || claim.deadline > now) break;
      due.push({
        kind: 'batchStalled',
        streamSessionId: claim.session.id,
        batchNumber: claim.batchNumber,
      });
    }
    for (const slot of this.clientsByAge) {
      if (due.length >= limit || slot.lastUpdated + clientTimeout > now) break;
      due.push({
        kind: 'clientExpired',
        streamSessionId: slot.streamSession.id,
        sessionId: slot.sessionId,
      });
    }
    for (const [session, since] of this.idleSince) {
      if (due.length >= limit || since + idleTimeout > now) break;
      due.push({ kind: 'sessionIdle', streamSessionId: session.id });
    }
    return due;
  }

  expireClient(
    streamSessionId: string,
    sessionId: string,
    now: Instant,
  ): MaybePromise<Change<boolean>> {
    const slot = this.sessions.get(streamSessionId)?.getClient(sessionId);
    if (slot === undefined || slot.lastUpdated + this.timeouts.clientTimeout > now) {
      return NOTHING_DONE;
    }
    return this.removeClient(streamSessionId, sessionId, now);
  }

  stallBatch(
    streamSessionId: string,
    batchNumber: number,
    now: Instant,
  ): MaybePromise<Change<boolean>> {
    const session = this.sessions.get(streamSessionId);
    if (session === undefined) return NOTHING_DONE;
    const key = claimKey(session, batchNumber);
    const claim = this.claimDeadlines.get(key);
    if (claim === undefined || claim.deadline > now || !session.markStalled(batchNumber, now)) {
      return NOTHING_DONE;
    }
    // Stalled again if nobody re-claims it within another timeout.
    this.claimDeadlines.delete(key);
    this.claimDeadlines.set(key, { ...claim, deadline: now + this.timeouts.batchTimeout });
    return this.changed(session, true);
  }

  endIdleSession(streamSessionId: string, now: Instant): MaybePromise<Change<boolean>> {
    const session = this.sessions.get(streamSessionId);
    const since = session && this.idleSince.get(session);
    if (since === undefined || since + this.timeouts.idleTimeout > now) return NOTHING_DONE;
    return this.end(streamSessionId, StreamSessionEndReason.IDLE, now);
  }

  async countClients(): Promise<number> {
    return this.clientsByAge.size;
  }

  async countStreamSessions(): Promise<number> {
    return this.sessions.size;
  }

  async isReady(): Promise<boolean> {
    return true;
  }

  async close(): Promise<void> {}

  /** How many sessions it holds (for tests and metrics). */
  get size(): number {
    return this.sessions.size;
  }

  /** How many clients it holds across all sessions. */
  get clientCount(): number {
    return this.clientsByAge.size;
  }

  /**
   * After a change to a session: publishes the needs it announced (each
   * once), then that the session changed (just its id: this runs on every
   * position update, so no view is built for it).
   */
  private changed<T>(session: StreamSession, result: T): Change<T> {
    const announced = session.takeAnnounced();
    if (announced.length > 0) {
      const view = session.view();
      for (const need of announced) {
        this.events.publish({ type: 'batchNeeded', event: { ...need, streamSession: view } });
      }
    }
    this.events.publish({ type: 'streamSessionChanged', event: { id: session.id } });
    return { result, announced: announced.length > 0 ? announced : NONE };
  }

  private require(id: string): StreamSession {
    const session = this.sessions.get(id);
    if (session === undefined) throw streamSessionNotFound(id);
    return session;
  }
}

const NONE: readonly BatchNeed[] = Object.freeze([]);
/** A change that found nothing to do (no such client, not due): nothing to publish. */
const NOTHING_DONE: Change<boolean> = Object.freeze({ result: false, announced: NONE });
/** A change done that announces no need (an ending). */
const DONE: Change<boolean> = Object.freeze({ result: true, announced: NONE });

/** When a batch in flight stalls. */
interface ClaimDeadline {
  readonly session: StreamSession;
  readonly batchNumber: number;
  readonly deadline: Instant;
}

function claimKey(session: StreamSession, batchNumber: number): string {
  return `${session.id}\n${batchNumber}`;
}
