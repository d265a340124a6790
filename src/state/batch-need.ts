import type { BatchState } from './model.js';

/**
 * True when the current batch is complete and the furthest client is within
 * `threshold` segments of its end (or past it). False with no batch or no
 * client. Kept with its v1 meaning (StreamSession.shouldGenerateNextBatch);
 * v2's needs follow coverage (coverage.ts).
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
