import type { BatchNeededEvent } from '../state/model.js';
import { builder } from './builder.js';
import { BatchNeededReason, Quality } from './quality.js';
import { StreamSession } from './stream-session.js';

export const BatchNeeded = builder.objectRef<BatchNeededEvent>('BatchNeeded').implement({
  description:
    'What an encoder should generate next. batchNumber is what it passes to setCurrentBatch.',
  fields: (t) => ({
    streamSession: t.field({ type: StreamSession, resolve: (e) => e.streamSession }),
    reason: t.field({ type: BatchNeededReason, resolve: (e) => e.reason }),
    batchNumber: t.exposeInt('batchNumber'),
    startSegment: t.exposeInt('startSegment'),
    endSegment: t.exposeInt('endSegment', { description: 'startSegment + batchSize - 1.' }),
    videoSourcePath: t.exposeString('videoSourcePath'),
    videoStartOffset: t.exposeInt('videoStartOffset', {
      description: 'startSegment * segmentDuration.',
    }),
    furthestSegment: t.exposeInt('furthestSegment', {
      nullable: true,
      description: 'Null for FIRST_BATCH while no client has reported.',
    }),
    qualities: t.field({
      type: [Quality],
      description:
        "The renditions the session's clients play now (none yet for FIRST_BATCH without clients), so an encoder may transcode only those.",
      resolve: (e) => e.qualities,
    }),
  }),
});
