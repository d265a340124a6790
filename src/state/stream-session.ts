import { shouldGenerateNextBatch } from './batch-need.js';
import {
  addSpan,
  type CoverageInput,
  type CoveragePiece,
  evaluate,
  type MergedRange,
  mergeCoverage,
  needEnd,
  overlaps,
  type PendingSpan,
  REASON_ORDER,
  removeSpan,
  type Span,
  shareQuality,
  sortQualities,
  type Verdict,
} from './coverage.js';
import { ConflictError, InvalidInputError } from './errors.js';
import { message } from './messages.js';
import {
  type BatchNeed,
  BatchNeededReason,
  type BatchState,
  type ClientPosition,
  type CoveredRange,
  type Instant,
  QUALITIES,
  type Quality,
  type ReleaseSegmentsInput,
  type SetCurrentBatchInput,
  type StreamSessionSettings,
  type StreamSessionView,
} from './model.js';
import { SegmentTally } from './segment-tally.js';

/**
 * One client's place, kept as one mutable record per client so that a
 * heartbeat allocates nothing. Stores may index clients by it (the memory
 * store keeps them in expiry order); `view()` copies them.
 */
export interface ClientSlot {
  readonly sessionId: string;
  segmentNumber: number;
  quality: Quality;
  lastUpdated: Instant;
  /**
   * The hot path: while the client stays within [lo, hi] in the same
   * rendition it is served by what is made or in flight, and a move costs
   * nothing but storing it. Empty (lo > hi) when it depends on pending needs.
   */
  lo: number;
  hi: number;
  readonly streamSession: StreamSession;
}

/** lo > hi: no safe range (the client relies on pending needs, or is new). */
const EMPTY_LO = 1;
const EMPTY_HI = 0;

/**
 * A client's record. Its lastUpdated is kept as milliseconds since its
 * session's creation, a small integer (31 bits: about 24 days) that V8 keeps
 * in the record itself; an epoch instant is a double, which V8 boxes in a heap
 * number of its own, 16 bytes more per client. Past 24 days it still works,
 * boxed.
 */
class Slot implements ClientSlot {
  private heard: number;

  constructor(
    readonly sessionId: string,
    public segmentNumber: number,
    public quality: Quality,
    lastUpdated: Instant,
    readonly streamSession: StreamSession,
    public lo = EMPTY_LO,
    public hi = EMPTY_HI,
  ) {
    this.heard = since(lastUpdated, streamSession.createdAt);
  }

  get lastUpdated(): Instant {
    return this.heard + this.streamSession.createdAt;
  }

  set lastUpdated(now: Instant) {
    this.heard = since(now, this.streamSession.createdAt);
  }
}

/** `instant - base`, as a small integer when it fits in 31 bits (V8 keeps those unboxed). */
function since(instant: Instant, base: Instant): number {
  const offset = instant - base;
  return offset === (offset | 0) ? offset | 0 : offset;
}

/** A need announced and not yet claimed. Never changes once announced. */
export interface PendingNeed extends BatchNeed {
  /** Its place among the session's announcements: 1, 2, ... */
  readonly sequence: number;
}

/** A batch of the session, with what the sweeper needs to know of it. */
export interface BatchRecord extends BatchState {
  /** Times it stalled since it was last claimed. */
  readonly stalls: number;
  /** When it last stalled (its next stall is a batch timeout after); null when it has not since its claim. */
  readonly stalledAt: Instant | null;
  /** When its encoder last renewed the claim (it stalls a batch timeout after); absent when never. */
  readonly renewedAt?: Instant;
}

/** What a StreamSession holds, as plain data (snapshots, other stores). */
export interface StreamSessionState {
  readonly settings: StreamSessionSettings;
  readonly createdAt: Instant;
  readonly updatedAt: Instant;
  readonly currentBatch: BatchState | null;
  /** Batches in flight, and complete ones not wholly released, by batchNumber. */
  readonly batches: readonly BatchRecord[];
  /** Segments of completed batches not released, per rendition. */
  readonly made: readonly CoveredRange[];
  /** Needs announced and not yet claimed, in announcement order. */
  readonly needs: readonly PendingNeed[];
  /** 1 + the highest batch number ever claimed (0 before the first claim). */
  readonly claimedHigh: number;
  /** How many needs were announced: the sequence of the latest. */
  readonly announcements: number;
  readonly clients: readonly ClientPosition[];
}

