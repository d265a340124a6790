import {
  BatchNeededReason as BatchNeededReasonValues,
  Quality as QualityValues,
} from '../state/model.js';
import { builder } from './builder.js';

export const Quality = builder.enumType(QualityValues, {
  name: 'Quality',
  description: 'The rendition a player is playing. Stored and shown as 1080p, 720p, 480p.',
});

export const BatchNeededReason = builder.enumType('BatchNeededReason', {
  values: {
    [BatchNeededReasonValues.FIRST_BATCH]: {
      description: 'The stream session has no batch yet: batch 0 starts at its startSegment.',
    },
    [BatchNeededReasonValues.APPROACHING_END]: {
      description: "The furthest client is within `threshold` segments of the current batch's end.",
    },
    [BatchNeededReasonValues.SEEK_AHEAD]: {
      description:
        "The furthest client is already past the current batch's end: the next batch starts where it is, not at endSegment + 1.",
    },
    [BatchNeededReasonValues.STALLED]: {
      description:
        'The current batch was claimed but not completed within the batch timeout: generate it again.',
    },
  } as const,
});
