import {
  type BatchNeed,
  BatchNeededReason,
  type BatchState,
  type Quality,
  type StreamSessionSettings,
} from './model.js';

/** What the decision looks at: a session's settings and its state now. */
export interface BatchNeedInput {
  readonly settings: StreamSessionSettings;
  readonly currentBatch: BatchState | null;
  /** Highest segment among the clients now; null without clients. */
  readonly furthestSegment: number | null;
  readonly qualities: readonly Quality[];
  /** True when the current batch was claimed and not completed in time. */
  readonly stalled?: boolean;
}

/**
 * True when the current batch is complete and the furthest client is within
 * `threshold` segments of its end (or past it). False with no batch or no client.
 */
export function shouldGenerateNextBatch(
  currentBatch: BatchState | null,
  furthestSegment: number | null,
  threshold: number,
): boolean {
  return (
    currentBatch?.isComplete === true &&
    furthestSegment !== null &&
    currentBatch.endSegment - furthestSegment <= threshold
  );
}

/**
 * Which batch, if any, a stream session needs now.
 *
 * - No batch yet: FIRST_BATCH, batch 0 from the session's startSegment.
 * - A batch being generated: nothing, unless it has stalled: STALLED, the
 *   same batch again.
 * - A complete batch with the furthest client past its end: SEEK_AHEAD, the
 *   next batch starting at that client's segment.
 * - A complete batch whose end is within `threshold` of the furthest client:
 *   APPROACHING_END, the next batch starting right after it.
 */
export function decideBatchNeed(input: BatchNeedInput): BatchNeed | null {
  const { settings, currentBatch, furthestSegment, qualities } = input;
  if (currentBatch === null) {
    return need(settings, BatchNeededReason.FIRST_BATCH, 0, settings.startSegment, input);
  }
  if (!currentBatch.isComplete) {
    if (!input.stalled) return null;
    return {
      ...need(
        settings,
        BatchNeededReason.STALLED,
        currentBatch.batchNumber,
        currentBatch.startSegment,
        input,
      ),
      // The claimed range is what must be generated again.
      endSegment: currentBatch.endSegment,
      videoStartOffset: currentBatch.videoStartOffset,
    };
  }
  if (!shouldGenerateNextBatch(currentBatch, furthestSegment, settings.threshold)) return null;
  const next = currentBatch.batchNumber + 1;
  if (furthestSegment !== null && furthestSegment > currentBatch.endSegment) {
    return need(settings, BatchNeededReason.SEEK_AHEAD, next, furthestSegment, {
      furthestSegment,
      qualities,
    });
  }
  return need(settings, BatchNeededReason.APPROACHING_END, next, currentBatch.endSegment + 1, {
    furthestSegment,
    qualities,
  });
}

/** What was last announced for a session: enough to tell whether a need is new. */
export interface AnnouncedNeed {
  readonly reason: BatchNeededReason;
  readonly batchNumber: number;
  readonly startSegment: number;
  readonly endSegment: number;
  /** For STALLED: which stall it announced (a serial that only grows). */
  readonly stalls: number;
}

/**
 * Whether `need` is a new need, to be announced, after `previous`. A need is
 * announced once: further position updates that leave it the same batch, starting
 * within the range already announced, are the same need (a viewer moving
 * past the end but inside the announced batch is served by it). A need for
 * another batch, or one whose start a seek moved outside the announced
 * range, is new; so is each further stall of a batch.
 */
export function isNewNeed(
  previous: AnnouncedNeed | null,
  need: BatchNeed,
  stalls: number,
): boolean {
  if (previous === null || previous.batchNumber !== need.batchNumber) return true;
  if (need.reason === BatchNeededReason.STALLED || previous.reason === BatchNeededReason.STALLED) {
    return need.reason !== previous.reason || stalls !== previous.stalls;
  }
  return need.startSegment < previous.startSegment || need.startSegment > previous.endSegment;
}

function need(
  settings: StreamSessionSettings,
  reason: BatchNeededReason,
  batchNumber: number,
  startSegment: number,
  now: { furthestSegment: number | null; qualities: readonly Quality[] },
): BatchNeed {
  return {
    reason,
    batchNumber,
    startSegment,
    endSegment: startSegment + settings.batchSize - 1,
    videoSourcePath: settings.videoSourcePath,
    videoStartOffset: startSegment * settings.segmentDuration,
    furthestSegment: now.furthestSegment,
    qualities: now.qualities,
  };
}