/**
 * One playback of one video, shared by every client watching it: its
 * batches, what they cover in each rendition, the needs pending, every
 * client's position, and what follows from them (contract v2).
 *
 * Synchronous and single-owner: its one caller, the memory store, runs each
 * change to completion, so nothing interleaves. A position update that stays
 * within the client's safe range costs O(log distinct segments); one that
 * leaves it is decided in O(log ranges). A claim, completion or release
 * re-decides the clients of the renditions it touches, O(clients).
 */
export class StreamSession {
  private readonly batchMap = new Map<number, BatchRecord>();
  private current: BatchState | null = null;
  private readonly made = new Map<Quality, Span[]>();
  /** Pending needs by batchNumber (announcement order is their sequence). */
  private readonly needs = new Map<number, PendingNeed>();
  /** How many clients rely on each pending need. */
  private readonly needClients = new Map<number, number>();
  /** Clients that rely on pending needs, and on which. */
  private readonly dependents = new Map<string, readonly number[]>();
  private claimedHigh = 0;
  private announcements = 0;
  private readonly clients = new Map<string, ClientSlot>();
  private readonly segments = new SegmentTally();
  private lastChange: Instant;
  /** Needs announced by the change under way, for the store to publish. */
  private outbox: PendingNeed[] = [];
  /**
   * Merged coverage per rendition, without and with pending needs (index
   * 2 * QUALITIES.indexOf(q) + (withPending ? 1 : 0)), built on first use
   * within one change and dropped at its end (settle, view): a session has
   * few ranges, and kept between changes they cost more than its clients.
   */
  private mergedCache: Array<readonly MergedRange[] | undefined> | null = null;
  private readonly rules: CoverageInput;

  constructor(
    readonly settings: StreamSessionSettings,
    readonly createdAt: Instant,
  ) {
    this.lastChange = createdAt;
    this.rules = {
      threshold: settings.threshold,
      batchSize: settings.batchSize,
      lastSegment: settings.lastSegment,
      merged: (quality, withPending, without) => this.merged(quality, withPending, without),
      pendingNeeds: (quality) => this.pendingSpans(quality),
    };
  }

  /** A new session: FIRST_BATCH is announced at once (take it with takeAnnounced). */
  static create(settings: StreamSessionSettings, now: Instant): StreamSession {
    const session = new StreamSession(settings, now);
    session.announce(
      BatchNeededReason.FIRST_BATCH,
      0,
      settings.startSegment,
      needEnd(session.rules, settings.startSegment, settings.qualities),
      settings.qualities,
    );
    session.mergedCache = null;
    return session;
  }

  /** Rebuilds a session from its plain state (a snapshot). Announces nothing. */
  static restore(state: StreamSessionState): StreamSession {
    const session = new StreamSession(state.settings, state.createdAt);
    for (const batch of state.batches) session.batchMap.set(batch.batchNumber, batch);
    for (const range of state.made) {
      session.made.set(
        range.quality,
        addSpan(session.made.get(range.quality) ?? [], range.startSegment, range.endSegment),
      );
    }
    for (const need of state.needs) session.needs.set(need.batchNumber, need);
    session.current = state.currentBatch;
    session.claimedHigh = state.claimedHigh;
    session.announcements = state.announcements;
    for (const client of state.clients) {
      const slot = new Slot(
        client.sessionId,
        client.segmentNumber,
        client.quality,
        client.lastUpdated,
        session,
      );
      session.clients.set(slot.sessionId, slot);
      session.segments.add(slot.segmentNumber);
      // Who relies on what is derived, not saved; an unserved client is
      // decided on its next report.
      const verdict = evaluate(session.rules, slot.segmentNumber, slot.quality);
      if (verdict.served) session.attach(slot, verdict);
    }
    session.lastChange = state.updatedAt;
    session.mergedCache = null;
    return session;
  }

  get id(): string {
    return this.settings.id;
  }

  get updatedAt(): Instant {
    return this.lastChange;
  }

