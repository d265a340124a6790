/**
 * Contract v2's coverage (issue 12), model-based: random sessions (batch
 * size, threshold, the video's length or none, renditions) and random steps
 * (clients moving, seeking, switching rendition and leaving; encoders
 * claiming announced needs with their range or another containing their
 * start, claiming ahead, claiming wrongly, completing, releasing segments)
 * run against the memory store. After every step, what the store shows (the
 * session's view and its pending needs) and what it announced must keep the
 * contract's invariants:
 *
 * - every client is served: the covered range of its rendition it is in runs
 *   to the last segment, or has more than `threshold` segments ahead of it,
 *   or ends in a batch being made or a pending need (so a client not yet
 *   made for sits in exactly one pending need of its rendition, or has one
 *   starting right after its range);
 * - no two pending needs, or batches being made, of one rendition overlap;
 *   no pending need overlaps what is made or being made in its renditions;
 * - nothing (need, batch, covered range) lies past the last segment;
 * - every need names renditions; no need nobody needs stays pending;
 * - each announcement is of a number neither claimed nor pending before;
 * - coverage is exactly what was made (and not released) plus what is being
 *   made; a refused change changes nothing and announces nothing.
 *
 * Memory store only, and quick: the parity test holds Redis to it.
 * COVERAGE_RUNS=n runs more sequences; COVERAGE_SEED=s (and COVERAGE_PATH=p,
 * both printed on failure) replays one.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DomainError } from '../src/state/errors.js';
import { LocalEventBus } from '../src/state/events.js';
import { MemoryStore } from '../src/state/memory-store.js';
import {
  type BatchNeededEvent,
  type BatchState,
  type Instant,
  QUALITIES,
  type Quality,
  type ReleaseSegmentsInput,
  type StreamSessionSettings,
  type StreamSessionView,
} from '../src/state/model.js';
import type { Change, MaybePromise, Timeouts } from '../src/state/store.js';

const RUNS = Number(process.env.COVERAGE_RUNS ?? 200);
const MAX_STEPS = 60;
// Nothing here waits for a deadline: no claim stalls, no client expires.
const timeouts: Timeouts = { batchTimeout: 3_600_000, clientTimeout: 3_600_000, idleTimeout: 0 };
const T0 = Date.UTC(2026, 0, 1);
const ID = 'movie';
const PATH = '/videos/movie.mp4';
const CLIENT_IDS = ['c0', 'c1', 'c2', 'c3'] as const;
/** How far clients go in a video of unknown length, past startSegment. */
const UNBOUNDED_SPAN = 60;

/**
 * The store as v2 has it: releaseSegments is the one operation the model
 * does not declare yet (it declares its input, ReleaseSegmentsInput).
 */
type CoverageStore = MemoryStore & {
  releaseSegments(input: ReleaseSegmentsInput, now: Instant): MaybePromise<Change<boolean>>;
};

// ---------------------------------------------------------------------------
// Sessions and steps

interface SessionSpec {
  readonly batchSize: number;
  readonly threshold: number;
  readonly segmentDuration: number;
  readonly startSegment: number;
  /** Segments from startSegment to the last one; null: a video of unknown length. */
  readonly lastOffset: number | null;
  /** What is left of the last segment: a whole one, half of one, a sliver. */
  readonly tail: 'whole' | 'half' | 'sliver';
  readonly qualities: readonly Quality[];
}

type ClientId = (typeof CLIENT_IDS)[number];
/** Where a client goes: a segment, a step from where it is, or around the end of its range. */
type Target =
  | { readonly at: 'segment'; readonly segment: number }
  | { readonly at: 'step'; readonly delta: number }
  | { readonly at: 'rangeEnd'; readonly offset: number };

type Op =
  /** `quality` null: the one it plays now. */
  | {
      readonly kind: 'move';
      readonly client: ClientId;
      readonly target: Target;
      readonly quality: Quality | null;
    }
  | { readonly kind: 'remove'; readonly client: ClientId }
  /**
   * A pending need (the `pick`-th): its own range, one from start - before to
   * start + after, or (`miss`) one just before or after its start, without it.
   */
  | {
      readonly kind: 'claimNeed';
      readonly pick: number;
      readonly exact: boolean;
      readonly miss: boolean;
      readonly before: number;
      readonly after: number;
    }
  /** The next unused number, for a range of its own (refused while a need is pending). */
  | {
      readonly kind: 'claimAhead';
      readonly start: number;
      readonly length: number;
      readonly qualities: readonly Quality[] | null;
    }
  /** A number the session refuses: one being made, one made, or one not in use. */
  | { readonly kind: 'claimWrong'; readonly which: 'inFlight' | 'made' | 'unused'; pick: number }
  /** A batch being made, one made (again), or a number that is no batch. */
  | { readonly kind: 'complete'; readonly which: 'inFlight' | 'made' | 'none'; pick: number }
  /** From `start`, or (start null) from the `pick`-th covered range's start + `offset`. */
  | {
      readonly kind: 'release';
      readonly start: number | null;
      readonly pick: number;
      readonly offset: number;
      readonly length: number;
      readonly qualities: readonly Quality[] | null;
    };

