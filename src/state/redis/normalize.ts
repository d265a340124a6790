import type { BatchNeed, BatchState, Quality } from '../model.js';

/**
 * cjson writes an empty list as {} (an empty Lua table is both): a list
 * from a script, made a list again.
 */
export function list<T>(value: readonly T[] | Record<string, never> | undefined): T[] {
  return Array.isArray(value) ? value : [];
}

/**
 * A need as the scripts encode it, made whole: cjson leaves out nil fields
 * and writes an empty list as {}. Used by the store (what a change
 * announced) and by the event bus (what arrives on the channel).
 */
export function normalize<T extends BatchNeed & { sequence: number }>(need: T): T {
  return {
    ...need,
    furthestSegment: need.furthestSegment ?? null,
    qualities: list<Quality>(need.qualities),
  };
}

/** A batch as a script encodes it (a BatchRecord, or a BatchState), as the API shows it: publicBatch in stream-session.ts. */
export function publicBatch(b: BatchState): BatchState {
  return {
    batchNumber: b.batchNumber,
    startSegment: b.startSegment,
    endSegment: b.endSegment,
    videoSourcePath: b.videoSourcePath,
    videoStartOffset: b.videoStartOffset,
    generationStarted: b.generationStarted,
    generationEnded: b.generationEnded ?? null,
    isComplete: b.isComplete,
    qualities: list<Quality>(b.qualities),
    isLastBatch: b.isLastBatch,
  };
}
