import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export function spread(values: readonly number[]): Spread {
  return { median: median(values), min: Math.min(...values), max: Math.max(...values) };
}

/** Milliseconds kept in microseconds, the histogram's unit. */
export class LatencyHistogram {
  private readonly histogram: RecordableHistogram = createHistogram();
  count = 0;

  recordMs(ms: number): void {
    this.histogram.record(Math.max(1, Math.round(ms * 1000)));
    this.count++;
  }

  percentileMs(p: number): number {
    return this.count === 0 ? Number.NaN : this.histogram.percentile(p) / 1000;
  }

  summary() {
    return {
      count: this.count,
      p50: round(this.percentileMs(50), 3),
      p99: round(this.percentileMs(99), 3),
      max: round(this.count === 0 ? Number.NaN : this.histogram.max / 1000, 3),
    };
  }
}

export function round(value: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(value * f) / f;
}
