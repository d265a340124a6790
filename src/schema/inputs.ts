import { builder } from './builder.js';
import { Quality } from './quality.js';
import {
  between,
  durationSeconds,
  id,
  limits,
  nonNegative,
  path,
  qualities,
  segmentRange,
} from './validation.js';

export const CreateStreamSessionInput = builder.inputType('CreateStreamSessionInput', {
  fields: (t) => ({
    id: t.id({ description: 'Generated (a UUID) when absent; CONFLICT when taken.', validate: id }),
    videoSourcePath: t.string({ required: true, validate: path }),
    segmentDuration: t.int({
      description: 'Defaults from server configuration.',
      validate: between(1, limits.segmentDuration),
    }),
    batchSize: t.int({ validate: between(1, limits.batchSize) }),
    threshold: t.int({ validate: between(0, limits.batchSize) }),
    startSegment: t.int({ defaultValue: 0, validate: nonNegative }),
    durationSeconds: t.float({
      description:
        "v2: the video's length in seconds, when known (> 0). A startSegment past the last segment is BAD_USER_INPUT.",
      validate: durationSeconds,
    }),
    qualities: t.field({
      type: [Quality],
      description:
        "v2: the renditions FIRST_BATCH makes before any client reports; non-empty; the server's default when absent.",
      validate: qualities,
    }),
  }),
});

export const UpdateClientPositionInput = builder.inputType('UpdateClientPositionInput', {
  fields: (t) => ({
    streamSessionId: t.id({ required: true, validate: id }),
    sessionId: t.id({ required: true, validate: id }),
    segmentNumber: t.int({ required: true, validate: nonNegative }),
    quality: t.field({ type: Quality, required: true }),
  }),
});

export const SetCurrentBatchInput = builder.inputType('SetCurrentBatchInput', {
  fields: (t) => ({
    streamSessionId: t.id({ required: true, validate: id }),
    batchNumber: t.int({ required: true, validate: nonNegative }),
    startSegment: t.int({ required: true, validate: nonNegative }),
    endSegment: t.int({ required: true, validate: nonNegative }),
    videoSourcePath: t.string({ required: true, validate: path }),
    videoStartOffset: t.int({ required: true, validate: nonNegative }),
    qualities: t.field({
      type: [Quality],
      description:
        "v2: the renditions this batch makes; the announced need's when absent (the session's qualities when no need is pending).",
      validate: qualities,
    }),
  }),
  validate: segmentRange,
});