  /** The batch claimed most recently. */
  get currentBatch(): BatchState | null {
    return this.current;
  }

  /** True when the current batch stalled and was not claimed again or completed since. */
  get isStalled(): boolean {
    const current = this.current;
    return current !== null && (this.batchMap.get(current.batchNumber)?.stalls ?? 0) > 0;
  }

  /** The highest segment among the clients now; null when there are none. */
  get furthestSegment(): number | null {
    return this.segments.max;
  }

  /** The lowest segment among the clients now; null when there are none. */
  get slowestSegment(): number | null {
    return this.segments.min;
  }

  get clientCount(): number {
    return this.clients.size;
  }

  getClient(sessionId: string): ClientSlot | undefined {
    return this.clients.get(sessionId);
  }

  /** Every client's record, in no particular order. */
  clientSlots(): IterableIterator<ClientSlot> {
    return this.clients.values();
  }

  /** Batches in flight and complete ones not released, by batchNumber. */
  batchRecords(): BatchRecord[] {
    return [...this.batchMap.values()].sort((a, b) => a.batchNumber - b.batchNumber);
  }

  /** Needs announced and not claimed, in announcement order. */
  pendingNeeds(): PendingNeed[] {
    return [...this.needs.values()].sort((a, b) => a.sequence - b.sequence);
  }

  /** The needs announced by the change just made, once; the store publishes them. */
  takeAnnounced(): PendingNeed[] {
    const out = this.outbox;
    if (out.length > 0) this.outbox = [];
    return out;
  }

  shouldGenerateNextBatch(): boolean {
    return shouldGenerateNextBatch(this.current, this.furthestSegment, this.settings.threshold);
  }

  /**
   * Creates or moves a client's position, then decides its need. Most moves
   * stay within the client's safe range and end at storing it.
   */
  updateClientPosition(
    sessionId: string,
    segmentNumber: number,
    quality: Quality,
    now: Instant,
  ): ClientSlot {
    const last = this.settings.lastSegment;
    if (last !== null && segmentNumber > last) {
      throw new InvalidInputError(
        message('pastLastSegment', { id: this.id, segmentNumber, lastSegment: last }),
      );
    }
    let slot = this.clients.get(sessionId);
    this.lastChange = now;
    if (slot === undefined) {
      slot = new Slot(sessionId, segmentNumber, quality, now, this);
      this.clients.set(sessionId, slot);
      this.segments.add(segmentNumber);
    } else {
      this.segments.move(slot.segmentNumber, segmentNumber);
      slot.segmentNumber = segmentNumber;
      slot.lastUpdated = now;
      // The hot path: still inside its safe range, in the same rendition.
      if (slot.quality === quality && segmentNumber >= slot.lo && segmentNumber <= slot.hi) {
        return slot;
      }
      slot.quality = quality;
    }
    this.settle([slot]);
    return slot;
  }

  /** Removes a client; returns its record, or undefined when it was not there. */
  removeClient(sessionId: string, now: Instant): ClientSlot | undefined {
    const slot = this.clients.get(sessionId);
    if (slot === undefined) return undefined;
    this.clients.delete(sessionId);
    this.segments.remove(slot.segmentNumber);
    this.lastChange = now;
    this.withdrawOrphans(this.detach(slot));
    return slot;
  }

