import type { BatchState as BatchStateData } from '../state/model.js';
import { builder } from './builder.js';
import { DateTime } from './date-time.js';

export const BatchState = builder.objectRef<BatchStateData>('BatchState').implement({
  description: 'The batch of segments being, or last, generated for a stream session.',
  fields: (t) => ({
    batchNumber: t.exposeInt('batchNumber', {
      description: '0, 1, 2, ... in the order batches were claimed.',
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
  }),
});
