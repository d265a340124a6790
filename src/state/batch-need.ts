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
    currentBatch !== null &&
    currentBatch.isComplete &&
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

/**
 * Two needs with one key are one need: it is announced once. A need whose
 * batch or start changes (the next batch, a seek) is a new one.
 */
export function batchNeedKey(need: Pick<BatchNeed, 'batchNumber' | 'startSegment'>): string {
  return `${need.batchNumber}@${need.startSegment}`;
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