  /**
   * Claims and starts a batch (setCurrentBatch in the contract): a pending
   * need's number with a range containing its start, a STALLED batch's
   * number with its range again, or, with no need pending, the next unused
   * number. BAD_USER_INPUT for what contradicts the session; CONFLICT for
   * what contradicts its state (a racing encoder learns it lost this way).
   */
  setCurrentBatch(input: Omit<SetCurrentBatchInput, 'streamSessionId'>, now: Instant): BatchState {
    this.checkClaimInput(input);
    const n = input.batchNumber;
    const range = { start: input.startSegment, end: input.endSegment };
    const need = this.needs.get(n);
    const existing = this.batchMap.get(n);

    if (need?.reason === BatchNeededReason.STALLED && existing !== undefined) {
      if (range.start !== existing.startSegment || range.end !== existing.endSegment) {
        throw new ConflictError(
          message('stalledRange', {
            id: this.id,
            batchNumber: n,
            startSegment: existing.startSegment,
            endSegment: existing.endSegment,
          }),
        );
      }
      if (input.qualities && sortQualities(input.qualities).join() !== existing.qualities.join()) {
        throw new ConflictError(
          message('stalledQualities', {
            id: this.id,
            batchNumber: n,
            qualities: existing.qualities.join(', '),
          }),
        );
      }
      this.needs.delete(n);
      const batch: BatchRecord = {
        ...existing,
        generationStarted: now,
        stalls: 0,
        stalledAt: null,
      };
      this.batchMap.set(n, batch);
      this.current = publicBatch(batch);
      this.lastChange = now;
      return this.current;
    }

    let qualities: readonly Quality[];
    if (need !== undefined) {
      if (need.startSegment < range.start || need.startSegment > range.end) {
        throw new ConflictError(
          message('claimMissesNeed', {
            id: this.id,
            batchNumber: n,
            startSegment: need.startSegment,
          }),
        );
      }
      qualities = input.qualities ? sortQualities(input.qualities) : need.qualities;
      const missing = need.qualities.filter((q) => !qualities.includes(q));
      if (missing.length > 0) {
        throw new ConflictError(
          message('claimMissesQualities', {
            id: this.id,
            batchNumber: n,
            qualities: missing.join(', '),
          }),
        );
      }
    } else if (existing !== undefined) {
      throw new ConflictError(
        message(existing.isComplete ? 'batchComplete' : 'batchStillGenerating', {
          id: this.id,
          batchNumber: n,
        }),
      );
    } else {
      const expected = this.nextNumber();
      if (this.needs.size > 0) {
        throw new ConflictError(
          message('needsPending', { id: this.id, batchNumber: n, pending: this.pendingList() }),
        );
      }
      if (n !== expected) {
        throw new ConflictError(
          message('unexpectedBatch', { id: this.id, expected, batchNumber: n }),
        );
      }
      qualities = input.qualities ? sortQualities(input.qualities) : this.settings.qualities;
    }
    this.checkOverlap(n, range, qualities);

    const batch: BatchRecord = {
      batchNumber: n,
      startSegment: range.start,
      endSegment: range.end,
      videoSourcePath: input.videoSourcePath,
      videoStartOffset: input.videoStartOffset,
      generationStarted: now,
      generationEnded: null,
      isComplete: false,
      qualities,
      isLastBatch: range.end === this.settings.lastSegment,
      stalls: 0,
      stalledAt: null,
    };
    this.batchMap.set(n, batch);
    this.current = publicBatch(batch);
    if (n + 1 > this.claimedHigh) this.claimedHigh = n + 1;
    this.lastChange = now;
    this.invalidate();
    if (need !== undefined) {
      this.needs.delete(n);
      this.needClients.delete(n);
      // Clients that relied on pending needs are decided again: the batch may
      // cover less than the need did.
      // (Those waiting in FIRST_BATCH have a safe range within it: all of its.)
      const relying = this.clientsOf(need.qualities).filter(
        (slot) => slot.lo > slot.hi || need.reason === BatchNeededReason.FIRST_BATCH,
      );
      this.settle(relying);
    }
    return this.current;
  }

  /**
   * Marks a batch complete. Completing it again returns it unchanged; so
   * does a late completion of a batch that stalled (its STALLED need goes).
   * Clients of its renditions are decided again: one near the end of what is
   * now made asks for what follows.
   */
  completeBatch(batchNumber: number, now: Instant): BatchState {
    const batch = this.batchMap.get(batchNumber);
    if (batch === undefined) {
      throw new ConflictError(message('notABatch', { id: this.id, batchNumber }));
    }
    if (batch.isComplete) return publicBatch(batch);
    const done: BatchRecord = {
      ...batch,
      generationEnded: now,
      isComplete: true,
      stalls: 0,
      stalledAt: null,
    };
    this.batchMap.set(batchNumber, done);
    if (this.needs.get(batchNumber)?.reason === BatchNeededReason.STALLED) {
      this.needs.delete(batchNumber);
    }
    for (const quality of done.qualities) {
      this.made.set(
        quality,
        addSpan(this.made.get(quality) ?? [], done.startSegment, done.endSegment),
      );
    }
    const result = publicBatch(done);
    if (this.current?.batchNumber === batchNumber) this.current = result;
    this.lastChange = now;
    this.invalidate();
    this.settle(this.clientsOf(done.qualities));
    return result;
  }

