import { z } from 'zod';

/** Bounds on what clients may send: generous for real use, small enough to store safely. */
export const limits = {
  idLength: 128,
  pathLength: 4096,
  segmentDuration: 3_600,
  batchSize: 100_000,
  pageSize: 1_000,
  tokenTtlSeconds: 7 * 24 * 3_600,
  defaultTokenTtlSeconds: 6 * 3_600,
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
