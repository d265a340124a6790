import { batchNeedKey, decideBatchNeed, shouldGenerateNextBatch } from './batch-need.js';
import { ConflictError } from './errors.js';
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
 * One playback of one video, shared by every client watching it: its current
 * batch, every client's position and what follows from them.
 *
 * Synchronous and single-owner: callers (the memory store, under the
 * coordinator's per-session mutex) serialise access. Every method is O(1) or
 * O(log distinct segments) but `view()`, which copies the clients.
 */
export class StreamSession {
  private batch: BatchState | null = null;
  private readonly clients = new Map<string, ClientPosition>();
  private readonly segments = new SegmentTally();
  private readonly qualityCounts = new Map<Quality, number>();
  private announcedKey: string | null = null;
  private announcements = 0;
  private lastChange: Instant;

  constructor(
    readonly settings: StreamSessionSettings,
    readonly createdAt: Instant,
  ) {
    this.lastChange = createdAt;
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

  getClient(sessionId: string): ClientPosition | undefined {
    return this.clients.get(sessionId);
  }

  /** The distinct renditions the clients play now, best first. */
  qualities(): Quality[] {
    return QUALITIES.filter((q) => (this.qualityCounts.get(q) ?? 0) > 0);
  }

  shouldGenerateNextBatch(): boolean {
    return shouldGenerateNextBatch(this.batch, this.furthestSegment, this.settings.threshold);
  }

  /** Creates or moves a client's position. */
  updateClientPosition(
    sessionId: string,
    segmentNumber: number,
    quality: Quality,
    now: Instant,
  ): ClientPosition {
    const previous = this.clients.get(sessionId);
    // Positions are immutable records so a view taken earlier never changes.
    const position: ClientPosition = { sessionId, segmentNumber, quality, lastUpdated: now };
    this.clients.set(sessionId, position);
    if (previous === undefined) {
      this.segments.add(segmentNumber);
      this.countQuality(quality, 1);
    } else {
      this.segments.move(previous.segmentNumber, segmentNumber);
      if (previous.quality !== quality) {
        this.countQuality(previous.quality, -1);
        this.countQuality(quality, 1);
      }
    }
    this.lastChange = now;
    return position;
  }

  /** True when the client was in the session. */
  removeClient(sessionId: string, now: Instant): boolean {
    const previous = this.clients.get(sessionId);
    if (previous === undefined) return false;
    this.clients.delete(sessionId);
    this.segments.remove(previous.segmentNumber);
    this.countQuality(previous.quality, -1);
    this.lastChange = now;
    return true;
  }

  /**
   * Claims and starts a batch. The number must be the next one: 0 without a
   * batch, current + 1 after a complete one. Anything else is a conflict,
   * which is how the second of two racing encoders learns it lost.
   */
  setCurrentBatch(input: Omit<SetCurrentBatchInput, 'streamSessionId'>, now: Instant): BatchState {
    const expected = this.nextBatchNumber();
    if (expected === null) {
      const current = this.batch as BatchState;
      throw new ConflictError(
        `Batch ${current.batchNumber} of stream session '${this.id}' is still being generated; batch ${input.batchNumber} cannot be claimed.`,
      );
    }
    if (input.batchNumber !== expected) {
      throw new ConflictError(
        `Stream session '${this.id}' expects batch ${expected} next, not batch ${input.batchNumber}.`,
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
    this.lastChange = now;
    return this.batch;
  }

  /** The batch number a claim must carry now, or null while one is generating. */
  nextBatchNumber(): number | null {
    if (this.batch === null) return 0;
    return this.batch.isComplete ? this.batch.batchNumber + 1 : null;
  }

  /** Marks the current batch complete. Completing it again returns it unchanged. */
  completeBatch(batchNumber: number, now: Instant): BatchState {
    const batch = this.batch;
    if (batch === null) {
      throw new ConflictError(
        `Stream session '${this.id}' has no batch; batch ${batchNumber} cannot be completed.`,
      );
    }
    if (batch.batchNumber !== batchNumber) {
      throw new ConflictError(
        `Batch ${batchNumber} is not the current batch of stream session '${this.id}' (batch ${batch.batchNumber} is).`,
      );
    }
    if (batch.isComplete) return batch;
    this.batch = { ...batch, generationEnded: now, isComplete: true };
    this.lastChange = now;
    return this.batch;
  }

  /** The batch the session needs now, whether announced or not. */
  batchNeed(): BatchNeed | null {
    return decideBatchNeed({
      settings: this.settings,
      currentBatch: this.batch,
      furthestSegment: this.furthestSegment,
      qualities: this.qualities(),
    });
  }

  /**
   * The need to announce after a change, once per need: null when there is
   * none or it was already announced. Call after every change.
   */
  announceNeed(): { need: BatchNeed; sequence: number } | null {
    // Only a complete batch (or none) can make a need: skip the work otherwise.
    if (this.batch !== null && !this.batch.isComplete) return null;
    const need = this.batchNeed();
    if (need === null) return null;
    const key = batchNeedKey(need);
    if (key === this.announcedKey) return null;
    this.announcedKey = key;
    this.announcements++;
    return { need, sequence: this.announcements };
  }

  /** A consistent copy of the session now, clients ordered by sessionId. */
  view(): StreamSessionView {
    const clientPositions = [...this.clients.values()].sort((a, b) =>
      a.sessionId < b.sessionId ? -1 : a.sessionId > b.sessionId ? 1 : 0,
    );
    return {
      ...this.settings,
      currentBatch: this.batch,
      clientPositions,
      furthestSegment: this.furthestSegment,
      slowestSegment: this.slowestSegment,
      shouldGenerateNextBatch: this.shouldGenerateNextBatch(),
      createdAt: this.createdAt,
      updatedAt: this.lastChange,
    };
  }

  private countQuality(quality: Quality, delta: number): void {
    const count = (this.qualityCounts.get(quality) ?? 0) + delta;
    if (count === 0) this.qualityCounts.delete(quality);
    else this.qualityCounts.set(quality, count);
  }
}