  /**
   * An encoder deleted these segments: made segments there are no longer
   * covered (a batch in flight is untouched), and a complete batch with
   * nothing left goes. True when any made segment was there.
   */
  releaseSegments(input: Omit<ReleaseSegmentsInput, 'streamSessionId'>, now: Instant): boolean {
    const qualities = input.qualities ? sortQualities(input.qualities) : QUALITIES;
    let released = false;
    for (const quality of qualities) {
      const { spans, removed } = removeSpan(
        this.made.get(quality) ?? [],
        input.startSegment,
        input.endSegment,
      );
      if (!removed) continue;
      released = true;
      if (spans.length === 0) this.made.delete(quality);
      else this.made.set(quality, spans);
    }
    if (!released) return false;
    for (const batch of this.batchMap.values()) {
      if (!batch.isComplete) continue;
      const left = batch.qualities.some((q) =>
        (this.made.get(q) ?? []).some((span) =>
          overlaps(span, { start: batch.startSegment, end: batch.endSegment }),
        ),
      );
      if (!left) this.batchMap.delete(batch.batchNumber);
    }
    this.lastChange = now;
    this.invalidate();
    this.settle(this.clientsOf(qualities));
    return true;
  }

  /**
   * The encoder making a batch says it is still at work: the batch stalls a
   * batch timeout after now instead of after its claim. CONFLICT when it is
   * not being made: no such batch, complete, or stalled (announced again, it
   * is for whoever claims it next). Nothing a viewer sees changes.
   */
  renewClaim(batchNumber: number, now: Instant): BatchState {
    const batch = this.batchMap.get(batchNumber);
    if (batch === undefined) {
      throw new ConflictError(message('notABatch', { id: this.id, batchNumber }));
    }
    if (batch.isComplete) {
      throw new ConflictError(message('renewComplete', { id: this.id, batchNumber }));
    }
    if (batch.stalledAt !== null) {
      throw new ConflictError(message('renewStalled', { id: this.id, batchNumber }));
    }
    this.batchMap.set(batchNumber, { ...batch, renewedAt: now });
    return publicBatch(batch);
  }

  /** When the next batch in flight stalls, given the timeout; null with none in flight. */
  nextStallDeadline(batchTimeout: number): { batchNumber: number; deadline: Instant } | null {
    let next: { batchNumber: number; deadline: Instant } | null = null;
    for (const batch of this.batchMap.values()) {
      if (batch.isComplete) continue;
      const deadline = stallBase(batch) + batchTimeout;
      if (next === null || deadline < next.deadline) {
        next = { batchNumber: batch.batchNumber, deadline };
      }
    }
    return next;
  }

  /**
   * Declares a batch in flight stalled (its claim timed out): STALLED is
   * announced, the same number and range, to be claimed again. False when it
   * is not in flight.
   */
  markStalled(batchNumber: number, now: Instant): boolean {
    const batch = this.batchMap.get(batchNumber);
    if (batch === undefined || batch.isComplete) return false;
    this.batchMap.set(batchNumber, { ...batch, stalls: batch.stalls + 1, stalledAt: now });
    this.needs.delete(batchNumber);
    this.announce(
      BatchNeededReason.STALLED,
      batchNumber,
      batch.startSegment,
      batch.endSegment,
      batch.qualities,
      batch.videoStartOffset,
    );
    this.lastChange = now;
    return true;
  }

  /** A consistent copy of the session now, clients ordered by sessionId. */
  view(): StreamSessionView {
    const batches = this.batchRecords();
    return {
      ...this.settings,
      currentBatch: this.current,
      batches: batches.map(publicBatch),
      stalledBatches: batches.filter((b) => b.stalls > 0).map((b) => b.batchNumber),
      coverage: this.coverage(),
      clientPositions: this.positions().sort((a, b) =>
        a.sessionId < b.sessionId ? -1 : a.sessionId > b.sessionId ? 1 : 0,
      ),
      furthestSegment: this.furthestSegment,
      slowestSegment: this.slowestSegment,
      shouldGenerateNextBatch: this.shouldGenerateNextBatch(),
      createdAt: this.createdAt,
      updatedAt: this.lastChange,
    };
  }

