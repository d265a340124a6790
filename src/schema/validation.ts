import { z } from 'zod';
import { QUALITIES, Quality } from '../state/model.js';

/** Bounds on what clients may send: generous for real use, small enough to store safely. */
export const limits = {
  idLength: 128,
  pathLength: 4096,
  segmentDuration: 3_600,
  batchSize: 100_000,
  pageSize: 1_000,
  tokenTtlSeconds: 7 * 24 * 3_600,
  defaultTokenTtlSeconds: 6 * 3_600,
  /** A video's length: 7 days, far beyond any film, short of overflowing segment numbers. */
  durationSeconds: 7 * 24 * 3_600,
} as const;

// Control characters in ids and paths corrupt logs and key names; nobody needs them.
const printable = /^[^\p{Cc}]*$/u;

export const id = z
  .string()
  .min(1, 'must not be empty')
  .max(limits.idLength, `must be at most ${limits.idLength} characters`)
  .regex(printable, 'must not contain control characters');

export const path = z
  .string()
  .min(1, 'must not be empty')
  .max(limits.pathLength, `must be at most ${limits.pathLength} characters`)
  .regex(printable, 'must not contain control characters');

export const nonNegative = z.number().int().min(0, 'must be 0 or more');

export const between = (min: number, max: number) =>
  z
    .number()
    .int()
    .min(min, `must be between ${min} and ${max}`)
    .max(max, `must be between ${min} and ${max}`);

const durationMessage = `must be more than 0 and at most ${limits.durationSeconds} seconds`;

/** A video's length in seconds: more than 0, finite (zod 4 refuses NaN and Infinity), bounded. */
export const durationSeconds = z
  .number()
  .positive(durationMessage)
  .max(limits.durationSeconds, durationMessage);

/**
 * A list of renditions: at least one. A rendition named twice is taken once,
 * and the list comes out best first (the order the state layer keeps).
 */
export const qualities = z
  .array(z.enum(Quality))
  .min(1, 'must name at least one quality')
  .transform((named) => QUALITIES.filter((quality) => named.includes(quality)));

/**
 * startSegment <= endSegment, of an input or a field's arguments. Loose: a
 * plain object schema would strip the other fields from what it validates.
 */
export const segmentRange = z
  .looseObject({ startSegment: z.number(), endSegment: z.number() })
  .refine((range) => range.startSegment <= range.endSegment, {
    path: ['endSegment'],
    message: 'must not be less than startSegment',
  });