function describeOp(op: Op): string {
  switch (op.kind) {
    case 'move': {
      const t = op.target;
      const to =
        t.at === 'segment'
          ? `${t.segment}`
          : t.at === 'step'
            ? `self${t.delta >= 0 ? '+' : ''}${t.delta}`
            : `rangeEnd${t.offset >= 0 ? '+' : ''}${t.offset}`;
      return `move(${op.client} → ${to}${op.quality === null ? '' : ` ${op.quality}`})`;
    }
    case 'remove':
      return `remove(${op.client})`;
    case 'claimNeed':
      return `claimNeed(#${op.pick}, ${op.miss ? `missing its start by ${op.before}+${op.after}` : op.exact ? 'its range' : `start-${op.before}..start+${op.after}`})`;
    case 'claimAhead':
      return `claimAhead(${op.start}+${op.length}${op.qualities === null ? '' : ` ${op.qualities.join(',')}`})`;
    case 'claimWrong':
      return `claimWrong(${op.which} #${op.pick})`;
    case 'complete':
      return `complete(${op.which} #${op.pick})`;
    case 'release': {
      const from = op.start ?? `range#${op.pick}${op.offset >= 0 ? '+' : ''}${op.offset}`;
      return `release(${from} length ${op.length}${op.qualities === null ? '' : ` ${op.qualities.join(',')}`})`;
    }
  }
}

/** A value that prints as one line in fast-check's counterexample. */
const readable = <T extends object>(value: T, text: (v: T) => string): T =>
  Object.assign(value, { [fc.toStringMethod]: () => text(value) });

const qualitySet = fc
  .subarray([...QUALITIES], { minLength: 1 })
  .map((qs) => QUALITIES.filter((q) => qs.includes(q)));

const sessionSpec: fc.Arbitrary<SessionSpec> = fc
  .record({
    batchSize: fc.integer({ min: 1, max: 10 }),
    threshold: fc.integer({ min: 0, max: 3 }),
    segmentDuration: fc.integer({ min: 1, max: 6 }),
    startSegment: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 20 })),
    lastOffset: fc.option(fc.integer({ min: 0, max: 50 }), { nil: null, freq: 3 }),
    tail: fc.constantFrom('whole' as const, 'half' as const, 'sliver' as const),
    qualities: fc.oneof(fc.constant([...QUALITIES]), qualitySet),
  })
  .map((s) => ({ ...s, threshold: Math.min(s.threshold, s.batchSize) }))
  .map((s) =>
    readable(
      s,
      (v) =>
        `session(batchSize ${v.batchSize}, threshold ${v.threshold}, start ${v.startSegment}, ${v.lastOffset === null ? 'unbounded' : `last start+${v.lastOffset} (${v.tail})`}, ${v.qualities.join(',')})`,
    ),
  );

