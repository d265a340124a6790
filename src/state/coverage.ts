/**
 * Coverage: which segments of each rendition are made, being made, or
 * announced and not yet claimed, and what follows for one client.
 *
 * These are the rules of contract v2's BatchNeededReason, in one place for
 * the embedded store. The Redis store's Lua mirrors them function by
 * function (scripts/prelude.lua: mergeCoverage, evaluate, needEnd), and the
 * store-parity test holds the two to the same behaviour.
 *
 * Everything here is pure: plain ranges in, a verdict out.
 */
import { BatchNeededReason, QUALITIES, type Quality } from './model.js';

/** Inclusive segment range. */
export interface Span {
  readonly start: number;
  readonly end: number;
}

/**
 * A merged covered range of one rendition. `open` when its last segment is
 * still being made (a batch in flight) or only announced (a pending need):
 * a client in it waits for that batch rather than asking for the next one,
 * as in v1.
 */
export interface MergedRange extends Span {
  readonly open: boolean;
}

/** A piece of coverage before merging. */
export interface CoveragePiece extends Span {
  readonly open: boolean;
}

/**
 * Merges pieces (in any order) into sorted disjoint ranges; adjacent pieces
 * join. A merged range is open when any piece ending at its end is open.
 */
export function mergeCoverage(pieces: readonly CoveragePiece[]): MergedRange[] {
  const sorted = [...pieces].sort((a, b) => a.start - b.start || a.end - b.end);
  const out: MergedRange[] = [];
  let current: { start: number; end: number; open: boolean } | null = null;
  for (const piece of sorted) {
    if (current !== null && piece.start <= current.end + 1) {
      if (piece.end > current.end) {
        current.end = piece.end;
        current.open = piece.open;
      } else if (piece.end === current.end && piece.open) {
        current.open = true;
      }
      continue;
    }
    if (current !== null) out.push(current);
    current = { start: piece.start, end: piece.end, open: piece.open };
  }
  if (current !== null) out.push(current);
  return out;
}

/** The range of `ranges` (sorted, disjoint) containing `segment`, by binary search. */
export function findRange<T extends Span>(ranges: readonly T[], segment: number): T | null {
  let lo = 0;
  let hi = ranges.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >> 1;
    const range = ranges[mid] as T;
    if (segment < range.start) hi = mid - 1;
    else if (segment > range.end) lo = mid + 1;
    else return range;
  }
  return null;
}

/** The start of the first range of `ranges` (sorted, disjoint) starting after `segment`, or null. */
export function nextStartAfter(ranges: readonly Span[], segment: number): number | null {
  let lo = 0;
  let hi = ranges.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((ranges[mid] as Span).start > segment) hi = mid;
    else lo = mid + 1;
  }
  return lo < ranges.length ? (ranges[lo] as Span).start : null;
}

/** Adds [start, end] to sorted disjoint spans, merging what it touches. */
export function addSpan(spans: readonly Span[], start: number, end: number): Span[] {
  const out: Span[] = [];
  let s = start;
  let e = end;
  let placed = false;
  for (const span of spans) {
    if (span.end + 1 < s) out.push(span);
    else if (span.start > e + 1) {
      if (!placed) {
        out.push({ start: s, end: e });
        placed = true;
      }
      out.push(span);
    } else {
      s = Math.min(s, span.start);
      e = Math.max(e, span.end);
    }
  }
  if (!placed) out.push({ start: s, end: e });
  return out;
}

/** Removes [start, end] from sorted disjoint spans; `removed` when any segment was there. */
export function removeSpan(
  spans: readonly Span[],
  start: number,
  end: number,
): { spans: Span[]; removed: boolean } {
  const out: Span[] = [];
  let removed = false;
  for (const span of spans) {
    if (span.end < start || span.start > end) {
      out.push(span);
      continue;
    }
    removed = true;
    if (span.start < start) out.push({ start: span.start, end: start - 1 });
    if (span.end > end) out.push({ start: end + 1, end: span.end });
  }
  return { spans: out, removed };
}

/** What the rules look at, for one session now. */
export interface CoverageInput {
  readonly threshold: number;
  readonly batchSize: number;
  readonly lastSegment: number | null;
  /**
   * The merged coverage of a rendition: made and in flight, plus pending
   * needs when `withPending` (but the need numbered `without`, when given).
   */
  merged(quality: Quality, withPending: boolean, without?: number): readonly MergedRange[];
  /** The pending needs (not STALLED ones) that make `quality`, by startSegment. */
  pendingNeeds(quality: Quality): readonly PendingSpan[];
}

/** A pending need's place, for the rules. */
export interface PendingSpan extends Span {
  readonly batchNumber: number;
}

/** What a client's position means now. */
export type Verdict =
  | {
      readonly served: true;
      /**
       * Served by what is made or in flight: no need of its own while it stays
       * within [lo, hi] in the same rendition (the hot path checks only that).
       */
      readonly lo: number;
      readonly hi: number;
      /**
       * Served only thanks to pending needs: these (by batchNumber). A need
       * none of whose clients needs it any more is withdrawn. Empty when
       * [lo, hi] holds.
       */
      readonly needs: readonly number[];
    }
  | {
      readonly served: false;
      readonly reason: BatchNeededReason;
      readonly start: number;
      /**
       * The pending needs of its range from its segment on: it will play
       * through them (its range ends within `threshold`), so they stay.
       */
      readonly needs: readonly number[];
    };