  /** The session as plain data, from which `restore` rebuilds it. */
  state(): StreamSessionState {
    const made: CoveredRange[] = [];
    for (const quality of QUALITIES) {
      for (const span of this.made.get(quality) ?? []) {
        made.push({ quality, startSegment: span.start, endSegment: span.end });
      }
    }
    return {
      settings: this.settings,
      createdAt: this.createdAt,
      updatedAt: this.lastChange,
      currentBatch: this.current,
      batches: this.batchRecords(),
      made,
      needs: this.pendingNeeds(),
      claimedHigh: this.claimedHigh,
      announcements: this.announcements,
      clients: this.positions(),
    };
  }

  // --- the rules, applied -------------------------------------------------

  /**
   * Decides `slots` again after a change: each is served (by what is made or
   * in flight, or by pending needs it then relies on) or unserved. Pending
   * needs nobody relies on any more are withdrawn; then the unserved get
   * needs, lowest start first, clients needing the same start sharing one.
   */
  private settle(slots: readonly ClientSlot[]): void {
    if (slots.length === 0) return;
    const sorted = [...slots].sort((a, b) =>
      a.sessionId < b.sessionId ? -1 : a.sessionId > b.sessionId ? 1 : 0,
    );
    const released = new Set<number>();
    for (const slot of sorted) for (const n of this.detach(slot)) released.add(n);
    let unserved: ClientSlot[] = [];
    for (const slot of sorted) {
      const verdict = evaluate(this.rules, slot.segmentNumber, slot.quality);
      this.attach(slot, verdict);
      if (!verdict.served) unserved.push(slot);
    }
    // Before any new need is numbered: a need given up by a client that moved
    // on leaves its number to the next (as v1 numbered a seek's batch).
    this.withdrawOrphans(released);
    released.clear();
    while (unserved.length > 0) {
      const verdicts = new Map<ClientSlot, Verdict>();
      const still: ClientSlot[] = [];
      let start = Number.POSITIVE_INFINITY;
      for (const slot of unserved) {
        for (const n of this.detach(slot)) released.add(n);
        const verdict = evaluate(this.rules, slot.segmentNumber, slot.quality);
        this.attach(slot, verdict);
        if (verdict.served) continue;
        verdicts.set(slot, verdict);
        still.push(slot);
        if (verdict.start < start) start = verdict.start;
      }
      if (still.length === 0) break;
      const group = still.filter((slot) => {
        const verdict = verdicts.get(slot);
        return verdict !== undefined && !verdict.served && verdict.start === start;
      });
      let reason: BatchNeededReason = BatchNeededReason.QUALITY_CHANGE;
      for (const slot of group) {
        const verdict = verdicts.get(slot);
        if (verdict === undefined || verdict.served) continue;
        if (REASON_ORDER.indexOf(verdict.reason) < REASON_ORDER.indexOf(reason)) {
          reason = verdict.reason;
        }
      }
      const qualities = sortQualities(group.map((slot) => slot.quality));
      const n = this.nextNumber();
      this.announce(reason, n, start, needEnd(this.rules, start, qualities), qualities);
      // Decided again with the need in place: a need cut short before a range
      // that ends too close may leave them unserved still (they need the next).
      unserved = still;
    }
    this.withdrawOrphans(released);
    this.mergedCache = null;
  }

  /** Records a client's verdict: its safe range (served), or the pending needs it relies on. */
  private attach(slot: ClientSlot, verdict: Verdict): void {
    if (verdict.served) {
      slot.lo = verdict.lo;
      slot.hi = verdict.hi;
    }
    // Only needs that can be withdrawn are counted (FIRST_BATCH never is), so
    // that clients waiting for the first batch cost no bookkeeping.
    let counted: number[] | null = null;
    for (const n of verdict.needs) {
      if (n === 0 || this.needs.get(n)?.reason === BatchNeededReason.FIRST_BATCH) continue;
      counted ??= [];
      counted.push(n);
      this.needClients.set(n, (this.needClients.get(n) ?? 0) + 1);
    }
    if (counted !== null) this.dependents.set(slot.sessionId, counted);
  }

