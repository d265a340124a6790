import {
  type AnnouncedNeed,
  decideBatchNeed,
  isNewNeed,
  shouldGenerateNextBatch,
} from './batch-need.js';
import { ConflictError } from './errors.js';
import { message } from './messages.js';
import {
  type BatchNeed,
  type BatchState,
  type ClientPosition,
  type Instant,
  QUALITIES,
  type Quality,
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
  readonly streamSession: StreamSession;
}

/** What a StreamSession holds, as plain data (snapshots, other stores). */
export interface StreamSessionState {
  readonly settings: StreamSessionSettings;
  readonly createdAt: Instant;
  readonly updatedAt: Instant;
  readonly currentBatch: BatchState | null;
  /** How many times the current batch has stalled since it was claimed. */
  readonly stalls: number;
  /** How many stalls the session has had in all: tells each stall's need from the last. */
  readonly stallSerial: number;
  /** The need last announced, so a restart does not announce it again. */
  readonly announced: AnnouncedNeed | null;
  readonly announcements: number;
  readonly clients: readonly ClientPosition[];
}

/**
 * One playback of one video, shared by every client watching it: its current
 * batch, every client's position and what follows from them.
 *
 * Synchronous and single-owner: its one caller, the memory store, runs each
 * change to completion, so nothing interleaves. Every method is O(1) or
 * O(log distinct segments) but `view()`, which copies the clients.
 */
export class StreamSession {
  private batch: BatchState | null = null;
  private stallCount = 0;
  // Never reset: a re-claimed batch that stalls again is a new need, though
  // its stalls-since-claim count starts over.
  private stallSerial = 0;
  private readonly clients = new Map<string, ClientSlot>();
  private readonly segments = new SegmentTally();
  private readonly qualityCounts = new Map<Quality, number>();
  private announced: AnnouncedNeed | null = null;
  private announcements = 0;
  private lastChange: Instant;

  constructor(
    readonly settings: StreamSessionSettings,
    readonly createdAt: Instant,
  ) {
    this.lastChange = createdAt;
  }

  /** Rebuilds a session from its plain state (a snapshot). */
  static restore(state: StreamSessionState): StreamSession {
    const session = new StreamSession(state.settings, state.createdAt);
    for (const client of state.clients) {
      session.updateClientPosition(
        client.sessionId,
        client.segmentNumber,
        client.quality,
        client.lastUpdated,
      );
    }
    session.batch = state.currentBatch;
    session.stallCount = state.stalls;
    session.stallSerial = state.stallSerial;
    session.announced = state.announced;
    session.announcements = state.announcements;
    session.lastChange = state.updatedAt;
    return session;
  }

  get id(): string {
    return this.settings.id;
  }

  get updatedAt(): Instant {
    return this.lastChange;
  }

  get currentBatch(): BatchState | null {
    return this.batch;
  }

