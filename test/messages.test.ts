/**
 * The error texts both stores share (src/state/messages.ts). That the Lua
 * fills them in the same way is test/redis-messages.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { MESSAGES, type MessageName, message } from '../src/state/messages.js';

describe('message', () => {
  it('fills in every value of every message', () => {
    const values = {
      id: 'abc',
      batchNumber: 3,
      expected: 2,
      segmentNumber: 50,
      lastSegment: 49,
      startSegment: 10,
      endSegment: 29,
      videoStartOffset: 999,
      segmentDuration: 6,
      pending: '1, 2',
      qualities: '480p',
      other: 1,
    };
    const filled = Object.fromEntries(
      (Object.keys(MESSAGES) as MessageName[]).map((name) => [name, message(name, values)]),
    );
    expect(filled).toEqual({
      streamSessionNotFound: "Stream session 'abc' not found.",
      streamSessionExists: "Stream session 'abc' already exists.",
      pastLastSegment: "Segment 50 is past the last segment (49) of stream session 'abc'.",
      claimBackwards: 'startSegment (10) must not be greater than endSegment (29).',
      claimPastEnd: "endSegment 29 is past the last segment (49) of stream session 'abc'.",
      claimOffset: 'videoStartOffset must be startSegment * segmentDuration = 10 * 6 = 2, not 999.',
      claimSource: "videoSourcePath is not that of stream session 'abc'.",
      claimNoQualities: 'qualities must name at least one rendition when given.',
      batchStillGenerating:
        "Batch 3 of stream session 'abc' was already claimed and is still being generated.",
      batchComplete: "Batch 3 of stream session 'abc' was already claimed and is complete.",
      unexpectedBatch: "Stream session 'abc' expects batch 2 next, not batch 3.",
      needsPending:
        "Stream session 'abc' has needs pending (batches 1, 2): claim one of them, not batch 3.",
      claimMissesNeed:
        "Batch 3 of stream session 'abc' was announced from segment 10: the claimed range must contain it.",
      claimMissesQualities:
        "Batch 3 of stream session 'abc' must make the renditions it was announced for (480p).",
      stalledRange: "Batch 3 of stream session 'abc' stalled: claim its range 10-29 again.",
      stalledQualities:
        "Batch 3 of stream session 'abc' stalled: claim it again in its renditions (480p).",
      claimOverlapsBatch:
        "Batch 3 of stream session 'abc' overlaps batch 1 (segments 10-29), still being generated in a shared rendition.",
      claimOverlapsNeed:
        "Batch 3 of stream session 'abc' overlaps batch 1 (segments 10-29), announced for a shared rendition.",
      notABatch: "Stream session 'abc' has no batch 3.",
      renewComplete: "Batch 3 of stream session 'abc' is complete: there is no claim to renew.",
      renewStalled:
        "Batch 3 of stream session 'abc' stalled and was announced again: claim it anew to make it.",
    });
  });

  it('puts a value in as it is, even one that looks like a placeholder', () => {
    expect(
      message('unexpectedBatch', { id: '{expected} $& \\', expected: 0, batchNumber: 1 }),
    ).toBe("Stream session '{expected} $& \\' expects batch 0 next, not batch 1.");
  });

  it('leaves a placeholder without a value as written', () => {
    const values = { id: 'x' } as unknown as Parameters<typeof message<'unexpectedBatch'>>[1];
    expect(message('unexpectedBatch', values)).toBe(
      "Stream session 'x' expects batch {expected} next, not batch {batchNumber}.",
    );
  });
});
