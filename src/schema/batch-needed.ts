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
    endSegment: t.exposeInt('endSegment', {
      description:
        "startSegment + batchSize - 1, cut short (v2) at the video's last segment and before the next covered range of these qualities.",
    }),
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
        "The renditions to make: those of the clients this need serves (v2: for FIRST_BATCH without clients, the session's qualities; never empty), so an encoder transcodes only what is watched.",
      resolve: (e) => e.qualities,
    }),
    segmentDuration: t.exposeInt('segmentDuration', {
      description: "v2: seconds of video in one segment (the session's segmentDuration).",
    }),
    isLastBatch: t.exposeBoolean('isLastBatch', {
      description: "v2: true when endSegment is the video's last segment.",
    }),
  }),
});
