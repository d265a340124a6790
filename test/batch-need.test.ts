import { describe, expect, it } from 'vitest';
import {
  type AnnouncedNeed,
  type BatchNeedInput,
  decideBatchNeed,
  isNewNeed,
  shouldGenerateNextBatch,
} from '../src/state/batch-need.js';
import {
  type BatchNeed,
  BatchNeededReason,
  type BatchState,
  Quality,
  type StreamSessionSettings,
} from '../src/state/model.js';

const settings: StreamSessionSettings = {
  id: 's1',
  videoSourcePath: '/media/movie.mp4',
  segmentDuration: 6,
  batchSize: 20,
  threshold: 5,
  startSegment: 0,
};

function batch(overrides: Partial<BatchState> = {}): BatchState {
  return {
    batchNumber: 0,
    startSegment: 0,
    endSegment: 19,
    videoSourcePath: '/media/movie.mp4',
    videoStartOffset: 0,
    generationStarted: 1_000,
    generationEnded: 2_000,
    isComplete: true,
    ...overrides,
  };
}

function input(overrides: Partial<BatchNeedInput> = {}): BatchNeedInput {
  return {
    settings,
    currentBatch: batch(),
    furthestSegment: 0,
    qualities: [Quality.Q720P],
    ...overrides,
  };
}

describe('shouldGenerateNextBatch', () => {
  it('is false without a batch, whatever the clients', () => {
    expect(shouldGenerateNextBatch(null, 100, 5)).toBe(false);
    expect(shouldGenerateNextBatch(null, null, 5)).toBe(false);
  });

  it('is false without a client', () => {
    expect(shouldGenerateNextBatch(batch(), null, 5)).toBe(false);
    expect(shouldGenerateNextBatch(batch(), null, 1_000)).toBe(false);
  });

  it('is false while the batch is being generated, even with the client past its end', () => {
    const generating = batch({ isComplete: false, generationEnded: null });
    expect(shouldGenerateNextBatch(generating, 14, 5)).toBe(false);
    expect(shouldGenerateNextBatch(generating, 19, 5)).toBe(false);
    expect(shouldGenerateNextBatch(generating, 50, 5)).toBe(false);
  });

  it('is true exactly when endSegment - furthest <= threshold', () => {
    // end 19, threshold 5: 19 - 14 = 5 -> true, 19 - 13 = 6 -> false.
    expect(shouldGenerateNextBatch(batch(), 13, 5)).toBe(false);
    expect(shouldGenerateNextBatch(batch(), 14, 5)).toBe(true);
    expect(shouldGenerateNextBatch(batch(), 19, 5)).toBe(true);
    expect(shouldGenerateNextBatch(batch(), 20, 5)).toBe(true);
    expect(shouldGenerateNextBatch(batch(), 500, 5)).toBe(true);
  });

  it('with threshold 0 is true only from the last segment on', () => {
    expect(shouldGenerateNextBatch(batch(), 18, 0)).toBe(false);
    expect(shouldGenerateNextBatch(batch(), 19, 0)).toBe(true);
    expect(shouldGenerateNextBatch(batch(), 20, 0)).toBe(true);
  });

  it('uses the batch end, not its size, for a batch that does not start at 0', () => {
    const later = batch({ batchNumber: 3, startSegment: 60, endSegment: 79 });
    expect(shouldGenerateNextBatch(later, 73, 5)).toBe(false);
    expect(shouldGenerateNextBatch(later, 74, 5)).toBe(true);
  });
});

