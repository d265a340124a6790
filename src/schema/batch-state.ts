import type { BatchState as BatchStateData } from '../state/model.js';
import { builder } from './builder.js';
import { DateTime } from './date-time.js';
import { Quality } from './quality.js';

/**
 * A batch, and whether it has stalled: that is the session's to know (a
 * claim or a completion ends it), so a session's currentBatch and batches
 * pass it on.
 */
export type BatchStateWithStall = BatchStateData & { readonly stalled?: boolean };

export const BatchState = builder.objectRef<BatchStateWithStall>('BatchState').implement({
  description: 'A batch of segments being, or already, generated for a stream session.',
  fields: (t) => ({
    batchNumber: t.exposeInt('batchNumber', {
      description:
        '0, 1, 2, ... in the order needs were announced (v1: claimed); a claim without an announced need takes the next unused number.',
    }),
    startSegment: t.exposeInt('startSegment'),
    endSegment: t.exposeInt('endSegment', { description: 'Inclusive.' }),
    videoSourcePath: t.exposeString('videoSourcePath'),
    videoStartOffset: t.exposeInt('videoStartOffset', {
      description: 'Seconds into the source where this batch starts.',
    }),
    generationStarted: t.field({ type: DateTime, resolve: (b) => b.generationStarted }),
    generationEnded: t.field({
      type: DateTime,
      nullable: true,
      description: 'Null until the batch is complete.',
      resolve: (b) => b.generationEnded,
    }),
    isComplete: t.exposeBoolean('isComplete'),
    qualities: t.field({
      type: [Quality],
      description: 'v2: the renditions this batch makes.',
      resolve: (b) => b.qualities,
    }),
    isLastBatch: t.exposeBoolean('isLastBatch', {
      description: "v2: true when endSegment is the video's last segment.",
    }),
    isStalled: t.boolean({
      description:
        'True when the batch was claimed but not completed within the batch timeout (it was announced STALLED), until it is claimed again or completed.',
      resolve: (b) => b.stalled === true,
    }),
  }),
});
