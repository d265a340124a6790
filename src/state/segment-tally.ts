/**
 * A multiset of segment numbers that answers "highest" and "lowest" in O(1)
 * and changes in O(log n), n being the number of distinct segments.
 *
 * A stream session keeps one, holding every client's segment, so that
 * furthestSegment and slowestSegment stay exact when the furthest (or
 * slowest) client leaves or seeks back, without a scan over all clients.
 *
 * Two binary heaps hold the distinct segments; a removed segment is dropped
 * lazily when it reaches a heap's top, and the heaps are rebuilt from the
 * counts when stale entries outnumber live ones, so memory stays O(distinct).
 */
export class SegmentTally {
  private readonly counts = new Map<number, number>();
  private readonly maxHeap = new BinaryHeap((a, b) => a > b);
  private readonly minHeap = new BinaryHeap((a, b) => a < b);
  private total = 0;

  /** How many values (clients) it holds. */
  get size(): number {
    return this.total;
  }

  /** The highest value, or null when empty. */
  get max(): number | null {
    return this.total === 0 ? null : this.top(this.maxHeap);
  }

  /** The lowest value, or null when empty. */
  get min(): number | null {
    return this.total === 0 ? null : this.top(this.minHeap);
  }

  add(value: number): void {
    const count = this.counts.get(value) ?? 0;
    this.counts.set(value, count + 1);
    this.total++;
    if (count === 0) {
      this.maxHeap.push(value);
      this.minHeap.push(value);
    }
  }

  /** Removes one occurrence; returns false when the value was not held. */
  remove(value: number): boolean {
    const count = this.counts.get(value);
    if (count === undefined) return false;
    this.total--;
    if (count > 1) {
      this.counts.set(value, count - 1);
      return true;
    }
    this.counts.delete(value);
    // Stale heap entries cost memory only; compact once they are the majority
    // in either heap (each drops its own stale tops, so they drift apart).
    if (Math.max(this.maxHeap.size, this.minHeap.size) > 2 * this.counts.size + 16) {
      const live = [...this.counts.keys()];
      this.maxHeap.reset(live);
      this.minHeap.reset(live);
    }
    return true;
  }

  /** Moves one occurrence from one value to another (a client's new position). */
  move(from: number, to: number): void {
    if (from === to) return;
    this.remove(from);
    this.add(to);
  }

  clear(): void {
    this.counts.clear();
    this.maxHeap.reset([]);
    this.minHeap.reset([]);
    this.total = 0;
  }

  private top(heap: BinaryHeap): number | null {
    let value = heap.peek();
    while (value !== undefined && !this.counts.has(value)) {
      heap.pop();
      value = heap.peek();
    }
    return value ?? null;
  }
}

/** An array-backed binary heap of numbers, ordered by `before`. */
class BinaryHeap {
  private items: number[] = [];

  constructor(private readonly before: (a: number, b: number) => boolean) {}

  get size(): number {
    return this.items.length;
  }

  peek(): number | undefined {
    return this.items[0];
  }

  push(value: number): void {
    const items = this.items;
    items.push(value);
    let i = items.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = items[parent] as number;
      if (!this.before(value, p)) break;
      items[i] = p;
      i = parent;
    }
    items[i] = value;
  }

  pop(): number | undefined {
    const items = this.items;
    const first = items[0];
    const last = items.pop();
    if (items.length > 0 && last !== undefined) {
      items[0] = last;
      this.siftDown(0);
    }
    return first;
  }

  reset(values: number[]): void {
    this.items = values.slice();
    for (let i = (this.items.length >> 1) - 1; i >= 0; i--) this.siftDown(i);
  }

  private siftDown(start: number): void {
    const items = this.items;
    const n = items.length;
    const value = items[start] as number;
    let i = start;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      let child = left;
      if (right < n && this.before(items[right] as number, items[left] as number)) child = right;
      const c = items[child] as number;
      if (!this.before(c, value)) break;
      items[i] = c;
      i = child;
    }
    items[i] = value;
  }
}
