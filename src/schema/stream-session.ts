import type { StreamSessionView } from '../state/model.js';
import { BatchState } from './batch-state.js';
import { builder } from './builder.js';
import { ClientPosition } from './client-position.js';
import { DateTime } from './date-time.js';

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
        'A next batch is needed when currentBatch.endSegment - furthestSegment <= threshold.',
    }),
    startSegment: t.exposeInt('startSegment', {
      description: 'The segment playback started at; batch 0 begins here.',
    }),
    currentBatch: t.field({
      type: BatchState,
      nullable: true,
      resolve: (s) =>
        s.currentBatch !== null && s.currentBatchStalled
          ? { ...s.currentBatch, stalled: true }
          : s.currentBatch,
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
        'True when the current batch is complete and endSegment - furthestSegment <= threshold (false with no batch or no client).',
    }),
    createdAt: t.field({ type: DateTime, resolve: (s) => s.createdAt }),
    updatedAt: t.field({ type: DateTime, resolve: (s) => s.updatedAt }),
  }),
});