describe('decideBatchNeed', () => {
  describe('FIRST_BATCH', () => {
    it('without clients: batch 0 at startSegment, furthestSegment null, no qualities', () => {
      const need = decideBatchNeed(
        input({ currentBatch: null, furthestSegment: null, qualities: [] }),
      );
      expect(need).toEqual({
        reason: BatchNeededReason.FIRST_BATCH,
        batchNumber: 0,
        startSegment: 0,
        endSegment: 19,
        videoSourcePath: '/media/movie.mp4',
        videoStartOffset: 0,
        furthestSegment: null,
        qualities: [],
      });
    });

    it('with clients: furthest and qualities are passed through', () => {
      const need = decideBatchNeed(
        input({
          currentBatch: null,
          furthestSegment: 7,
          qualities: [Quality.Q1080P, Quality.Q480P],
        }),
      );
      expect(need).toMatchObject({
        reason: BatchNeededReason.FIRST_BATCH,
        batchNumber: 0,
        startSegment: 0,
        endSegment: 19,
        furthestSegment: 7,
      });
      expect(need?.qualities).toEqual([Quality.Q1080P, Quality.Q480P]);
    });

    it('starts at the session startSegment, not at the furthest client, even when it is far ahead', () => {
      const need = decideBatchNeed(
        input({
          settings: { ...settings, startSegment: 100, segmentDuration: 4, batchSize: 10 },
          currentBatch: null,
          furthestSegment: 500,
        }),
      );
      expect(need).toMatchObject({
        reason: BatchNeededReason.FIRST_BATCH,
        batchNumber: 0,
        startSegment: 100,
        endSegment: 109,
        videoStartOffset: 400,
        furthestSegment: 500,
      });
    });
  });

  it('needs nothing while the current batch is being generated (and has not stalled)', () => {
    const generating = batch({ isComplete: false, generationEnded: null });
    for (const furthest of [null, 0, 14, 19, 20, 21, 1_000]) {
      expect(decideBatchNeed(input({ currentBatch: generating, furthestSegment: furthest }))).toBe(
        null,
      );
      expect(
        decideBatchNeed(
          input({ currentBatch: generating, furthestSegment: furthest, stalled: false }),
        ),
      ).toBe(null);
    }
  });

  describe('STALLED', () => {
    // A claimed batch that does not fit the settings: the need must repeat the claim.
    const claimed = batch({
      batchNumber: 3,
      startSegment: 75,
      endSegment: 90,
      videoSourcePath: '/media/claimed-elsewhere.mp4',
      videoStartOffset: 451,
      isComplete: false,
      generationEnded: null,
    });

    it('an incomplete batch that stalled is needed again: same number, the claimed range and offset', () => {
      const need = decideBatchNeed(
        input({
          currentBatch: claimed,
          stalled: true,
          furthestSegment: 80,
          qualities: [Quality.Q1080P, Quality.Q480P],
        }),
      );
      expect(need).toEqual({
        reason: BatchNeededReason.STALLED,
        batchNumber: 3,
        startSegment: 75,
        endSegment: 90,
        // The session's source: the claim's path is the encoder's business.
        videoSourcePath: '/media/movie.mp4',
        videoStartOffset: 451,
        furthestSegment: 80,
        qualities: [Quality.Q1080P, Quality.Q480P],
      });
    });

    it('whatever the clients: none, far behind, near the end or past it', () => {
      for (const furthest of [null, 0, 76, 89, 90, 91, 1_000]) {
        const need = decideBatchNeed(
          input({
            currentBatch: claimed,
            stalled: true,
            furthestSegment: furthest,
            qualities: furthest === null ? [] : [Quality.Q720P],
          }),
        );
        expect(need, `furthest ${furthest}`).toMatchObject({
          reason: BatchNeededReason.STALLED,
          batchNumber: 3,
          startSegment: 75,
          endSegment: 90,
          videoStartOffset: 451,
          furthestSegment: furthest,
        });
      }
    });

    it('batch 0 stalled is STALLED, not FIRST_BATCH', () => {
      const first = batch({ isComplete: false, generationEnded: null });
      expect(
        decideBatchNeed(input({ currentBatch: first, stalled: true, furthestSegment: null })),
      ).toMatchObject({
        reason: BatchNeededReason.STALLED,
        batchNumber: 0,
        startSegment: 0,
        endSegment: 19,
        videoStartOffset: 0,
      });
    });

    it('the flag means nothing for a complete batch, or without one', () => {
      expect(decideBatchNeed(input({ stalled: true, furthestSegment: 13 }))).toBeNull();
      expect(decideBatchNeed(input({ stalled: true, furthestSegment: 14 }))).toMatchObject({
        reason: BatchNeededReason.APPROACHING_END,
        batchNumber: 1,
        startSegment: 20,
      });
      expect(decideBatchNeed(input({ stalled: true, furthestSegment: 30 }))).toMatchObject({
        reason: BatchNeededReason.SEEK_AHEAD,
        batchNumber: 1,
        startSegment: 30,
      });
      expect(
        decideBatchNeed(input({ currentBatch: null, stalled: true, furthestSegment: null })),
      ).toMatchObject({ reason: BatchNeededReason.FIRST_BATCH, batchNumber: 0 });
    });
  });

  it('needs nothing with a complete batch and no client', () => {
    expect(decideBatchNeed(input({ furthestSegment: null, qualities: [] }))).toBeNull();
  });

  it('needs nothing while the furthest client is more than threshold segments from the end', () => {
    expect(decideBatchNeed(input({ furthestSegment: 0 }))).toBeNull();
    expect(decideBatchNeed(input({ furthestSegment: 13 }))).toBeNull();
  });

  describe('APPROACHING_END', () => {
    it('at exactly end - furthest == threshold: the next batch right after the end', () => {
      const need = decideBatchNeed(input({ furthestSegment: 14 }));
      expect(need).toEqual({
        reason: BatchNeededReason.APPROACHING_END,
        batchNumber: 1,
        startSegment: 20,
        endSegment: 39,
        videoSourcePath: '/media/movie.mp4',
        videoStartOffset: 120,
        furthestSegment: 14,
        qualities: [Quality.Q720P],
      });
    });

    it('at end - furthest == threshold + 1: nothing yet', () => {
      expect(decideBatchNeed(input({ furthestSegment: 13 }))).toBeNull();
    });

    it('up to and including the last segment of the batch', () => {
      for (const furthest of [15, 18, 19]) {
        expect(decideBatchNeed(input({ furthestSegment: furthest }))).toMatchObject({
          reason: BatchNeededReason.APPROACHING_END,
          batchNumber: 1,
          startSegment: 20,
          furthestSegment: furthest,
        });
      }
    });

    it('with threshold 0: only on the last segment', () => {
      const zero = { ...settings, threshold: 0 };
      expect(decideBatchNeed(input({ settings: zero, furthestSegment: 18 }))).toBeNull();
      expect(decideBatchNeed(input({ settings: zero, furthestSegment: 19 }))).toMatchObject({
        reason: BatchNeededReason.APPROACHING_END,
        batchNumber: 1,
        startSegment: 20,
      });
    });

    it('numbers the next batch from the current one and ends it batchSize - 1 later', () => {
      const custom = { ...settings, batchSize: 8, segmentDuration: 10, threshold: 2 };
      const current = batch({ batchNumber: 4, startSegment: 40, endSegment: 47 });
      expect(
        decideBatchNeed(input({ settings: custom, currentBatch: current, furthestSegment: 44 })),
      ).toBeNull();
      expect(
        decideBatchNeed(input({ settings: custom, currentBatch: current, furthestSegment: 45 })),
      ).toMatchObject({
        reason: BatchNeededReason.APPROACHING_END,
        batchNumber: 5,
        startSegment: 48,
        endSegment: 55,
        videoStartOffset: 480,
      });
    });
  });

  describe('SEEK_AHEAD', () => {
    it('when the furthest client is past the end: starts at the client, batchNumber current + 1', () => {
      const need = decideBatchNeed(
        input({
          currentBatch: batch({ batchNumber: 2, startSegment: 40, endSegment: 59 }),
          furthestSegment: 75,
          qualities: [Quality.Q480P],
        }),
      );
      expect(need).toEqual({
        reason: BatchNeededReason.SEEK_AHEAD,
        batchNumber: 3,
        startSegment: 75,
        endSegment: 94,
        videoSourcePath: '/media/movie.mp4',
        videoStartOffset: 450,
        furthestSegment: 75,
        qualities: [Quality.Q480P],
      });
    });

    it('at furthest == endSegment + 1: SEEK_AHEAD starting where APPROACHING_END would', () => {
      const need = decideBatchNeed(input({ furthestSegment: 20 }));
      expect(need).toMatchObject({
        reason: BatchNeededReason.SEEK_AHEAD,
        batchNumber: 1,
        startSegment: 20,
        endSegment: 39,
        videoStartOffset: 120,
      });
      // Same batch and start as the APPROACHING_END need at 19: one need.
      const approaching = decideBatchNeed(input({ furthestSegment: 19 }));
      expect(approaching?.reason).toBe(BatchNeededReason.APPROACHING_END);
      expect(isNewNeed(announced(approaching!), need!, 0)).toBe(false);
    });

    it('with threshold 0, just past the end', () => {
      const need = decideBatchNeed(
        input({ settings: { ...settings, threshold: 0 }, furthestSegment: 21 }),
      );
      expect(need).toMatchObject({
        reason: BatchNeededReason.SEEK_AHEAD,
        batchNumber: 1,
        startSegment: 21,
        endSegment: 40,
      });
    });
  });

  it('computes endSegment = start + batchSize - 1 and videoStartOffset = start * segmentDuration', () => {
    const custom = { ...settings, batchSize: 1, segmentDuration: 7, startSegment: 3 };
    expect(
      decideBatchNeed(input({ settings: custom, currentBatch: null, furthestSegment: null })),
    ).toMatchObject({ startSegment: 3, endSegment: 3, videoStartOffset: 21 });
    const current = batch({ startSegment: 3, endSegment: 3 });
    expect(
      decideBatchNeed(input({ settings: custom, currentBatch: current, furthestSegment: 3 })),
    ).toMatchObject({
      reason: BatchNeededReason.APPROACHING_END,
      startSegment: 4,
      endSegment: 4,
      videoStartOffset: 28,
    });
    expect(
      decideBatchNeed(input({ settings: custom, currentBatch: current, furthestSegment: 10 })),
    ).toMatchObject({
      reason: BatchNeededReason.SEEK_AHEAD,
      startSegment: 10,
      endSegment: 10,
      videoStartOffset: 70,
    });
  });

  it('takes videoSourcePath from the session settings', () => {
    const custom = { ...settings, videoSourcePath: '/other.mkv' };
    expect(decideBatchNeed(input({ settings: custom, furthestSegment: 19 }))?.videoSourcePath).toBe(
      '/other.mkv',
    );
    expect(decideBatchNeed(input({ settings: custom, currentBatch: null }))?.videoSourcePath).toBe(
      '/other.mkv',
    );
  });
});

