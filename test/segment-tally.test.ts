import { describe, expect, it } from 'vitest';
import { SegmentTally } from '../src/state/segment-tally.js';
import { seededRandom } from './seeded-random.js';

const prng = seededRandom;

/** The obvious multiset, to compare against. */
class BruteMultiset {
  readonly values: number[] = [];
  add(v: number): void {
    this.values.push(v);
  }
  remove(v: number): boolean {
    const i = this.values.indexOf(v);
    if (i < 0) return false;
    this.values.splice(i, 1);
    return true;
  }
  get max(): number | null {
    return this.values.length === 0 ? null : Math.max(...this.values);
  }
  get min(): number | null {
    return this.values.length === 0 ? null : Math.min(...this.values);
  }
}

function expectSame(tally: SegmentTally, brute: BruteMultiset, step: number): void {
  const actual = { step, size: tally.size, min: tally.min, max: tally.max };
  expect(actual).toEqual({ step, size: brute.values.length, min: brute.min, max: brute.max });
}

describe('SegmentTally', () => {
  it('is empty at first: size 0, min and max null', () => {
    const t = new SegmentTally();
    expect(t.size).toBe(0);
    expect(t.min).toBeNull();
    expect(t.max).toBeNull();
  });

  it('tracks min, max and size as values are added', () => {
    const t = new SegmentTally();
    t.add(5);
    expect([t.size, t.min, t.max]).toEqual([1, 5, 5]);
    t.add(2);
    t.add(9);
    t.add(7);
    expect([t.size, t.min, t.max]).toEqual([4, 2, 9]);
    t.add(0);
    expect([t.size, t.min, t.max]).toEqual([5, 0, 9]);
  });

  it('handles negative values', () => {
    const t = new SegmentTally();
    t.add(-3);
    t.add(4);
    t.add(-10);
    expect([t.min, t.max]).toEqual([-10, 4]);
  });

  it('remove returns false for a value it does not hold and changes nothing', () => {
    const t = new SegmentTally();
    expect(t.remove(3)).toBe(false);
    expect(t.size).toBe(0);
    t.add(1);
    expect(t.remove(3)).toBe(false);
    expect([t.size, t.min, t.max]).toEqual([1, 1, 1]);
  });

  it('remove returns true and updates min/max when the extreme leaves', () => {
    const t = new SegmentTally();
    for (const v of [4, 8, 1, 6]) t.add(v);
    expect(t.remove(8)).toBe(true);
    expect([t.size, t.min, t.max]).toEqual([3, 1, 6]);
    expect(t.remove(1)).toBe(true);
    expect([t.size, t.min, t.max]).toEqual([2, 4, 6]);
    expect(t.remove(4)).toBe(true);
    expect(t.remove(6)).toBe(true);
    expect([t.size, t.min, t.max]).toEqual([0, null, null]);
    expect(t.remove(6)).toBe(false);
  });

  it('counts duplicates: a value stays until its last occurrence is removed', () => {
    const t = new SegmentTally();
    t.add(10);
    t.add(10);
    t.add(10);
    t.add(3);
    expect(t.size).toBe(4);
    expect(t.remove(10)).toBe(true);
    expect([t.size, t.max]).toEqual([3, 10]);
    expect(t.remove(10)).toBe(true);
    expect([t.size, t.max]).toEqual([2, 10]);
    expect(t.remove(10)).toBe(true);
    expect([t.size, t.max]).toEqual([1, 3]);
    expect(t.remove(10)).toBe(false);
    expect(t.size).toBe(1);
  });

  it('a removed value that is added again counts once, not twice', () => {
    const t = new SegmentTally();
    t.add(1);
    t.add(5);
    t.remove(5);
    t.add(5);
    expect(t.max).toBe(5);
    expect(t.remove(5)).toBe(true);
    expect(t.max).toBe(1);
    expect(t.remove(5)).toBe(false);
  });

  it('move relocates one occurrence and keeps the size', () => {
    const t = new SegmentTally();
    t.add(2);
    t.add(2);
    t.add(7);
    t.move(7, 1);
    expect([t.size, t.min, t.max]).toEqual([3, 1, 2]);
    t.move(2, 12);
    expect([t.size, t.min, t.max]).toEqual([3, 1, 12]);
    // One 2 is left.
    expect(t.remove(2)).toBe(true);
    expect(t.remove(2)).toBe(false);
  });

  it('move to the same value changes nothing', () => {
    const t = new SegmentTally();
    t.add(4);
    t.add(9);
    t.move(9, 9);
    expect([t.size, t.min, t.max]).toEqual([2, 4, 9]);
    expect(t.remove(9)).toBe(true);
    expect(t.remove(9)).toBe(false);
  });

  it('move of the only value keeps min == max', () => {
    const t = new SegmentTally();
    t.add(3);
    t.move(3, 40);
    expect([t.size, t.min, t.max]).toEqual([1, 40, 40]);
    t.move(40, -2);
    expect([t.size, t.min, t.max]).toEqual([1, -2, -2]);
  });

  it('clear empties it, and it works normally afterwards', () => {
    const t = new SegmentTally();
    for (let i = 0; i < 50; i++) t.add(i % 7);
    t.clear();
    expect([t.size, t.min, t.max]).toEqual([0, null, null]);
    expect(t.remove(3)).toBe(false);
    t.add(8);
    expect([t.size, t.min, t.max]).toEqual([1, 8, 8]);
  });

  // readEvery 1 compares min/max after every step; a larger one reads them
  // less often (size is still compared every step), which lets stale heap
  // entries pile up the way they do when nobody asks for a while.
  it.each([
    [1, 1],
    [2, 1],
    [3, 1],
    [42, 7],
    [2026, 13],
  ])(
    'matches a brute-force multiset after every step of 5,000 random operations (seed %i, min/max read every %i)',
    (seed, readEvery) => {
      const random = prng(seed);
      const int = (n: number) => Math.floor(random() * n);
      const t = new SegmentTally();
      const brute = new BruteMultiset();
      // A small range forces duplicates, re-adds of removed values and compactions.
      const range = seed % 2 === 0 ? 30 : 400;
      for (let step = 0; step < 5_000; step++) {
        const op = int(10);
        if (op < 4 || brute.values.length === 0) {
          const v = int(range) - 5;
          t.add(v);
          brute.add(v);
        } else if (op < 6) {
          // Remove something held, or (sometimes) something that is not.
          const v =
            int(3) === 0 ? int(range) - 5 : (brute.values[int(brute.values.length)] as number);
          expect(t.remove(v)).toBe(brute.remove(v));
        } else if (op < 9) {
          const from = brute.values[int(brute.values.length)] as number;
          const to = int(range) - 5;
          t.move(from, to);
          brute.remove(from);
          brute.add(to);
        } else if (int(50) === 0) {
          t.clear();
          brute.values.length = 0;
        }
        if (step % readEvery === 0) expectSame(t, brute, step);
        else expect(t.size).toBe(brute.values.length);
      }
      expectSame(t, brute, -1);
    },
  );

  it('stays exact after 100,000 moves among a few values', () => {
    const t = new SegmentTally();
    const random = prng(7);
    // Five clients hopping between eight segments.
    const positions = [0, 1, 2, 3, 4];
    for (const p of positions) t.add(p);
    let firstMismatch: string | null = null;
    for (let i = 0; i < 100_000 && firstMismatch === null; i++) {
      const client = Math.floor(random() * positions.length);
      const from = positions[client] as number;
      const to = Math.floor(random() * 8);
      t.move(from, to);
      positions[client] = to;
      // Reading max more often than min lets each heap go stale differently.
      if (i % 3 === 0 && t.max !== Math.max(...positions)) firstMismatch = `max at move ${i}`;
      if (i % 5 === 0 && t.min !== Math.min(...positions)) firstMismatch = `min at move ${i}`;
    }
    expect(firstMismatch).toBeNull();
    expect([t.size, t.min, t.max]).toEqual([5, Math.min(...positions), Math.max(...positions)]);
    // Every client is still counted exactly once.
    for (const p of positions) expect(t.remove(p)).toBe(true);
    expect([t.size, t.min, t.max]).toEqual([0, null, null]);
  });

  it('stays exact when the furthest value keeps leaving and a slow one stays (100,000 steps)', () => {
    const t = new SegmentTally();
    t.add(0);
    let firstMismatch: string | null = null;
    for (let i = 1; i <= 100_000 && firstMismatch === null; i++) {
      t.add(i);
      if (t.max !== i) firstMismatch = `max after add ${i}`;
      if (!t.remove(i)) firstMismatch = `remove ${i}`;
      if (t.max !== 0 || t.min !== 0 || t.size !== 1) firstMismatch = `after remove ${i}`;
    }
    expect(firstMismatch).toBeNull();
    expect([t.size, t.min, t.max]).toEqual([1, 0, 0]);
  });

  it('stays exact while one value walks downward 100,000 times', () => {
    const t = new SegmentTally();
    t.add(0);
    t.add(100_000);
    let firstMismatch: string | null = null;
    for (let v = 100_000; v > 1 && firstMismatch === null; v--) {
      t.move(v, v - 1);
      if (t.max !== v - 1 || t.min !== 0) firstMismatch = `after move to ${v - 1}`;
    }
    expect(firstMismatch).toBeNull();
    expect([t.size, t.min, t.max]).toEqual([2, 0, 1]);
  });

  // Regression: the only way to observe heap growth without timing or
  // memory-usage assertions is to read the private heaps, so these tests
  // deliberately look inside.
  //
  // When the removed values are always the max (the live-edge client leaves,
  // or the furthest client walks back) and `max` is read in between (as
  // StreamSession.announceNeed does), the lazy pops keep maxHeap small while
  // every stale entry piles up in minHeap: compaction must look at both heaps.
  it('keeps both internal heaps O(distinct values) when the max keeps leaving', () => {
    const t = new SegmentTally();
    t.add(0);
    for (let i = 1; i <= 20_000; i++) {
      t.add(i);
      void t.max;
      t.remove(i);
      void t.max;
    }
    expect([t.size, t.min, t.max]).toEqual([1, 0, 0]);
    const internals = t as unknown as {
      minHeap: { size: number };
      maxHeap: { size: number };
    };
    const bound = 2 * 1 + 16 + 1;
    expect(internals.maxHeap.size).toBeLessThanOrEqual(bound);
    expect(internals.minHeap.size).toBeLessThanOrEqual(bound);
  });
  it('keeps both internal heaps O(distinct values) when the min keeps leaving', () => {
    const t = new SegmentTally();
    t.add(0);
    for (let i = 1; i <= 20_000; i++) {
      t.add(-i);
      void t.min;
      t.remove(-i);
      void t.min;
    }
    expect([t.size, t.min, t.max]).toEqual([1, 0, 0]);
    const internals = t as unknown as {
      minHeap: { size: number };
      maxHeap: { size: number };
    };
    const bound = 2 * 1 + 16 + 1;
    expect(internals.maxHeap.size).toBeLessThanOrEqual(bound);
    expect(internals.minHeap.size).toBeLessThanOrEqual(bound);
  });

  it('compaction keeps every live value (many distinct values, most removed)', () => {
    const t = new SegmentTally();
    for (let i = 0; i < 1_000; i++) t.add(i);
    // Remove all but the multiples of 100, reading both ends as it goes.
    for (let i = 0; i < 1_000; i++) {
      if (i % 100 !== 0) expect(t.remove(i)).toBe(true);
      void t.max;
      void t.min;
    }
    expect([t.size, t.min, t.max]).toEqual([10, 0, 900]);
    const internals = t as unknown as {
      minHeap: { size: number };
      maxHeap: { size: number };
    };
    expect(internals.maxHeap.size).toBeLessThanOrEqual(2 * 10 + 16 + 1);
    expect(internals.minHeap.size).toBeLessThanOrEqual(2 * 10 + 16 + 1);
    for (let v = 900; v >= 0; v -= 100) {
      expect(t.max).toBe(v);
      expect(t.remove(v)).toBe(true);
    }
    expect([t.size, t.min, t.max]).toEqual([0, null, null]);
  });
});
