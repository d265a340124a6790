/**
 * The domain's data, as plain TypeScript. Nothing here knows about GraphQL:
 * the schema maps these shapes onto the public contract.
 */

/** Renditions a player can play; the values are what is stored and shown. */
export const Quality = {
  Q1080P: '1080p',
  Q720P: '720p',
  Q480P: '480p',
} as const;
export type Quality = (typeof Quality)[keyof typeof Quality];
export const QUALITIES: readonly Quality[] = Object.values(Quality);

export const BatchNeededReason = {
  FIRST_BATCH: 'FIRST_BATCH',
  APPROACHING_END: 'APPROACHING_END',
  SEEK_AHEAD: 'SEEK_AHEAD',
  STALLED: 'STALLED',
  SEEK_BACK: 'SEEK_BACK',
  QUALITY_CHANGE: 'QUALITY_CHANGE',
} as const;
export type BatchNeededReason = (typeof BatchNeededReason)[keyof typeof BatchNeededReason];

/** Why a stream session ended. */
export const StreamSessionEndReason = {
  /** endStreamSession was called. */
  ENDED: 'ENDED',
  /** It had no clients for the idle timeout. */
  IDLE: 'IDLE',
} as const;
export type StreamSessionEndReason =
  (typeof StreamSessionEndReason)[keyof typeof StreamSessionEndReason];

/** Milliseconds since the epoch: cheaper to keep per client than a Date. */
export type Instant = number;

/** A batch of segments being, or already, generated for a stream session. */
export interface BatchState {
  readonly batchNumber: number;
  readonly startSegment: number;
  /** Inclusive. */
  readonly endSegment: number;
  readonly videoSourcePath: string;
  /** Seconds into the source where this batch starts. */
  readonly videoStartOffset: number;
  readonly generationStarted: Instant;
  /** Null until the batch is complete. */
  readonly generationEnded: Instant | null;
  readonly isComplete: boolean;
  /** The renditions this batch makes, in QUALITIES order. */
  readonly qualities: readonly Quality[];
  /** True when endSegment is the video's last segment. */
  readonly isLastBatch: boolean;
}

/** Consecutive segments of one rendition that are made or being made. */
export interface CoveredRange {
  readonly quality: Quality;
  readonly startSegment: number;
  /** Inclusive. */
  readonly endSegment: number;
}

/** Where one client (one player, keyed by sessionId) is in the stream. */
export interface ClientPosition {
  readonly sessionId: string;
  readonly segmentNumber: number;
  readonly quality: Quality;
  readonly lastUpdated: Instant;
}

/** The fixed parameters of a stream session, chosen at creation. */
export interface StreamSessionSettings {
  readonly id: string;
  readonly videoSourcePath: string;
  /** Seconds of video in one HLS segment. */
  readonly segmentDuration: number;
  /** Segments in one batch. */
  readonly batchSize: number;
  /** A client within `threshold` segments of the end of its covered range makes a need. */
  readonly threshold: number;
  /** The segment playback started at; batch 0 begins here. */
  readonly startSegment: number;
  /** The video's length in seconds; null when unknown (a live channel). */
  readonly durationSeconds: number | null;
  /** ceil(durationSeconds / segmentDuration) - 1; null when the length is unknown. */
  readonly lastSegment: number | null;
  /** The renditions FIRST_BATCH makes, in QUALITIES order; never empty. */
  readonly qualities: readonly Quality[];
}

/** A consistent, read-only picture of one stream session at one instant. */
export interface StreamSessionView extends StreamSessionSettings {
  /** The batch claimed most recently. */
  readonly currentBatch: BatchState | null;
  /**
   * Every batch being generated, and the completed ones whose segments are
   * not released, by batchNumber.
   */
  readonly batches: readonly BatchState[];
  /** Batch numbers of `batches` that stalled and were not claimed again or completed since. */
  readonly stalledBatches: readonly number[];
  /** Segments made or being made, per rendition, merged, by quality then startSegment. */
  readonly coverage: readonly CoveredRange[];
  /** Ordered by sessionId. */
  readonly clientPositions: readonly ClientPosition[];
  readonly furthestSegment: number | null;
  readonly slowestSegment: number | null;
  readonly shouldGenerateNextBatch: boolean;
  readonly createdAt: Instant;
  readonly updatedAt: Instant;
}

/** A batch the session needs now, as the decision function computes it. */
export interface BatchNeed {
  readonly reason: BatchNeededReason;
  readonly batchNumber: number;
  readonly startSegment: number;
  /**
   * startSegment + batchSize - 1, cut at the video's last segment and before
   * the next covered range of these qualities.
   */
  readonly endSegment: number;
  readonly videoSourcePath: string;
  /** startSegment * segmentDuration. */
  readonly videoStartOffset: number;
  /** The session's furthest client when the need was announced. */
  readonly furthestSegment: number | null;
  /** The renditions to make, in QUALITIES order; never empty. */
  readonly qualities: readonly Quality[];
  /** The session's segmentDuration. */
  readonly segmentDuration: number;
  /** True when endSegment is the video's last segment. */
  readonly isLastBatch: boolean;
}

/** A need as announced to encoders: which session, and in what order. */
export interface BatchNeededEvent extends BatchNeed {
  readonly streamSession: StreamSessionView;
  /**
   * This need's place among the session's announcements (1, 2, ...), so a
   * subscriber that merges a snapshot with live events can drop the ones it
   * already has.
   */
  readonly sequence: number;
}

/** A stream session has ended: its segments may go. */
export interface StreamSessionEndedEvent {
  readonly id: string;
  readonly reason: StreamSessionEndReason;
  readonly endedAt: Instant;
}

/**
 * Something about a stream session changed. Only its id: it is published on
 * every change, position updates included, so it must cost next to nothing;
 * whoever wants the session's state loads it when it needs it.
 */
export interface StreamSessionChangedEvent {
  readonly id: string;
}

export interface CreateStreamSessionInput {
  readonly id?: string | null;
  readonly videoSourcePath: string;
  readonly segmentDuration?: number | null;
  readonly batchSize?: number | null;
  readonly threshold?: number | null;
  readonly startSegment?: number | null;
  /** The video's length in seconds (> 0), when known. */
  readonly durationSeconds?: number | null;
  /** The renditions FIRST_BATCH makes; the server's default when absent. */
  readonly qualities?: readonly Quality[] | null;
}

export interface UpdateClientPositionInput {
  readonly streamSessionId: string;
  readonly sessionId: string;
  readonly segmentNumber: number;
  readonly quality: Quality;
}

export interface SetCurrentBatchInput {
  readonly streamSessionId: string;
  readonly batchNumber: number;
  readonly startSegment: number;
  readonly endSegment: number;
  readonly videoSourcePath: string;
  readonly videoStartOffset: number;
  /** The announced need's renditions when absent (the session's when none is pending). */
  readonly qualities?: readonly Quality[] | null;
}

/** An encoder deleted these segments (of every rendition, or those named). */
export interface ReleaseSegmentsInput {
  readonly streamSessionId: string;
  readonly startSegment: number;
  /** Inclusive. */
  readonly endSegment: number;
  readonly qualities?: readonly Quality[] | null;
}

/** Server-wide defaults for what a createStreamSession leaves out. */
export interface SessionDefaults {
  readonly segmentDuration: number;
  readonly batchSize: number;
  readonly threshold: number;
  /** The renditions FIRST_BATCH makes when createStreamSession names none. */
  readonly qualities: readonly Quality[];
}
