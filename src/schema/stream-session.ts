import type { StreamSessionView } from '../state/model.js';
import { BatchState } from './batch-state.js';
import { builder } from './builder.js';
import { ClientPosition } from './client-position.js';
import { CoveredRange } from './covered-range.js';
import { DateTime } from './date-time.js';
import { Quality } from './quality.js';

export const StreamSession = builder.objectRef<StreamSessionView>('StreamSession').implement({
  description: 'One playback of one video, shared by every client watching it.',
  fields: (t) => ({
    id: t.exposeID('id'),
    videoSourcePath: t.exposeString('videoSourcePath'),
    segmentDuration: t.exposeInt('segmentDuration', {
      description: 'Seconds of video in one HLS segment.',
    }),
    batchSize: t.exposeInt('batchSize', { description: 'Segments in one batch.' }),
    threshold: t.exposeInt('threshold', {
      description:
        'A client within `threshold` segments of the end of its covered range makes a need (v1: when currentBatch.endSegment - furthestSegment <= threshold).',
    }),
    startSegment: t.exposeInt('startSegment', {
      description: 'The segment playback started at; batch 0 begins here.',
    }),
    durationSeconds: t.exposeFloat('durationSeconds', {
      nullable: true,
      description:
        "v2: the video's length, when known; null for a source of unknown length (a live channel).",
    }),
    lastSegment: t.exposeInt('lastSegment', {
      nullable: true,
      description:
        "v2: the video's last segment, ceil(durationSeconds / segmentDuration) - 1; null when the length is unknown. No batch reaches past it and no need starts after it.",
    }),
    qualities: t.field({
      type: [Quality],
      description:
        "v2: the renditions FIRST_BATCH makes: from createStreamSession, else the server's default.",
      resolve: (s) => s.qualities,
    }),
    currentBatch: t.field({
      type: BatchState,
      nullable: true,
      description: 'The batch claimed most recently (v1: the one batch).',
      resolve: (s) =>
        s.currentBatch !== null && s.stalledBatches.includes(s.currentBatch.batchNumber)
          ? { ...s.currentBatch, stalled: true }
          : s.currentBatch,
    }),
    batches: t.field({
      type: [BatchState],
      description:
        'v2: every batch being generated, and the completed ones whose segments are not released, by batchNumber.',
      resolve: (s) =>
        s.stalledBatches.length === 0
          ? s.batches
          : s.batches.map((batch) =>
              s.stalledBatches.includes(batch.batchNumber) ? { ...batch, stalled: true } : batch,
            ),
    }),
    coverage: t.field({
      type: [CoveredRange],
      description:
        'v2: the segments made or being made (not those only announced), per rendition, as merged ranges ordered by quality then startSegment.',
      resolve: (s) => s.coverage,
    }),
    clientPositions: t.field({
      type: [ClientPosition],
      description: 'Every client in the session, ordered by sessionId.',
      resolve: (s) => s.clientPositions,
    }),
    clientCount: t.int({
      description: 'How many clients the session has now (clientPositions without the list).',
      resolve: (s) => s.clientPositions.length,
    }),
    furthestSegment: t.exposeInt('furthestSegment', {
      nullable: true,
      description:
        "The highest segmentNumber among the session's clients now; null when it has none. A client that leaves, expires or seeks back lowers it.",
    }),
    slowestSegment: t.exposeInt('slowestSegment', {
      nullable: true,
      description:
        "The lowest segmentNumber among the session's clients now; null when it has none. Segments of batches wholly behind it are no longer watched by anyone: an encoder may delete them.",
    }),
    shouldGenerateNextBatch: t.exposeBoolean('shouldGenerateNextBatch', {
      description:
        'True when the current batch is complete and endSegment - furthestSegment <= threshold (false with no batch or no client). Kept with its v1 meaning.',
    }),
    createdAt: t.field({ type: DateTime, resolve: (s) => s.createdAt }),
    updatedAt: t.field({ type: DateTime, resolve: (s) => s.updatedAt }),
  }),
});