const segment = fc.integer({ min: 0, max: 80 });
const target: fc.Arbitrary<Target> = fc.oneof(
  { weight: 2, arbitrary: fc.record({ at: fc.constant('segment' as const), segment }) },
  {
    weight: 3,
    arbitrary: fc.record({
      at: fc.constant('step' as const),
      delta: fc.integer({ min: -4, max: 6 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      at: fc.constant('rangeEnd' as const),
      offset: fc.integer({ min: -5, max: 2 }),
    }),
  },
);

const op: fc.Arbitrary<Op> = fc
  .oneof(
    {
      weight: 10,
      arbitrary: fc.record({
        kind: fc.constant('move' as const),
        client: fc.constantFrom(...CLIENT_IDS),
        target,
        quality: fc.oneof(
          { weight: 3, arbitrary: fc.constant(null) },
          { weight: 1, arbitrary: fc.constantFrom(...QUALITIES) },
        ),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('remove' as const),
        client: fc.constantFrom(...CLIENT_IDS),
      }),
    },
    {
      weight: 6,
      arbitrary: fc.record({
        kind: fc.constant('claimNeed' as const),
        pick: fc.nat(5),
        exact: fc.boolean(),
        miss: fc.oneof({ weight: 6, arbitrary: fc.constant(false) }, fc.constant(true)),
        before: fc.nat(4),
        after: fc.nat(12),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('claimAhead' as const),
        start: segment,
        length: fc.integer({ min: 1, max: 12 }),
        qualities: fc.option(qualitySet, { nil: null }),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('claimWrong' as const),
        which: fc.constantFrom('inFlight' as const, 'made' as const, 'unused' as const),
        pick: fc.nat(5),
      }),
    },
    {
      weight: 6,
      arbitrary: fc.record({
        kind: fc.constant('complete' as const),
        which: fc.oneof(
          { weight: 4, arbitrary: fc.constant('inFlight' as const) },
          { weight: 1, arbitrary: fc.constantFrom('made' as const, 'none' as const) },
        ),
        pick: fc.nat(5),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant('release' as const),
        start: fc.option(segment, { nil: null }),
        pick: fc.nat(5),
        offset: fc.integer({ min: -2, max: 5 }),
        length: fc.integer({ min: 1, max: 15 }),
        qualities: fc.option(qualitySet, { nil: null }),
      }),
    },
  )
  .map((o) => readable(o as Op, describeOp));

// ---------------------------------------------------------------------------
// Ranges

interface Span {
  readonly start: number;
  readonly end: number;
}

const overlaps = (a: Span, b: Span) => a.start <= b.end && b.start <= a.end;
const contains = (span: Span, s: number) => span.start <= s && s <= span.end;
const shares = (a: readonly Quality[], b: readonly Quality[]) => a.some((q) => b.includes(q));
const spanOf = (x: { startSegment: number; endSegment: number }): Span => ({
  start: x.startSegment,
  end: x.endSegment,
});
const show = (x: { startSegment: number; endSegment: number }) =>
  `${x.startSegment}-${x.endSegment}`;

/** Consecutive or overlapping spans joined, by start. */
function merge(spans: readonly Span[]): Span[] {
  const sorted = [...spans].sort((a, b) => a.start - b.start);
  const merged: Span[] = [];
  for (const span of sorted) {
    const last = merged.at(-1);
    if (last !== undefined && span.start <= last.end + 1) {
      merged[merged.length - 1] = { start: last.start, end: Math.max(last.end, span.end) };
    } else {
      merged.push(span);
    }
  }
  return merged;
}

/** Segments as spans. */
function spansOf(segments: Iterable<number>): Span[] {
  return merge([...segments].map((s) => ({ start: s, end: s })));
}

// ---------------------------------------------------------------------------
// What the test itself knows

/** What the steps did, as far as the contract lets the test know it. */
class Shadow {
  /** Every number claimed with success. */
  readonly claimed = new Set<number>();
  /** The batches being made: their number, range and renditions. */
  readonly inFlight = new Map<number, { span: Span; qualities: readonly Quality[] }>();
  /** Segments made and not released since, per rendition. */
  readonly made = new Map<Quality, Set<number>>(QUALITIES.map((q) => [q, new Set<number>()]));
  /** Per completed batch: how many of its (rendition, segment)s exist, and those not released. */
  readonly completed = new Map<number, { size: number; left: Set<string> }>();
  lastClaimed: number | null = null;

  claim(batch: BatchState): void {
    this.claimed.add(batch.batchNumber);
    this.inFlight.set(batch.batchNumber, { span: spanOf(batch), qualities: batch.qualities });
    this.lastClaimed = batch.batchNumber;
  }

  complete(batchNumber: number): void {
    const batch = this.inFlight.get(batchNumber);
    if (batch === undefined) return;
    this.inFlight.delete(batchNumber);
    const left = new Set<string>();
    for (const q of batch.qualities) {
      for (let s = batch.span.start; s <= batch.span.end; s++) {
        this.made.get(q)!.add(s);
        left.add(`${q}:${s}`);
      }
    }
    this.completed.set(batchNumber, { size: left.size, left });
  }

  /** True when a made segment was there. */
  release(span: Span, qualities: readonly Quality[]): boolean {
    let any = false;
    for (const q of qualities) {
      for (let s = span.start; s <= span.end; s++) any = this.made.get(q)!.delete(s) || any;
    }
    for (const { left } of this.completed.values()) {
      for (const q of qualities)
        for (let s = span.start; s <= span.end; s++) left.delete(`${q}:${s}`);
    }
    return any;
  }

  /** Coverage as the contract defines it: made (not released) or being made. */
  coverage(): Array<{ quality: Quality; startSegment: number; endSegment: number }> {
    return QUALITIES.flatMap((q) => {
      const segments = new Set(this.made.get(q));
      for (const { span, qualities } of this.inFlight.values()) {
        if (!qualities.includes(q)) continue;
        for (let s = span.start; s <= span.end; s++) segments.add(s);
      }
      return spansOf(segments).map((r) => ({
        quality: q,
        startSegment: r.start,
        endSegment: r.end,
      }));
    });
  }
}

/** What the store shows at one moment. */
interface Seen {
  readonly view: StreamSessionView;
  readonly pending: readonly BatchNeededEvent[];
}

/** The session's parameters every check needs. */
interface Rules {
  readonly settings: StreamSessionSettings;
  /** The highest segment a client may be at. */
  readonly maxSegment: number;
}

// ---------------------------------------------------------------------------
// The invariants

/** The covered ranges of one rendition: made, being made, or in a pending need. */
function coveredRanges(seen: Seen, q: Quality): Span[] {
  return merge([
    ...seen.view.coverage.filter((r) => r.quality === q).map(spanOf),
    ...seen.pending.filter((n) => n.qualities.includes(q)).map(spanOf),
  ]);
}

/** True when a batch being made, or a pending need, of rendition q holds segment s. */
function beingMadeOrNeeded(seen: Seen, q: Quality, s: number): boolean {
  const batch = seen.view.batches.some(
    (b) => !b.isComplete && b.qualities.includes(q) && contains(spanOf(b), s),
  );
  return batch || seen.pending.some((n) => n.qualities.includes(q) && contains(spanOf(n), s));
}

/** Why a client at s in q is not served, or null when it is. */
function unserved(seen: Seen, rules: Rules, s: number, q: Quality): string | null {
  const range = coveredRanges(seen, q).find((r) => contains(r, s));
  if (range === undefined) return 'not covered';
  const { lastSegment, threshold } = rules.settings;
  if (range.end === lastSegment || range.end - s > threshold) return null;
  if (beingMadeOrNeeded(seen, q, range.end)) return null;
  return `its range ${range.start}-${range.end} ends ${range.end - s} ahead, made`;
}

/** Every way the state breaks an invariant (empty when none). */
function problems(seen: Seen, rules: Rules, shadow: Shadow): string[] {
  const found: string[] = [];
  const { view, pending } = seen;
  const { settings } = rules;
  const last = settings.lastSegment;
  const pastEnd = (x: { endSegment: number }) => last !== null && x.endSegment > last;
  if (!Array.isArray(view.coverage) || !Array.isArray(view.batches)) {
    return ['the view has no coverage or batches (contract v2)'];
  }

  // Coverage: exactly what was made and not released, plus what is being made.
  const expected = shadow.coverage();
  if (JSON.stringify(view.coverage) !== JSON.stringify(expected)) {
    found.push(`coverage ${JSON.stringify(view.coverage)}, expected ${JSON.stringify(expected)}`);
  }

  // Batches.
  const numbers = view.batches.map((b) => b.batchNumber);
  if (JSON.stringify(numbers) !== JSON.stringify([...numbers].sort((a, b) => a - b))) {
    found.push(`batches not by batchNumber: ${numbers}`);
  }
  for (const b of view.batches) {
    const at = `batch ${b.batchNumber} (${show(b)})`;
    if (b.startSegment > b.endSegment || pastEnd(b)) found.push(`${at}: out of bounds`);
    if (b.qualities.length === 0) found.push(`${at}: no qualities`);
    if (b.isLastBatch !== (b.endSegment === last))
      found.push(`${at}: isLastBatch ${b.isLastBatch}`);
    if (b.videoStartOffset !== b.startSegment * settings.segmentDuration) {
      found.push(`${at}: videoStartOffset ${b.videoStartOffset}`);
    }
    if (b.isComplete) {
      const left = shadow.completed.get(b.batchNumber);
      if (left === undefined) found.push(`${at}: complete, but never completed`);
      else {
        // Listed while anything made remains in its range in its renditions
        // (made by it, or made again there by a later batch): the contract's
        // "completed ones whose segments are not released".
        let remains = false;
        for (const q of b.qualities as Quality[]) {
          for (let seg = b.startSegment; seg <= b.endSegment; seg++) {
            if (shadow.made.get(q)?.has(seg)) remains = true;
          }
        }
        if (!remains) found.push(`${at}: every segment released, still listed`);
      }
    } else {
      const mine = shadow.inFlight.get(b.batchNumber);
      if (
        mine === undefined ||
        mine.span.start !== b.startSegment ||
        mine.span.end !== b.endSegment ||
        JSON.stringify(mine.qualities) !== JSON.stringify(b.qualities)
      ) {
        found.push(`${at}: being made, but not as claimed (${JSON.stringify(mine)})`);
      }
    }
  }
  for (const [n, { size, left }] of shadow.completed) {
    if (left.size === size && !numbers.includes(n)) found.push(`batch ${n}: made, not listed`);
  }
  for (const n of shadow.inFlight.keys()) {
    if (!view.batches.some((b) => b.batchNumber === n && !b.isComplete)) {
      found.push(`batch ${n}: claimed, not listed as being made`);
    }
  }
  if (shadow.lastClaimed !== null && numbers.includes(shadow.lastClaimed)) {
    if (view.currentBatch?.batchNumber !== shadow.lastClaimed) {
      found.push(
        `currentBatch ${view.currentBatch?.batchNumber}, claimed last ${shadow.lastClaimed}`,
      );
    }
  }
  const making = view.batches.filter((b) => !b.isComplete);
  for (const [i, a] of making.entries()) {
    for (const b of making.slice(i + 1)) {
      if (shares(a.qualities, b.qualities) && overlaps(spanOf(a), spanOf(b))) {
        found.push(
          `batches ${a.batchNumber} (${show(a)}) and ${b.batchNumber} (${show(b)}) overlap`,
        );
      }
    }
  }

  // Pending needs.
  for (const [i, n] of pending.entries()) {
    const at = `need ${n.reason} ${n.batchNumber} (${show(n)} ${n.qualities.join(',')})`;
    if (n.qualities.length === 0) found.push(`${at}: no qualities`);
    if (
      JSON.stringify(n.qualities) !==
      JSON.stringify(QUALITIES.filter((q) => n.qualities.includes(q)))
    ) {
      found.push(`${at}: qualities not in QUALITIES order`);
    }
    if (n.startSegment > n.endSegment || pastEnd(n)) found.push(`${at}: out of bounds`);
    if (n.endSegment - n.startSegment + 1 > settings.batchSize) found.push(`${at}: over batchSize`);
    if (n.isLastBatch !== (n.endSegment === last))
      found.push(`${at}: isLastBatch ${n.isLastBatch}`);
    if (n.segmentDuration !== settings.segmentDuration) found.push(`${at}: segmentDuration`);
    if (n.videoStartOffset !== n.startSegment * settings.segmentDuration) {
      found.push(`${at}: videoStartOffset ${n.videoStartOffset}`);
    }
    if (n.videoSourcePath !== settings.videoSourcePath) found.push(`${at}: videoSourcePath`);
    if (shadow.claimed.has(n.batchNumber)) found.push(`${at}: its number was claimed`);
    if (n.reason === 'FIRST_BATCH') {
      if (
        n.batchNumber !== 0 ||
        n.startSegment !== settings.startSegment ||
        JSON.stringify(n.qualities) !== JSON.stringify(settings.qualities)
      ) {
        found.push(`${at}: not batch 0 from startSegment in the session's qualities`);
      }
    }
    for (const other of pending.slice(i + 1)) {
      if (other.batchNumber === n.batchNumber) found.push(`${at}: its number pending twice`);
      if (shares(n.qualities, other.qualities) && overlaps(spanOf(n), spanOf(other))) {
        found.push(`${at} overlaps need ${other.batchNumber} (${show(other)})`);
      }
    }
    for (const r of view.coverage) {
      if (
        n.reason !== 'STALLED' &&
        n.qualities.includes(r.quality) &&
        overlaps(spanOf(n), spanOf(r))
      ) {
        found.push(`${at} overlaps ${r.quality} ${show(r)}, made or being made`);
      }
    }
    // Withdrawn when nobody needs it: some client of its renditions has it in
    // the covered range it is in, at or ahead of itself.
    if (n.reason !== 'FIRST_BATCH' && n.reason !== 'STALLED') {
      const needed = view.clientPositions.some((c) => {
        if (!n.qualities.includes(c.quality)) return false;
        const range = coveredRanges(seen, c.quality).find((r) => contains(r, c.segmentNumber));
        return (
          range !== undefined && contains(range, n.startSegment) && n.endSegment >= c.segmentNumber
        );
      });
      if (!needed) found.push(`${at}: pending, but no client needs it`);
    }
  }

  // Clients: every one served.
  for (const c of view.clientPositions) {
    const at = `client ${c.sessionId} at ${c.segmentNumber} ${c.quality}`;
    if (c.segmentNumber > rules.maxSegment) found.push(`${at}: past the end`);
    const why = unserved(seen, rules, c.segmentNumber, c.quality);
    if (why !== null) found.push(`${at}: not served (${why})`);
    const made = view.coverage.some(
      (r) => r.quality === c.quality && contains(spanOf(r), c.segmentNumber),
    );
    if (!made) {
      const holding = pending.filter(
        (n) => n.qualities.includes(c.quality) && contains(spanOf(n), c.segmentNumber),
      );
      if (holding.length > 1) found.push(`${at}: in ${holding.length} pending needs`);
    }
  }
  return found;
}

/** What is wrong with the needs one step announced (`fresh`), given the state before and after. */
function announcementProblems(
  fresh: readonly BatchNeededEvent[],
  before: Seen,
  after: Seen,
  claimedBefore: ReadonlySet<number>,
  rules: Rules,
): string[] {
  const found: string[] = [];
  // Needs pending before and after, unchanged: none of them may be announced again.
  const same = (a: BatchNeededEvent, b: BatchNeededEvent) =>
    a.batchNumber === b.batchNumber &&
    a.reason === b.reason &&
    a.startSegment === b.startSegment &&
    a.endSegment === b.endSegment &&
    JSON.stringify(a.qualities) === JSON.stringify(b.qualities);
  const stillPending = before.pending
    .filter((n) => after.pending.some((m) => same(m, n)))
    .map((n) => n.batchNumber);
  const floor = Math.max(0, ...[...claimedBefore].map((n) => n + 1));
  let ceiling = Math.max(floor, ...before.pending.map((n) => n.batchNumber + 1));
  for (const e of fresh) {
    const at = `announced ${e.reason} ${e.batchNumber} (${show(e)} ${e.qualities.join(',')})`;
    if (e.streamSession.id !== ID) found.push(`${at}: of session ${e.streamSession.id}`);
    if (e.qualities.length === 0) found.push(`${at}: no qualities`);
    if (e.reason === 'FIRST_BATCH' || e.reason === 'STALLED') found.push(`${at}: not now`);
    if (claimedBefore.has(e.batchNumber)) found.push(`${at}: a claimed number`);
    if (stillPending.includes(e.batchNumber)) found.push(`${at}: the number of a need pending`);
    if (e.batchNumber < floor || e.batchNumber > ceiling) {
      found.push(`${at}: number outside ${floor}..${ceiling}`);
    }
    ceiling = Math.max(ceiling, e.batchNumber + 1);
    const now = after.pending.find((n) => n.batchNumber === e.batchNumber);
    if (
      now === undefined ||
      now.reason !== e.reason ||
      now.startSegment !== e.startSegment ||
      now.endSegment !== e.endSegment ||
      JSON.stringify(now.qualities) !== JSON.stringify(e.qualities)
    ) {
      found.push(`${at}: not pending as announced (${now && JSON.stringify(now)})`);
    }
    // Cut only where the contract cuts: batchSize, the last segment, the next
    // covered range, as it was before the step or after it (the contract does
    // not say whether a moving client's old need goes before its new one is cut).
    const full = e.startSegment + rules.settings.batchSize - 1;
    const coveredAfterEnd = (state: Seen) =>
      e.qualities.some((q) => {
        const others = { ...state, pending: state.pending.filter((n) => !same(n, e)) };
        return coveredRanges(others, q).some((r) => contains(r, e.endSegment + 1));
      });
    const cut =
      e.endSegment === full ||
      e.endSegment === rules.settings.lastSegment ||
      coveredAfterEnd(before) ||
      coveredAfterEnd(after);
    if (!cut) found.push(`${at}: cut short for no reason`);
    found.push(...reasonProblems(e, at, before, after));
    // Where it starts: at a client, or right after a made range a client is near the end of.
    const clients = after.view.clientPositions.filter((c) => e.qualities.includes(c.quality));
    if (e.reason === 'APPROACHING_END') {
      const end = e.startSegment - 1;
      const near = clients.some(
        (c) => c.segmentNumber <= end && end - c.segmentNumber <= rules.settings.threshold,
      );
      // In at least one of its renditions: clients needing the same start are
      // one need (the contract), so a 1080p viewer seeking to where a 480p
      // viewer's range ends shares its APPROACHING_END (the first reason in
      // the contract's order names the need).
      const madeUpTo = e.qualities.some((q) =>
        after.view.coverage.some((r) => r.quality === q && contains(spanOf(r), end)),
      );
      if (!near || !madeUpTo)
        found.push(`${at}: not right after a range a client is near the end of`);
    } else if (!clients.some((c) => c.segmentNumber === e.startSegment)) {
      found.push(`${at}: no client of its renditions at its start`);
    }
  }
  return found;
}

/**
 * The reason of a need of one rendition that starts where a client is, where
 * what is made or being made decides it both before and after the step. (A
 * change may announce several needs, and withdraw some, in an order the
 * contract leaves open: where pending needs could tip the decision, either
 * answer is taken.)
 */
function reasonProblems(e: BatchNeededEvent, at: string, before: Seen, after: Seen): string[] {
  const [q] = e.qualities;
  if (e.qualities.length !== 1 || q === undefined) return [];
  if (e.reason === 'APPROACHING_END') return [];
  const s = e.startSegment;
  const others = QUALITIES.filter((o) => o !== q);
  const without = (state: Seen): Seen => ({
    ...state,
    pending: state.pending.filter((n) => n.batchNumber !== e.batchNumber),
  });
  const made = (state: Seen, o: Quality, where: (r: Span) => boolean) =>
    state.view.coverage.some((r) => r.quality === o && where(spanOf(r)));
  const covered = (state: Seen, o: Quality, where: (r: Span) => boolean) =>
    coveredRanges(without(state), o).some(where);
  const both = (test: (state: Seen) => boolean) => test(before) && test(after);
  const neither = (test: (state: Seen) => boolean) => !test(before) && !test(after);
  const here = (r: Span) => contains(r, s);
  const later = (r: Span) => r.start > s;

  const found: string[] = [];
  if (both((st) => others.some((o) => made(st, o, here))) && e.reason !== 'QUALITY_CHANGE') {
    found.push(`${at}: another rendition has segment ${s}, expected QUALITY_CHANGE`);
  }
  const elsewhere = neither((st) => others.some((o) => covered(st, o, here)));
  if (elsewhere && e.reason === 'QUALITY_CHANGE') {
    found.push(`${at}: no other rendition covers segment ${s}`);
  }
  if (elsewhere && both((st) => made(st, q, later)) && e.reason !== 'SEEK_BACK') {
    found.push(`${at}: ${q} is made after ${s}, expected SEEK_BACK`);
  }
  if (elsewhere && neither((st) => covered(st, q, later)) && e.reason !== 'SEEK_AHEAD') {
    found.push(`${at}: nothing of ${q} after ${s}, expected SEEK_AHEAD`);
  }
  return found;
}

// ---------------------------------------------------------------------------
// Running one sequence

type Outcome<T> = { ok: true; value: T } | { ok: false; error: unknown };

async function attempt<T>(change: () => MaybePromise<Change<T>>): Promise<Outcome<T>> {
  try {
    return { ok: true, value: (await change()).result };
  } catch (error) {
    return { ok: false, error };
  }
}

const codeOf = (o: Outcome<unknown>) =>
  o.ok ? 'success' : o.error instanceof DomainError ? o.error.code : String(o.error);

function settingsOf(spec: SessionSpec): StreamSessionSettings {
  const { segmentDuration: sd, startSegment, lastOffset } = spec;
  const lastSegment = lastOffset === null ? null : startSegment + lastOffset;
  // ceil(durationSeconds / segmentDuration) - 1 is lastSegment for any tail in (0, sd].
  const tail = spec.tail === 'whole' ? sd : spec.tail === 'half' ? sd / 2 : 0.25;
  return {
    id: ID,
    videoSourcePath: PATH,
    segmentDuration: sd,
    batchSize: spec.batchSize,
    threshold: spec.threshold,
    startSegment,
    durationSeconds: lastSegment === null ? null : lastSegment * sd + tail,
    lastSegment,
    qualities: spec.qualities,
  };
}

async function runSequence(spec: SessionSpec, ops: readonly Op[]): Promise<void> {
  const published: BatchNeededEvent[] = [];
  const events = new LocalEventBus((error) => {
    throw error;
  });
  events.subscribe((message) => {
    if (message.type === 'batchNeeded') published.push(message.event);
  });
  const store = new MemoryStore(timeouts, events) as CoverageStore;
  const settings = settingsOf(spec);
  const rules: Rules = {
    settings,
    maxSegment: settings.lastSegment ?? settings.startSegment + UNBOUNDED_SPAN,
  };
  const shadow = new Shadow();
  let now = T0;
  const seen = async (): Promise<Seen> => ({
    view: (await store.getStreamSession(ID)) as StreamSessionView,
    pending: await store.pendingNeeds(ID),
  });
  const fail = (where: string, what: string[]) => {
    throw new Error(`${where}:\n  ${what.join('\n  ')}`);
  };

  await store.createStreamSession(settings, now);
  const firstEnd = Math.min(
    settings.startSegment + settings.batchSize - 1,
    settings.lastSegment ?? Number.POSITIVE_INFINITY,
  );
  expect(
    published.map((e) => ({
      reason: e.reason,
      batchNumber: e.batchNumber,
      startSegment: e.startSegment,
      endSegment: e.endSegment,
      qualities: e.qualities,
      segmentDuration: e.segmentDuration,
      isLastBatch: e.isLastBatch,
    })),
    'created: FIRST_BATCH',
  ).toEqual([
    {
      reason: 'FIRST_BATCH',
      batchNumber: 0,
      startSegment: settings.startSegment,
      endSegment: firstEnd,
      qualities: settings.qualities,
      segmentDuration: settings.segmentDuration,
      isLastBatch: firstEnd === settings.lastSegment,
    },
  ]);
  let state = await seen();
  const initial = problems(state, rules, shadow);
  if (initial.length > 0) fail('after create', initial);

  for (const [index, o] of ops.entries()) {
    now += 1_000;
    const before = state;
    const claimedBefore = new Set(shadow.claimed);
    const from = published.length;
    const where = `step ${index} ${describeOp(o)}`;
    const result = await step(o, before);
    if (result === 'skipped') continue;
    const after = await seen();
    const fresh = published.slice(from);
    const wrong: string[] = [];
    if (result.expect === 'refused') {
      if (codeOf(result.outcome) !== 'CONFLICT') {
        wrong.push(`expected CONFLICT, got ${codeOf(result.outcome)}`);
      }
      if (JSON.stringify(after) !== JSON.stringify(before)) wrong.push('refused, yet changed');
      if (fresh.length > 0) wrong.push(`refused, yet announced ${fresh.length} need(s)`);
    } else if (!result.outcome.ok) {
      wrong.push(
        `expected success, got ${codeOf(result.outcome)}: ${String(result.outcome.error)}`,
      );
    } else {
      wrong.push(...(result.check?.(result.outcome.value, after) ?? []));
    }
    wrong.push(...problems(after, rules, shadow));
    wrong.push(...announcementProblems(fresh, before, after, claimedBefore, rules));
    if (wrong.length > 0) fail(where, wrong);
    state = after;
  }

  type Step =
    | 'skipped'
    | {
        expect: 'success' | 'refused';
        outcome: Outcome<any>;
        /** Checks a success against the state after it (problems, if any). */
        check?: (value: any, after: Seen) => string[];
      };

  /** Runs one step against the store, and updates the shadow where it succeeds as expected. */
  async function step(o: Op, before: Seen): Promise<Step> {
    const { view, pending } = before;
    const positionOf = (client: string) => view.clientPositions.find((c) => c.sessionId === client);
    const clamp = (s: number) => Math.max(0, Math.min(rules.maxSegment, s));
    // Clients stay within maxSegment; a batch may reach past it unless the video ends.
    const upToLast = (s: number) => Math.min(settings.lastSegment ?? Number.POSITIVE_INFINITY, s);
    const making = view.batches.filter((b) => !b.isComplete);
    const nextUnused = Math.max(
      0,
      ...[...shadow.claimed].map((n) => n + 1),
      ...pending.map((n) => n.batchNumber + 1),
    );
    const claimInput = (
      batchNumber: number,
      span: Span,
      qualities?: readonly Quality[] | null,
    ) => ({
      streamSessionId: ID,
      batchNumber,
      startSegment: span.start,
      endSegment: span.end,
      videoSourcePath: PATH,
      videoStartOffset: span.start * settings.segmentDuration,
      ...(qualities === undefined || qualities === null ? {} : { qualities }),
    });
    /** A successful claim: the batch is being made, as claimed, in these renditions. */
    const claimed =
      (span: Span, qualities: readonly Quality[]) =>
      (batch: BatchState, after: Seen): string[] => {
        shadow.claim(batch);
        const wrong: string[] = [];
        if (
          batch.startSegment !== span.start ||
          batch.endSegment !== span.end ||
          batch.isComplete
        ) {
          wrong.push(`claimed ${JSON.stringify(batch)}`);
        }
        if (JSON.stringify(batch.qualities) !== JSON.stringify(qualities)) {
          wrong.push(`claimed in ${batch.qualities}, expected ${qualities}`);
        }
        if (after.view.currentBatch?.batchNumber !== batch.batchNumber) {
          wrong.push('the claim is not the current batch');
        }
        if (after.pending.some((n) => n.batchNumber === batch.batchNumber)) {
          wrong.push('its need is still pending');
        }
        return wrong;
      };
    /** True when a claim of `span` in `qualities` meets a batch being made or another need. */
    const blocked = (span: Span, qualities: readonly Quality[], need?: BatchNeededEvent) =>
      making.some((b) => shares(b.qualities, qualities) && overlaps(spanOf(b), span)) ||
      pending.some(
        (n) => n !== need && shares(n.qualities, qualities) && overlaps(spanOf(n), span),
      );

    switch (o.kind) {
      case 'move': {
        const here = positionOf(o.client);
        const quality = o.quality ?? here?.quality ?? settings.qualities[0]!;
        const from = here?.segmentNumber ?? settings.startSegment;
        let to: number;
        if (o.target.at === 'segment') to = o.target.segment;
        else if (o.target.at === 'step') to = from + o.target.delta;
        else {
          const range = coveredRanges(before, quality).find((r) => contains(r, from));
          to = (range?.end ?? from) + o.target.offset;
        }
        const segmentNumber = clamp(to);
        const input = { streamSessionId: ID, sessionId: o.client, segmentNumber, quality };
        return {
          expect: 'success',
          outcome: await attempt(() => store.updateClientPosition(input, now)),
          check: (_, after) => {
            const c = after.view.clientPositions.find((p) => p.sessionId === o.client);
            return c?.segmentNumber === segmentNumber && c.quality === quality
              ? []
              : [`client ${o.client} shown at ${JSON.stringify(c)}`];
          },
        };
      }
      case 'remove': {
        const was = positionOf(o.client) !== undefined;
        return {
          expect: 'success',
          outcome: await attempt(() => store.removeClient(ID, o.client, now)),
          check: (removed) => (removed === was ? [] : [`removeClient answered ${removed}`]),
        };
      }
      case 'claimNeed': {
        const need = pending[o.pick % Math.max(1, pending.length)];
        if (need === undefined) return 'skipped';
        if (o.miss) {
          // Before its start when there is room, else after it: CONFLICT either way.
          const start = need.startSegment;
          const span =
            start > 0 && (o.pick % 2 === 0 || upToLast(start + 1) === start)
              ? { start: Math.max(0, start - 1 - o.before), end: start - 1 }
              : { start: start + 1, end: upToLast(start + 1 + o.after) };
          if (span.start > span.end) return 'skipped';
          return {
            expect: 'refused',
            outcome: await attempt(() =>
              store.setCurrentBatch(claimInput(need.batchNumber, span), now),
            ),
          };
        }
        const span = o.exact
          ? spanOf(need)
          : {
              start: Math.max(0, need.startSegment - o.before),
              end: upToLast(need.startSegment + o.after),
            };
        const refused = blocked(span, need.qualities, need);
        return {
          expect: refused ? 'refused' : 'success',
          outcome: await attempt(() =>
            store.setCurrentBatch(claimInput(need.batchNumber, span), now),
          ),
          check: claimed(span, need.qualities),
        };
      }
      case 'claimAhead': {
        const start = clamp(o.start);
        const span = { start, end: upToLast(start + o.length - 1) };
        const qualities = o.qualities ?? settings.qualities;
        const refused = pending.length > 0 || blocked(span, qualities);
        return {
          expect: refused ? 'refused' : 'success',
          outcome: await attempt(() =>
            store.setCurrentBatch(claimInput(nextUnused, span, o.qualities), now),
          ),
          check: claimed(span, qualities),
        };
      }
      case 'claimWrong': {
        let batchNumber: number;
        let span: Span = { start: 0, end: 0 };
        if (o.which === 'inFlight') {
          const b = making[o.pick % Math.max(1, making.length)];
          if (b === undefined) return 'skipped';
          batchNumber = b.batchNumber;
          span = spanOf(b);
        } else if (o.which === 'made') {
          const done = [...shadow.claimed].filter((n) => !shadow.inFlight.has(n));
          const n = done[o.pick % Math.max(1, done.length)];
          if (n === undefined) return 'skipped';
          batchNumber = n;
        } else {
          batchNumber = nextUnused + 1 + (o.pick % 3);
        }
        return {
          expect: 'refused',
          outcome: await attempt(() => store.setCurrentBatch(claimInput(batchNumber, span), now)),
        };
      }
      case 'complete': {
        if (o.which === 'none') {
          // Never claimed: a pending need's number, or one nobody used.
          const need = pending[o.pick % Math.max(1, pending.length)];
          const batchNumber = o.pick % 2 === 0 && need ? need.batchNumber : nextUnused + o.pick;
          return {
            expect: 'refused',
            outcome: await attempt(() => store.completeBatch(ID, batchNumber, now)),
          };
        }
        if (o.which === 'made') {
          const done = view.batches.filter((b) => b.isComplete);
          const b = done[o.pick % Math.max(1, done.length)];
          if (b === undefined) return 'skipped';
          return {
            expect: 'success',
            outcome: await attempt(() => store.completeBatch(ID, b.batchNumber, now)),
            // Idempotent: the same batch, and nothing else changes.
            check: (batch, after) => [
              ...(JSON.stringify(batch) === JSON.stringify(b)
                ? []
                : [`completed again: ${JSON.stringify(batch)}`]),
              ...(JSON.stringify(after) === JSON.stringify(before)
                ? []
                : ['completing again changed the session']),
            ],
          };
        }
        const b = making[o.pick % Math.max(1, making.length)];
        if (b === undefined) return 'skipped';
        return {
          expect: 'success',
          outcome: await attempt(() => store.completeBatch(ID, b.batchNumber, now)),
          check: (batch: BatchState) => {
            shadow.complete(b.batchNumber);
            return batch.isComplete &&
              batch.generationEnded === now &&
              batch.batchNumber === b.batchNumber
              ? []
              : [`completed as ${JSON.stringify(batch)}`];
          },
        };
      }
      case 'release': {
        const range = view.coverage[o.pick % Math.max(1, view.coverage.length)];
        const start = clamp(o.start ?? (range?.startSegment ?? 0) + o.offset);
        const span = { start, end: clamp(start + o.length - 1) };
        if (typeof store.releaseSegments !== 'function') {
          throw new Error('MemoryStore has no releaseSegments (contract v2)');
        }
        const input = {
          streamSessionId: ID,
          startSegment: span.start,
          endSegment: span.end,
          qualities: o.qualities,
        };
        return {
          expect: 'success',
          outcome: await attempt(() => store.releaseSegments(input, now)),
          check: (released: boolean) => {
            const expected = shadow.release(span, o.qualities ?? QUALITIES);
            return released === expected ? [] : [`releaseSegments answered ${released}`];
          },
        };
      }
    }
  }
}

describe('coverage (contract v2), model-based on the memory store', () => {
  it(
    `keeps every client served and every need and batch in bounds (${RUNS} random sequences of up to ${MAX_STEPS} steps)`,
    async () => {
      await fc.assert(
        fc.asyncProperty(
          sessionSpec,
          fc.array(op, { maxLength: MAX_STEPS, size: 'max' }),
          runSequence,
        ),
        {
          numRuns: RUNS,
          seed:
            process.env.COVERAGE_SEED === undefined ? undefined : Number(process.env.COVERAGE_SEED),
          path: process.env.COVERAGE_PATH,
          endOnFailure: false,
          includeErrorInReport: true,
        },
      );
    },
    Math.max(60_000, RUNS * 400),
  );
});
