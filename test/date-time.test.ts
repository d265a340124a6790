import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { toRfc3339 } from '../src/schema/date-time.js';

describe('toRfc3339', () => {
  it('formats as Date#toISOString does, for any instant of years 1970 to 9999', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 253402300799999 }), (ms) => {
        expect(toRfc3339(ms)).toBe(new Date(ms).toISOString());
      }),
      { numRuns: 20_000 },
    );
  });

  it('stays right across seconds, milliseconds below 100 and 10, and going back in time', () => {
    const base = Date.UTC(2026, 10, 25, 6, 59, 59);
    for (const ms of [base + 999, base + 1000, base + 1005, base + 1050, base + 7, base, 0, 999]) {
      expect(toRfc3339(ms)).toBe(new Date(ms).toISOString());
    }
  });

  it('falls back to Date outside its range, and refuses what is not an instant', () => {
    expect(toRfc3339(-1)).toBe('1969-12-31T23:59:59.999Z');
    expect(toRfc3339(1.5)).toBe(new Date(1.5).toISOString());
    expect(() => toRfc3339(Number.NaN)).toThrow(RangeError);
  });
});