  /** Forgets what a client relied on; returns those needs. */
  private detach(slot: ClientSlot): readonly number[] {
    slot.lo = EMPTY_LO;
    slot.hi = EMPTY_HI;
    const needs = this.dependents.get(slot.sessionId);
    if (needs === undefined) return NONE;
    this.dependents.delete(slot.sessionId);
    for (const n of needs) {
      const count = this.needClients.get(n);
      if (count !== undefined) this.needClients.set(n, count - 1);
    }
    return needs;
  }

  /** Withdraws the pending needs among `numbers` that no client relies on (not FIRST_BATCH, not STALLED). */
  private withdrawOrphans(numbers: Iterable<number>): void {
    for (const n of numbers) {
      const need = this.needs.get(n);
      if (need === undefined || (this.needClients.get(n) ?? 0) > 0) continue;
      if (need.reason === BatchNeededReason.FIRST_BATCH) continue;
      if (need.reason === BatchNeededReason.STALLED) continue;
      this.needs.delete(n);
      this.needClients.delete(n);
      this.invalidate();
    }
  }

  /** Records and queues a need announced now. */
  private announce(
    reason: BatchNeededReason,
    batchNumber: number,
    startSegment: number,
    endSegment: number,
    qualities: readonly Quality[],
    videoStartOffset = startSegment * this.settings.segmentDuration,
  ): void {
    this.announcements++;
    const need: PendingNeed = {
      reason,
      batchNumber,
      startSegment,
      endSegment,
      videoSourcePath: this.settings.videoSourcePath,
      videoStartOffset,
      furthestSegment: this.furthestSegment,
      qualities,
      segmentDuration: this.settings.segmentDuration,
      isLastBatch: endSegment === this.settings.lastSegment,
      sequence: this.announcements,
    };
    this.needs.set(batchNumber, need);
    if (reason !== BatchNeededReason.STALLED) this.invalidate();
    this.outbox.push(need);
  }

  /** The number a new need (or a claim ahead of need) takes: the next unused one. */
  private nextNumber(): number {
    let next = this.claimedHigh;
    for (const need of this.needs.values()) {
      if (need.reason !== BatchNeededReason.STALLED && need.batchNumber + 1 > next) {
        next = need.batchNumber + 1;
      }
    }
    return next;
  }

  private pendingList(): string {
    return [...this.needs.keys()].sort((a, b) => a - b).join(', ');
  }

  private checkClaimInput(input: Omit<SetCurrentBatchInput, 'streamSessionId'>): void {
    const { settings } = this;
    const { startSegment, endSegment, videoStartOffset } = input;
    if (startSegment > endSegment) {
      throw new InvalidInputError(message('claimBackwards', { startSegment, endSegment }));
    }
    const lastSegment = settings.lastSegment;
    if (lastSegment !== null && endSegment > lastSegment) {
      throw new InvalidInputError(
        message('claimPastEnd', { id: this.id, endSegment, lastSegment }),
      );
    }
    const expected = startSegment * settings.segmentDuration;
    if (videoStartOffset !== expected) {
      throw new InvalidInputError(
        message('claimOffset', {
          videoStartOffset,
          expected,
          startSegment,
          segmentDuration: settings.segmentDuration,
        }),
      );
    }
    if (input.videoSourcePath !== settings.videoSourcePath) {
      throw new InvalidInputError(message('claimSource', { id: this.id }));
    }
    if (input.qualities && input.qualities.length === 0) {
      throw new InvalidInputError(message('claimNoQualities', {}));
    }
  }

  /** CONFLICT when the range shares a rendition and a segment with a batch in flight or another pending need. */
  private checkOverlap(n: number, range: Span, qualities: readonly Quality[]): void {
    for (const batch of this.batchMap.values()) {
      if (batch.isComplete || batch.batchNumber === n) continue;
      if (shareQuality(batch.qualities, qualities) && overlaps(span(batch), range)) {
        throw new ConflictError(
          message('claimOverlapsBatch', {
            id: this.id,
            batchNumber: n,
            other: batch.batchNumber,
            startSegment: batch.startSegment,
            endSegment: batch.endSegment,
          }),
        );
      }
    }
    for (const need of this.needs.values()) {
      if (need.batchNumber === n || need.reason === BatchNeededReason.STALLED) continue;
      if (shareQuality(need.qualities, qualities) && overlaps(span(need), range)) {
        throw new ConflictError(
          message('claimOverlapsNeed', {
            id: this.id,
            batchNumber: n,
            other: need.batchNumber,
            startSegment: need.startSegment,
            endSegment: need.endSegment,
          }),
        );
      }
    }
  }

