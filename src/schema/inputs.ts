import { z } from 'zod';
import { builder } from './builder.js';
import { Quality } from './quality.js';
import { between, id, limits, nonNegative, path } from './validation.js';

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
  }),
  // Loose: a plain object schema would strip the other fields from the input.
  validate: z
    .looseObject({ startSegment: z.number(), endSegment: z.number() })
    .refine((batch) => batch.startSegment <= batch.endSegment, {
      path: ['endSegment'],
      message: 'must not be less than startSegment',
    }),
});