/** Whether a client at `segment` in `range` is served by it. */
function servedIn(input: CoverageInput, range: MergedRange, segment: number): boolean {
  return range.end === input.lastSegment || range.end - segment > input.threshold || range.open;
}

/**
 * The verdict on a client at `segment` in `quality` (BatchNeededReason in the
 * contract). O(log ranges) given the merged coverage, plus the pending needs
 * of its rendition when it depends on them (there are few, and briefly).
 */
export function evaluate(input: CoverageInput, segment: number, quality: Quality): Verdict {
  const full = input.merged(quality, true);
  const range = findRange(full, segment);
  if (range !== null && servedIn(input, range, segment)) {
    const solid = findRange(input.merged(quality, false), segment);
    if (solid !== null && servedIn(input, solid, segment)) {
      const hi =
        solid.end === input.lastSegment || solid.open ? solid.end : solid.end - input.threshold - 1;
      return { served: true, lo: solid.start, hi, needs: NO_NEEDS };
    }
    // It relies on pending needs of its range, from where it is (or from the
    // end of what is made) on: on each one without which it would not be
    // served (there is at least one: the first).
    const from = solid === null ? segment : solid.end + 1;
    const needs: number[] = [];
    for (const need of input.pendingNeeds(quality)) {
      if (need.end < from || need.start > range.end) continue;
      const rest = findRange(input.merged(quality, true, need.batchNumber), segment);
      if (rest === null || !servedIn(input, rest, segment)) needs.push(need.batchNumber);
    }
    // Waiting in the first batch (0, FIRST_BATCH, never withdrawn) with nothing
    // made or in flight right after it: served anywhere in it until it is
    // claimed (which decides every client of its renditions again) or a batch
    // completes or is released (which decide them all again too).
    if (needs.length === 1 && needs[0] === FIRST) {
      const first = input.pendingNeeds(quality).find((need) => need.batchNumber === FIRST);
      if (
        first !== undefined &&
        segment >= first.start &&
        findRange(input.merged(quality, false), first.end + 1) === null
      ) {
        return { served: true, lo: first.start, hi: first.end, needs };
      }
    }
    return { served: true, lo: 1, hi: 0, needs };
  }
  if (range !== null) {
    const needs: number[] = [];
    for (const need of input.pendingNeeds(quality)) {
      if (need.end >= segment && need.start <= range.end) needs.push(need.batchNumber);
    }
    return {
      served: false,
      reason: BatchNeededReason.APPROACHING_END,
      start: range.end + 1,
      needs,
    };
  }
  for (const other of QUALITIES) {
    if (other !== quality && findRange(input.merged(other, true), segment) !== null) {
      return {
        served: false,
        reason: BatchNeededReason.QUALITY_CHANGE,
        start: segment,
        needs: NO_NEEDS,
      };
    }
  }
  const after = nextStartAfter(full, segment);
  return {
    served: false,
    reason: after === null ? BatchNeededReason.SEEK_AHEAD : BatchNeededReason.SEEK_BACK,
    start: segment,
    needs: NO_NEEDS,
  };
}

const NO_NEEDS: readonly number[] = Object.freeze([]);
/** FIRST_BATCH's number: pending as 0 only while the first batch is unclaimed. */
const FIRST = 0;

/**
 * Where a need from `start` in `qualities` ends: a batch's length, cut at the
 * video's last segment and before the next covered range of any of them.
 */
export function needEnd(
  input: CoverageInput,
  start: number,
  qualities: readonly Quality[],
): number {
  let end = start + input.batchSize - 1;
  if (input.lastSegment !== null && end > input.lastSegment) end = input.lastSegment;
  for (const quality of qualities) {
    const next = nextStartAfter(input.merged(quality, true), start);
    if (next !== null && next - 1 < end) end = next - 1;
  }
  return end;
}

/** The order reasons are listed in the contract: of several clients' reasons for one need, the first wins. */
export const REASON_ORDER: readonly BatchNeededReason[] = [
  BatchNeededReason.FIRST_BATCH,
  BatchNeededReason.APPROACHING_END,
  BatchNeededReason.SEEK_AHEAD,
  BatchNeededReason.STALLED,
  BatchNeededReason.SEEK_BACK,
  BatchNeededReason.QUALITY_CHANGE,
];

/** The renditions of a list, deduplicated, best first. */
export function sortQualities(qualities: Iterable<Quality>): Quality[] {
  const set = new Set(qualities);
  return QUALITIES.filter((q) => set.has(q));
}

/** True when two renditions lists share one. */
export function shareQuality(a: readonly Quality[], b: readonly Quality[]): boolean {
  return a.some((q) => b.includes(q));
}

/** True when two ranges share a segment. */
export function overlaps(a: Span, b: Span): boolean {
  return a.start <= b.end && b.start <= a.end;
}