  private clientsOf(qualities: readonly Quality[]): ClientSlot[] {
    const out: ClientSlot[] = [];
    for (const slot of this.clients.values()) if (qualities.includes(slot.quality)) out.push(slot);
    return out;
  }

  private invalidate(): void {
    this.mergedCache = null;
  }

  private merged(quality: Quality, withPending: boolean, without?: number): readonly MergedRange[] {
    const index = 2 * QUALITIES.indexOf(quality) + (withPending ? 1 : 0);
    this.mergedCache ??= [];
    let ranges = without === undefined ? this.mergedCache[index] : undefined;
    if (ranges !== undefined) return ranges;
    const pieces: CoveragePiece[] = [];
    for (const s of this.made.get(quality) ?? []) pieces.push({ ...s, open: false });
    for (const batch of this.batchMap.values()) {
      if (!batch.isComplete && batch.qualities.includes(quality)) {
        pieces.push({ start: batch.startSegment, end: batch.endSegment, open: true });
      }
    }
    if (withPending) {
      for (const need of this.pendingSpans(quality)) {
        if (need.batchNumber !== without) pieces.push({ ...need, open: true });
      }
    }
    ranges = pieces.length === 0 ? NO_RANGES : mergeCoverage(pieces);
    if (without === undefined) this.mergedCache[index] = ranges;
    return ranges;
  }

  private pendingSpans(quality: Quality): PendingSpan[] {
    const out: PendingSpan[] = [];
    for (const need of this.needs.values()) {
      if (need.reason !== BatchNeededReason.STALLED && need.qualities.includes(quality)) {
        out.push({ start: need.startSegment, end: need.endSegment, batchNumber: need.batchNumber });
      }
    }
    return out.sort((a, b) => a.start - b.start);
  }

  /** What is made or being made, per rendition (not what is only announced). */
  private coverage(): CoveredRange[] {
    const out: CoveredRange[] = [];
    for (const quality of QUALITIES) {
      for (const range of this.merged(quality, false)) {
        out.push({ quality, startSegment: range.start, endSegment: range.end });
      }
    }
    this.mergedCache = null;
    return out;
  }

  private positions(): ClientPosition[] {
    const positions: ClientPosition[] = [];
    for (const slot of this.clients.values()) positions.push(toPosition(slot));
    return positions;
  }
}

const NONE: readonly number[] = Object.freeze([]);
const NO_RANGES: readonly MergedRange[] = Object.freeze([]);

function span(x: { startSegment: number; endSegment: number }): Span {
  return { start: x.startSegment, end: x.endSegment };
}

/** A batch as the API shows it, without the sweeper's bookkeeping. */
/** What a batch in flight's stall deadline counts from: its last stall, renewal or claim. */
export function stallBase(batch: BatchRecord): Instant {
  return batch.stalledAt ?? batch.renewedAt ?? batch.generationStarted;
}

function publicBatch(batch: BatchState): BatchState {
  return {
    batchNumber: batch.batchNumber,
    startSegment: batch.startSegment,
    endSegment: batch.endSegment,
    videoSourcePath: batch.videoSourcePath,
    videoStartOffset: batch.videoStartOffset,
    generationStarted: batch.generationStarted,
    generationEnded: batch.generationEnded,
    isComplete: batch.isComplete,
    qualities: batch.qualities,
    isLastBatch: batch.isLastBatch,
  };
}

/** An immutable copy of a client's record, as the API shows it. */
export function toPosition(slot: ClientSlot): ClientPosition {
  return {
    sessionId: slot.sessionId,
    segmentNumber: slot.segmentNumber,
    quality: slot.quality,
    lastUpdated: slot.lastUpdated,
  };
}