/** What a session records when it announces `need` (at its `stalls`-th stall). */
function announced(need: BatchNeed, stalls = 0): AnnouncedNeed {
  return {
    reason: need.reason,
    batchNumber: need.batchNumber,
    startSegment: need.startSegment,
    endSegment: need.endSegment,
    stalls,
  };
}

/** A need built by hand: only reason, batch number and range matter to isNewNeed. */
function aNeed(
  reason: BatchNeededReason,
  batchNumber: number,
  startSegment: number,
  endSegment = startSegment + 19,
): BatchNeed {
  return {
    reason,
    batchNumber,
    startSegment,
    endSegment,
    videoSourcePath: '/media/movie.mp4',
    videoStartOffset: startSegment * 6,
    furthestSegment: startSegment,
    qualities: [Quality.Q720P],
  };
}

const { FIRST_BATCH, APPROACHING_END, SEEK_AHEAD, STALLED } = BatchNeededReason;

describe('isNewNeed', () => {
  it('anything is new when nothing was announced yet', () => {
    expect(isNewNeed(null, aNeed(FIRST_BATCH, 0, 0), 0)).toBe(true);
    expect(isNewNeed(null, aNeed(APPROACHING_END, 1, 20), 0)).toBe(true);
    expect(isNewNeed(null, aNeed(STALLED, 1, 20), 1)).toBe(true);
  });

  it('the same need again is not new', () => {
    const need = decideBatchNeed(input({ furthestSegment: 14 }))!;
    expect(isNewNeed(announced(need), need, 0)).toBe(false);
    const first = decideBatchNeed(input({ currentBatch: null }))!;
    expect(isNewNeed(announced(first), first, 0)).toBe(false);
  });

  it('ignores what else the need carries: furthest client, qualities, offset, path', () => {
    const a = decideBatchNeed(input({ furthestSegment: 14, qualities: [Quality.Q720P] }))!;
    const b = decideBatchNeed(input({ furthestSegment: 17, qualities: [Quality.Q1080P] }))!;
    expect(isNewNeed(announced(a), b, 0)).toBe(false);
    expect(
      isNewNeed(
        announced(a),
        { ...a, videoSourcePath: '/other.mp4', videoStartOffset: 999, furthestSegment: null },
        0,
      ),
    ).toBe(false);
  });

  it('a need for another batch number is new, even for the same range', () => {
    const previous = announced(aNeed(APPROACHING_END, 1, 20));
    expect(isNewNeed(previous, aNeed(APPROACHING_END, 2, 20), 0)).toBe(true);
    expect(isNewNeed(previous, aNeed(APPROACHING_END, 0, 20), 0)).toBe(true);
    expect(isNewNeed(previous, aNeed(SEEK_AHEAD, 2, 25), 0)).toBe(true);
    expect(isNewNeed(previous, aNeed(FIRST_BATCH, 0, 20), 0)).toBe(true);
  });

  it('for the same batch, a start within the announced range is the same need, bounds included', () => {
    // APPROACHING_END announced batch 1 as segments 20..39.
    const previous = announced(aNeed(APPROACHING_END, 1, 20, 39));
    for (const start of [20, 21, 30, 38, 39]) {
      // A viewer moving past the end but inside batch 1 is served by it.
      expect(isNewNeed(previous, aNeed(SEEK_AHEAD, 1, start), 0), `start ${start}`).toBe(false);
    }
    expect(isNewNeed(previous, aNeed(APPROACHING_END, 1, 20), 0)).toBe(false);
  });

  it('for the same batch, a start a seek moved outside the announced range is new', () => {
    const previous = announced(aNeed(SEEK_AHEAD, 1, 45, 64));
    // Beyond its end.
    expect(isNewNeed(previous, aNeed(SEEK_AHEAD, 1, 65), 0)).toBe(true);
    expect(isNewNeed(previous, aNeed(SEEK_AHEAD, 1, 500), 0)).toBe(true);
    // Below its start (a seek back).
    expect(isNewNeed(previous, aNeed(SEEK_AHEAD, 1, 44), 0)).toBe(true);
    expect(isNewNeed(previous, aNeed(APPROACHING_END, 1, 20), 0)).toBe(true);
    // Inside it.
    expect(isNewNeed(previous, aNeed(SEEK_AHEAD, 1, 45), 0)).toBe(false);
    expect(isNewNeed(previous, aNeed(SEEK_AHEAD, 1, 64), 0)).toBe(false);
  });

  it("uses the announced end, not the new need's", () => {
    // Announced as 20..20 (batchSize 1): a need starting at 21 is outside it,
    // although 21 lies within the new need's own (longer) range.
    const previous = announced(aNeed(APPROACHING_END, 1, 20, 20));
    expect(isNewNeed(previous, aNeed(SEEK_AHEAD, 1, 21, 60), 0)).toBe(true);
    expect(isNewNeed(previous, aNeed(SEEK_AHEAD, 1, 20, 60), 0)).toBe(false);
  });

  it('follows decideBatchNeed as a client walks past the end of a batch and seeks', () => {
    // batch 0 is 0..19; batch 1 announced from 20 when the client reaches 14.
    let previous: AnnouncedNeed | null = null;
    const fired: string[] = [];
    for (const furthest of [10, 13, 14, 15, 19, 20, 30, 39, 40, 41, 60, 59, 17, 18]) {
      const need = decideBatchNeed(input({ furthestSegment: furthest }));
      if (need !== null && isNewNeed(previous, need, 0)) {
        fired.push(`${furthest}: ${need.reason} ${need.batchNumber}@${need.startSegment}`);
        previous = announced(need);
      }
    }
    expect(fired).toEqual([
      '14: APPROACHING_END 1@20',
      // 15..39 lie within 20..39 as announced.
      '40: SEEK_AHEAD 1@40',
      // 41..59 lie within 40..59.
      '60: SEEK_AHEAD 1@60',
      // A seek back below 60: new.
      '59: SEEK_AHEAD 1@59',
      '17: APPROACHING_END 1@20',
    ]);
  });

  describe('STALLED', () => {
    it('the first stall of a batch is new after any other need for it', () => {
      const stalled = aNeed(STALLED, 1, 20, 39);
      expect(isNewNeed(announced(aNeed(APPROACHING_END, 1, 20, 39)), stalled, 1)).toBe(true);
      expect(isNewNeed(announced(aNeed(SEEK_AHEAD, 1, 25)), stalled, 1)).toBe(true);
      expect(isNewNeed(announced(aNeed(FIRST_BATCH, 0, 0)), aNeed(STALLED, 0, 0), 1)).toBe(true);
    });

    it('the same stall is announced once, whatever the clients do', () => {
      const previous = announced(aNeed(STALLED, 1, 20, 39), 1);
      expect(isNewNeed(previous, aNeed(STALLED, 1, 20, 39), 1)).toBe(false);
      expect(isNewNeed(previous, { ...aNeed(STALLED, 1, 20, 39), furthestSegment: 90 }, 1)).toBe(
        false,
      );
    });

    it('each further stall is new', () => {
      expect(isNewNeed(announced(aNeed(STALLED, 1, 20, 39), 1), aNeed(STALLED, 1, 20, 39), 2)).toBe(
        true,
      );
      expect(isNewNeed(announced(aNeed(STALLED, 1, 20, 39), 2), aNeed(STALLED, 1, 20, 39), 3)).toBe(
        true,
      );
    });

    it('a need of another reason after a stall of the same batch is new, even within the range', () => {
      const previous = announced(aNeed(STALLED, 1, 20, 39), 1);
      expect(isNewNeed(previous, aNeed(SEEK_AHEAD, 1, 25), 0)).toBe(true);
      expect(isNewNeed(previous, aNeed(APPROACHING_END, 1, 20, 39), 0)).toBe(true);
      expect(isNewNeed(previous, aNeed(APPROACHING_END, 1, 20, 39), 1)).toBe(true);
    });

    it('a stall of the next batch is new whatever the count', () => {
      const previous = announced(aNeed(STALLED, 1, 20, 39), 1);
      expect(isNewNeed(previous, aNeed(STALLED, 2, 40, 59), 1)).toBe(true);
    });

    it('the stall count matters only for STALLED needs', () => {
      const previous = announced(aNeed(APPROACHING_END, 1, 20, 39), 0);
      expect(isNewNeed(previous, aNeed(SEEK_AHEAD, 1, 25), 5)).toBe(false);
    });
  });
});