  /** True when the current batch was claimed and not completed within the batch timeout. */
  get isStalled(): boolean {
    return this.stallCount > 0;
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

  /** How many needs have been announced: the sequence of the latest one. */
  get announcementSequence(): number {
    return this.announcements;
  }

  getClient(sessionId: string): ClientSlot | undefined {
    return this.clients.get(sessionId);
  }

  /** Every client's record, in no particular order. */
  clientSlots(): IterableIterator<ClientSlot> {
    return this.clients.values();
  }

  /** The distinct renditions the clients play now, best first. */
  qualities(): Quality[] {
    return QUALITIES.filter((q) => (this.qualityCounts.get(q) ?? 0) > 0);
  }

  shouldGenerateNextBatch(): boolean {
    return shouldGenerateNextBatch(this.batch, this.furthestSegment, this.settings.threshold);
  }

  /** Creates or moves a client's position; returns its (live) record. */
  updateClientPosition(
    sessionId: string,
    segmentNumber: number,
    quality: Quality,
    now: Instant,
  ): ClientSlot {
    let slot = this.clients.get(sessionId);
    if (slot === undefined) {
      slot = { sessionId, segmentNumber, quality, lastUpdated: now, streamSession: this };
      this.clients.set(sessionId, slot);
      this.segments.add(segmentNumber);
      this.countQuality(quality, 1);
    } else {
      this.segments.move(slot.segmentNumber, segmentNumber);
      if (slot.quality !== quality) {
        this.countQuality(slot.quality, -1);
        this.countQuality(quality, 1);
      }
      slot.segmentNumber = segmentNumber;
      slot.quality = quality;
      slot.lastUpdated = now;
    }
    this.lastChange = now;
    return slot;
  }

  /** Removes a client; returns its record, or undefined when it was not there. */
  removeClient(sessionId: string, now: Instant): ClientSlot | undefined {
    const slot = this.clients.get(sessionId);
    if (slot === undefined) return undefined;
    this.clients.delete(sessionId);
    this.segments.remove(slot.segmentNumber);
    this.countQuality(slot.quality, -1);
    this.lastChange = now;
    return slot;
  }

  /**
   * Claims and starts a batch. The number must be the next one: 0 without a
   * batch, current + 1 after a complete one, the current one again after it
   * stalled. Anything else is a conflict, which is how the second of two
   * racing encoders learns it lost.
   */
  setCurrentBatch(input: Omit<SetCurrentBatchInput, 'streamSessionId'>, now: Instant): BatchState {
    const expected = this.nextBatchNumber();
    if (expected === null) {
      const current = this.batch as BatchState;
      throw new ConflictError(
        message('batchStillGenerating', {
          id: this.id,
          current: current.batchNumber,
          batchNumber: input.batchNumber,
        }),
      );
    }
    if (input.batchNumber !== expected) {
      throw new ConflictError(
        message('unexpectedBatch', { id: this.id, expected, batchNumber: input.batchNumber }),
      );
    }
    this.batch = {
      batchNumber: input.batchNumber,
      startSegment: input.startSegment,
      endSegment: input.endSegment,
      videoSourcePath: input.videoSourcePath,
      videoStartOffset: input.videoStartOffset,
      generationStarted: now,
      generationEnded: null,
      isComplete: false,
    };
    this.stallCount = 0;
    this.lastChange = now;
    return this.batch;
  }

  /** The batch number a claim must carry now, or null while one is generating. */
  nextBatchNumber(): number | null {
    if (this.batch === null) return 0;
    if (this.batch.isComplete) return this.batch.batchNumber + 1;
    return this.isStalled ? this.batch.batchNumber : null;
  }

  /**
   * Marks the current batch complete. Completing it again returns it
   * unchanged; so does a late completion by an encoder whose claim stalled.
   */
  completeBatch(batchNumber: number, now: Instant): BatchState {
    const batch = this.batch;
    if (batch === null) {
      throw new ConflictError(message('noBatchToComplete', { id: this.id, batchNumber }));
    }
    if (batch.batchNumber !== batchNumber) {
      throw new ConflictError(
        message('notCurrentBatch', { id: this.id, batchNumber, current: batch.batchNumber }),
      );
    }
    if (batch.isComplete) return batch;
    this.batch = { ...batch, generationEnded: now, isComplete: true };
    this.stallCount = 0;
    this.lastChange = now;
    return this.batch;
  }

  /**
   * Declares the current batch stalled (its claim timed out) so that it is
   * needed again. False when there is no batch being generated.
   */
  markStalled(now: Instant): boolean {
    if (this.batch === null || this.batch.isComplete) return false;
    this.stallCount++;
    this.stallSerial++;
    this.lastChange = now;
    return true;
  }

  /** The batch the session needs now, whether announced or not. */
  batchNeed(): BatchNeed | null {
    return decideBatchNeed({
      settings: this.settings,
      currentBatch: this.batch,
      furthestSegment: this.furthestSegment,
      qualities: this.qualities(),
      stalled: this.isStalled,
    });
  }

  /**
   * The need pending now, as announced: while the need is still the one last
   * announced, its start, end and reason are the announced ones (a replay
   * tells a new subscriber what the others were told), with the clients' now.
   */
  pendingNeed(): BatchNeed | null {
    const need = this.batchNeed();
    const announced = this.announced;
    if (need === null || announced === null || isNewNeed(announced, need, this.stallSerial)) {
      return need;
    }
    return {
      ...need,
      reason: announced.reason,
      startSegment: announced.startSegment,
      endSegment: announced.endSegment,
      videoStartOffset:
        need.startSegment === announced.startSegment
          ? need.videoStartOffset
          : announced.startSegment * this.settings.segmentDuration,
    };
  }

  /**
   * The need to announce after a change, once per need: null when there is
   * none or it was already announced. Call after every change.
   */
  announceNeed(): { need: BatchNeed; sequence: number } | null {
    // The hot path: most updates leave a batch generating (not stalled), or a
    // complete one far from the viewers; say so before building any need.
    const batch = this.batch;
    if (batch !== null && (batch.isComplete ? !this.shouldGenerateNextBatch() : !this.isStalled)) {
      return null;
    }
    const need = this.batchNeed();
    if (need === null || !isNewNeed(this.announced, need, this.stallSerial)) return null;
    this.announced = {
      reason: need.reason,
      batchNumber: need.batchNumber,
      startSegment: need.startSegment,
      endSegment: need.endSegment,
      stalls: this.stallSerial,
    };
    this.announcements++;
    return { need, sequence: this.announcements };
  }

  /** A consistent copy of the session now, clients ordered by sessionId. */
  view(): StreamSessionView {
    return {
      ...this.settings,
      currentBatch: this.batch,
      clientPositions: this.positions().sort((a, b) =>
        a.sessionId < b.sessionId ? -1 : a.sessionId > b.sessionId ? 1 : 0,
      ),
      furthestSegment: this.furthestSegment,
      slowestSegment: this.slowestSegment,
      shouldGenerateNextBatch: this.shouldGenerateNextBatch(),
      currentBatchStalled: this.isStalled,
      createdAt: this.createdAt,
      updatedAt: this.lastChange,
    };
  }

  /** The session as plain data, from which `restore` rebuilds it. */
  state(): StreamSessionState {
    return {
      settings: this.settings,
      createdAt: this.createdAt,
      updatedAt: this.lastChange,
      currentBatch: this.batch,
      stalls: this.stallCount,
      stallSerial: this.stallSerial,
      announced: this.announced,
      announcements: this.announcements,
      clients: this.positions(),
    };
  }

  private positions(): ClientPosition[] {
    const positions: ClientPosition[] = [];
    for (const slot of this.clients.values()) positions.push(toPosition(slot));
    return positions;
  }

  private countQuality(quality: Quality, delta: number): void {
    const count = (this.qualityCounts.get(quality) ?? 0) + delta;
    if (count === 0) this.qualityCounts.delete(quality);
    else this.qualityCounts.set(quality, count);
  }
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
