/**
 * The domain rules live twice: in TypeScript (the memory store, the
 * reference) and in Lua (the Redis store). This model-based test runs random
 * sequences of operations against both, side by side through one
 * BatchCoordinator each on one shared ManualClock, and after every
 * coordinator call compares what each side answered (results, or errors by
 * code and text), what it shows (every session with its batches, coverage
 * and stalled batches; the list; every pending need) and what it announced
 * (every batchNeeded, all fields; streamSessionEnded).
 *
 * The operations are contract v2's: sessions of known or unknown length with
 * their own renditions; clients that play on, seek (ahead, back into gaps,
 * to the edges of what is covered, past the end) and switch renditions;
 * claims of any pending need (its exact range or another containing its
 * start, with or without renditions), of stalled batches, ahead of need, and
 * deliberately wrong ones; completions of any batch; releases of any range.
 * What an op claims, completes or releases is worked out from the reference
 * side's state when it runs.
 *
 * PARITY_RUNS=n runs more sequences; PARITY_SEED=s (and PARITY_PATH=p, both
 * printed on failure) replays one.
 */
import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../src/config.js';
import { ManualClock } from '../src/state/clock.js';
import { BatchCoordinator } from '../src/state/coordinator.js';
import { sortQualities } from '../src/state/coverage.js';
import { createStore } from '../src/state/create-store.js';
import { DomainError } from '../src/state/errors.js';
import type { EventBus } from '../src/state/events.js';
import {
  type BatchNeededEvent,
  type CreateStreamSessionInput,
  QUALITIES,
  type Quality,
  type ReleaseSegmentsInput,
  type SetCurrentBatchInput,
  type StreamSessionEndedEvent,
  type StreamSessionView,
} from '../src/state/model.js';
import type { StreamSessionStore, Timeouts } from '../src/state/store.js';
import { deleteKeys } from './fixtures.js';

const url = process.env.REDIS_URL ?? defaultConfig.redisUrl;
const RUNS = Number(process.env.PARITY_RUNS ?? 300);
const MAX_STEPS = 60;
// Short, so that a sequence of a few clock steps reaches every deadline.
const timeouts: Timeouts = { batchTimeout: 1_000, clientTimeout: 3_000, idleTimeout: 5_000 };
// Every key of this file's runs starts with it; each sequence adds its own number.
const filePrefix = `parity:${randomUUID()}:`;
const SESSION_IDS = ['s0', 's1'] as const;
const UNKNOWN_SESSION = 'nobody';
const ALL_SESSION_IDS = [...SESSION_IDS, UNKNOWN_SESSION];
const CLIENT_IDS = ['c0', 'c1', 'c2', 'c3'] as const;
// A hang guard for the barrier, not a timing assumption: it fails loudly.
const SETTLE_TIMEOUT = 5_000; // ms

type Kind = 'memory' | 'redis';

/** One store behind its coordinator: what a sequence runs against. */
interface Side {
  readonly kind: Kind;
  readonly coordinator: BatchCoordinator;
  /** The store itself, for its pending needs (what a new subscriber is told first). */
  readonly store: StreamSessionStore;
  /** The bus the coordinator publishes on and its subscriptions listen to. */
  readonly events: EventBus;
  /** What the bus or the coordinator reported failing: any entry fails the run. */
  readonly errors: unknown[];
  close(): Promise<void>;
}

/**
 * Builds one side as the service does (src/server/app.ts): the only place
 * that knows how a store and its bus are made.
 */
async function makeSide(kind: Kind, clock: ManualClock, keyPrefix: string): Promise<Side> {
  const errors: unknown[] = [];
  const onError = (error: unknown) => errors.push(error);
  // As the server makes them: createStore pairs each store with its bus.
  const backend = createStore(
    { ...timeouts, store: kind, redisUrl: url, redisKeyPrefix: keyPrefix, snapshotPath: null },
    { clock, onEventError: onError },
  );
  await backend.open();
  const { store, events } = backend;
  const coordinator = new BatchCoordinator({
    store,
    events,
    clock,
    defaults: { segmentDuration: 6, batchSize: 5, threshold: 2, qualities: QUALITIES },
    onError,
  });
  return {
    kind,
    coordinator,
    store,
    events,
    errors,
    async close() {
      await coordinator.close();
      await backend.close();
    },
  };
}

// ---------------------------------------------------------------------------
// Operations

type SessionId = string;
type ClientId = (typeof CLIENT_IDS)[number];

/**
 * Where a client moves to, worked out from the reference side's state when
 * the move is made: a segment; near the current batch's end (v1's churn); a
 * seek from where it is; near an edge of one of the session's covered ranges
 * (into a gap before it, before its end, just past it), or exactly where it
 * stops serving (end - threshold, ±1: the edge of a client's safe range); at
 * or around a pending need's start; around the video's last segment (past it
 * is BAD_USER_INPUT).
 */
type Target =
  | { readonly at: 'segment'; readonly segment: number }
  | { readonly at: 'batchEnd'; readonly offset: number }
  | { readonly at: 'self'; readonly delta: number }
  | {
      readonly at: 'range';
      readonly index: number;
      readonly edge: 'start' | 'end';
      readonly offset: number;
    }
  | { readonly at: 'need'; readonly index: number; readonly offset: number }
  /** Around where a covered range stops serving: its end - threshold (the hot path's edge). */
  | { readonly at: 'edge'; readonly index: number; readonly offset: number }
  | { readonly at: 'last'; readonly offset: number };
interface Move {
  readonly client: ClientId;
  readonly target: Target;
  /** 'keep': the client's rendition (the session's first for a new client). */
  readonly quality: Quality | 'keep';
}

/**
 * How far the clock moves: some milliseconds, or to a millisecond either side
 * of a deadline the reference side shows (a batch in flight's, a client's,
 * an empty session's), so that the boundary itself is tried. Never backwards.
 */
type Wait =
  | { readonly ms: number }
  | {
      readonly until: 'batch' | 'client' | 'idle';
      readonly id: SessionId;
      readonly client: ClientId;
      /** Which batch in flight (modulo their number). */
      readonly index: number;
      readonly off: number;
    };

/**
 * What a claim is for: a pending need (not STALLED), a STALLED batch, a
 * batch of the session (its number and range again: CONFLICT unless it
 * stalled), the next unused number (ahead of need: CONFLICT while needs are
 * pending), or the next unused number over a batch in flight (overlap). One
 * that finds no such need or batch claims ahead of need.
 */
type ClaimOf =
  | { readonly of: 'need' | 'stalled' | 'batch' | 'overlap'; readonly index: number }
  | { readonly of: 'ahead' };
/** The renditions a claim names: none (the need's), the need's, one more, one fewer, or any. */
type ClaimQualities =
  | { readonly q: 'absent' | 'same' | 'missing' }
  | { readonly q: 'extra'; readonly extra: Quality }
  | { readonly q: 'subset'; readonly subset: readonly Quality[] };
/** A claim wrong on purpose, in one field (misses: a range after the need's start). */
type Wrong = 'offset' | 'path' | 'pastEnd' | 'backwards' | 'number' | 'noQualities' | 'misses';

interface CreateOp {
  readonly kind: 'create';
  readonly id: SessionId;
  /** Creates the other session instead when this one lives and that one does not. */
  readonly fresh: boolean;
  readonly batchSize: number;
  readonly threshold: number;
  readonly startSegment: number;
  readonly segmentDuration: number;
  /**
   * The video's length, when known: its last segment is startSegment + `segments`
   * (at least 0), and its last segment holds `quarters` quarters of a segment.
   */
  readonly length: { readonly segments: number; readonly quarters: number } | null;
  /** The session's renditions; the server's default when null. */
  readonly qualities: readonly Quality[] | null;
}

type Op =
  | CreateOp
  /** Several clients report, one call each. */
  | { readonly kind: 'update'; readonly id: SessionId; readonly moves: readonly Move[] }
  | { readonly kind: 'remove'; readonly id: SessionId; readonly client: ClientId }
  /**
   * A claim: for what `claim` says, with the need's range (`around` null) or
   * one around its start (which must stay in it for a need, and must be the
   * range again for a STALLED batch); `ahead` is the range of a claim ahead
   * of need (from a segment) or over a batch (from an offset into it). An
   * encoder that does its job completes what it claimed.
   */
  | {
      readonly kind: 'claim';
      readonly id: SessionId;
      readonly claim: ClaimOf;
      readonly around: { readonly before: number; readonly after: number } | null;
      readonly ahead: { readonly start: number; readonly length: number };
      readonly qualities: ClaimQualities;
      readonly wrong: Wrong | null;
      /** How far a wrong number is off (never below 0). */
      readonly by: number;
      readonly thenComplete: boolean;
    }
  /**
   * Completes a batch of the session (one in flight, or any, by index modulo
   * their number), the current one, or one never claimed.
   */
  | {
      readonly kind: 'complete';
      readonly id: SessionId;
      readonly which:
        | { readonly of: 'inFlight' | 'any'; readonly index: number }
        | 'current'
        | 'unknown';
      readonly times: number;
    }
  /**
   * Renews the claim of a batch of the session (one in flight, or any, by
   * index modulo their number), or of one never claimed (issue 13).
   */
  | {
      readonly kind: 'renew';
      readonly id: SessionId;
      readonly which: { readonly of: 'inFlight' | 'any'; readonly index: number } | 'unknown';
    }
  /**
   * Releases segments: a range from near the start of a covered range; a
   * (complete) batch's range widened or narrowed; or everything behind the
   * slowest client (what an encoder deletes). Of every rendition (null) or
   * those named.
   */
  | {
      readonly kind: 'release';
      readonly id: SessionId;
      readonly range:
        | {
            readonly at: 'covered';
            readonly index: number;
            readonly from: number;
            readonly length: number;
          }
        | {
            readonly at: 'batch';
            readonly index: number;
            readonly before: number;
            readonly after: number;
          }
        | { readonly at: 'behind' };
      readonly qualities: readonly Quality[] | null;
    }
  | { readonly kind: 'end'; readonly id: SessionId }
  /** The clock moves, then the sweeper runs. */
  | { readonly kind: 'sweep'; readonly wait: Wait }
  /** The clock moves. */
  | { readonly kind: 'tick'; readonly wait: Wait }
  /** An encoder subscribes: it is first told every pending need. */
  | { readonly kind: 'subscribe' };

const signed = (n: number) => `${n >= 0 ? '+' : ''}${n}`;

function describeTarget(target: Target): string {
  switch (target.at) {
    case 'segment':
      return `${target.segment}`;
    case 'batchEnd':
      return `batchEnd${signed(target.offset)}`;
    case 'self':
      return `self${signed(target.delta)}`;
    case 'range':
      return `range#${target.index}.${target.edge}${signed(target.offset)}`;
    case 'need':
      return `need#${target.index}${signed(target.offset)}`;
    case 'edge':
      return `edge#${target.index}${signed(target.offset)}`;
    case 'last':
      return `last${signed(target.offset)}`;
  }
}

function describeWait(wait: Wait): string {
  if ('ms' in wait) return `+${wait.ms}ms`;
  const off = wait.off === 0 ? '' : `${signed(wait.off)}ms`;
  const of =
    wait.until === 'client'
      ? `${wait.id} ${wait.client}`
      : wait.until === 'batch'
        ? `${wait.id} batch#${wait.index}`
        : wait.id;
  return `to ${of} ${wait.until} deadline${off}`;
}

function describeQualities(q: ClaimQualities): string {
  switch (q.q) {
    case 'absent':
      return '';
    case 'extra':
      return `, qualities +${q.extra}`;
    case 'subset':
      return `, qualities [${q.subset.join(',')}]`;
    default:
      return `, qualities ${q.q}`;
  }
}

function describeOp(op: Op): string {
  switch (op.kind) {
    case 'create': {
      const length =
        op.length === null
          ? ''
          : `, last start${signed(op.length.segments)} (${op.length.quarters}/4 of a segment)`;
      const qualities = op.qualities === null ? '' : `, [${op.qualities.join(',')}]`;
      return `create(${op.id}${op.fresh ? ' or a free id' : ''}, batchSize ${op.batchSize}, threshold ${op.threshold}, start ${op.startSegment}, segmentDuration ${op.segmentDuration}${length}${qualities})`;
    }
    case 'update':
      return `update(${op.id}, ${op.moves.map((m) => `${m.client}→${describeTarget(m.target)} ${m.quality}`).join(', ')})`;
    case 'remove':
      return `remove(${op.id}, ${op.client})`;
    case 'claim': {
      const what = op.claim.of === 'ahead' ? 'ahead' : `${op.claim.of}#${op.claim.index}`;
      const range =
        op.claim.of === 'ahead' || op.claim.of === 'overlap'
          ? `, ${op.claim.of === 'ahead' ? 'from' : 'at +'}${op.ahead.start} ×${op.ahead.length}`
          : op.around === null
            ? ''
            : `, start-${op.around.before}..start+${op.around.after}`;
      const wrong =
        op.wrong === null ? '' : `, wrong ${op.wrong}${op.wrong === 'number' ? ` +${op.by}` : ''}`;
      return `claim(${op.id}, ${what}${range}${describeQualities(op.qualities)}${wrong}${op.thenComplete ? ', then complete' : ''})`;
    }
    case 'complete': {
      const which =
        typeof op.which === 'string' ? op.which : `${op.which.of} batch#${op.which.index}`;
      return `complete(${op.id}, ${which}${op.times > 1 ? `, ×${op.times}` : ''})`;
    }
    case 'renew':
      return `renew(${op.id}, ${typeof op.which === 'string' ? op.which : `${op.which.of} batch#${op.which.index}`})`;
    case 'release': {
      const r = op.range;
      const range =
        r.at === 'covered'
          ? `covered#${r.index}${signed(r.from)} ×${r.length}`
          : r.at === 'batch'
            ? `batch#${r.index} -${r.before}..+${r.after}`
            : 'behind';
      return `release(${op.id}, ${range}${op.qualities === null ? '' : `, [${op.qualities.join(',')}]`})`;
    }
    case 'end':
      return `end(${op.id})`;
    case 'sweep':
      return `sweep(${describeWait(op.wait)})`;
    case 'tick':
      return `tick(${describeWait(op.wait)})`;
    case 'subscribe':
      return 'subscribe()';
  }
}

/** An op that prints as one line in fast-check's counterexample. */
const readable = (op: Op): Op => Object.assign(op, { [fc.toStringMethod]: () => describeOp(op) });

// Two sessions collide often; an unknown one now and then.
const sessionId = fc.oneof(
  { weight: 8, arbitrary: fc.constantFrom(...SESSION_IDS) },
  { weight: 1, arbitrary: fc.constant(UNKNOWN_SESSION) },
);
const clientId = fc.constantFrom(...CLIENT_IDS);
const quality = fc.constantFrom(...QUALITIES);
const qualities = fc.subarray([...QUALITIES], { minLength: 1 });
const index = fc.nat({ max: 7 });
// Anywhere now and then; mostly around what is covered, announced or being made, or a short seek.
const target: fc.Arbitrary<Target> = fc.oneof(
  {
    weight: 1,
    arbitrary: fc.record({
      at: fc.constant('segment' as const),
      segment: fc.integer({ min: 0, max: 60 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      at: fc.constant('batchEnd' as const),
      offset: fc.integer({ min: -9, max: 3 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      at: fc.constant('self' as const),
      delta: fc.integer({ min: -6, max: 6 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      at: fc.constant('range' as const),
      index,
      edge: fc.constantFrom('start' as const, 'end' as const),
      offset: fc.integer({ min: -9, max: 3 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      at: fc.constant('need' as const),
      index,
      offset: fc.integer({ min: -3, max: 3 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      at: fc.constant('edge' as const),
      index,
      offset: fc.integer({ min: -1, max: 1 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      at: fc.constant('last' as const),
      offset: fc.integer({ min: -3, max: 2 }),
    }),
  },
);
// Mostly less than a client's timeout, so sessions live long enough to get somewhere.
const wait: fc.Arbitrary<Wait> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ ms: fc.integer({ min: 0, max: 1_500 }) }) },
  { weight: 1, arbitrary: fc.record({ ms: fc.integer({ min: 0, max: 6_000 }) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      until: fc.constantFrom('batch' as const, 'client' as const, 'idle' as const),
      id: fc.constantFrom(...SESSION_IDS),
      client: clientId,
      index,
      off: fc.constantFrom(-1, 0, 1),
    }),
  },
);

const createOf = (id: fc.Arbitrary<SessionId>): fc.Arbitrary<CreateOp> =>
  fc
    .record({
      id,
      fresh: fc.oneof({ weight: 3, arbitrary: fc.constant(true) }, fc.constant(false)),
      batchSize: fc.integer({ min: 3, max: 8 }),
      startSegment: fc.integer({ min: 0, max: 20 }),
      segmentDuration: fc.integer({ min: 1, max: 10 }),
      threshold: fc.integer({ min: 0, max: 8 }),
      length: fc.option(
        fc.record({
          // Now and then before the start: BAD_USER_INPUT on both sides.
          segments: fc.integer({ min: -2, max: 40 }),
          quarters: fc.integer({ min: 1, max: 4 }),
        }),
        { freq: 2 },
      ),
      qualities: fc.option(qualities, { freq: 2 }),
    })
    // Any threshold from 0 to batchSize, evenly.
    .map(({ threshold, ...rest }) => ({
      kind: 'create' as const,
      ...rest,
      threshold: threshold % (rest.batchSize + 1),
    }));
const create = createOf(fc.constantFrom(...SESSION_IDS));

const claimQualities: fc.Arbitrary<ClaimQualities> = fc.oneof(
  { weight: 6, arbitrary: fc.constant({ q: 'absent' as const }) },
  { weight: 1, arbitrary: fc.constant({ q: 'same' as const }) },
  { weight: 1, arbitrary: fc.constant({ q: 'missing' as const }) },
  { weight: 1, arbitrary: fc.record({ q: fc.constant('extra' as const), extra: quality }) },
  { weight: 1, arbitrary: fc.record({ q: fc.constant('subset' as const), subset: qualities }) },
);

const claim = fc.record({
  kind: fc.constant('claim' as const),
  id: sessionId,
  claim: fc.oneof(
    {
      weight: 6,
      arbitrary: fc.record({ of: fc.constant('need' as const), index }),
    },
    {
      weight: 2,
      arbitrary: fc.record({ of: fc.constant('stalled' as const), index }),
    },
    { weight: 1, arbitrary: fc.record({ of: fc.constant('batch' as const), index }) },
    { weight: 1, arbitrary: fc.record({ of: fc.constant('overlap' as const), index }) },
    { weight: 1, arbitrary: fc.constant({ of: 'ahead' as const }) },
  ),
  // Mostly the need's own range.
  around: fc.oneof(
    { weight: 2, arbitrary: fc.constant(null) },
    {
      weight: 1,
      arbitrary: fc.record({ before: fc.nat({ max: 3 }), after: fc.nat({ max: 8 }) }),
    },
  ),
  ahead: fc.record({
    start: fc.integer({ min: 0, max: 60 }),
    length: fc.integer({ min: 1, max: 8 }),
  }),
  qualities: claimQualities,
  wrong: fc.oneof(
    { weight: 8, arbitrary: fc.constant(null) },
    {
      weight: 1,
      arbitrary: fc.constantFrom<Wrong>(
        'offset',
        'path',
        'pastEnd',
        'backwards',
        'number',
        'noQualities',
        'misses',
      ),
    },
  ),
  by: fc.constantFrom(-2, -1, 1, 2),
  // Mostly left in flight a while, so that several are at once and some stall.
  thenComplete: fc.oneof({ weight: 2, arbitrary: fc.constant(false) }, fc.constant(true)),
});

const op: fc.Arbitrary<Op> = fc
  .oneof(
    { weight: 3, arbitrary: create },
    {
      weight: 8,
      arbitrary: fc.record({
        kind: fc.constant('update' as const),
        id: sessionId,
        moves: fc.array(
          fc.record({
            client: clientId,
            target,
            quality: fc.oneof(
              { weight: 4, arbitrary: fc.constant('keep' as const) },
              { weight: 1, arbitrary: quality },
            ),
          }),
          { minLength: 1, maxLength: 3 },
        ),
      }),
    },
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('remove' as const),
        id: sessionId,
        client: clientId,
      }),
    },
    { weight: 6, arbitrary: claim },
    {
      weight: 4,
      arbitrary: fc.record({
        kind: fc.constant('complete' as const),
        id: sessionId,
        which: fc.oneof(
          { weight: 5, arbitrary: fc.record({ of: fc.constant('inFlight' as const), index }) },
          { weight: 2, arbitrary: fc.record({ of: fc.constant('any' as const), index }) },
          { weight: 1, arbitrary: fc.constant('current' as const) },
          { weight: 1, arbitrary: fc.constant('unknown' as const) },
        ),
        times: fc.constantFrom(1, 1, 2),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant('renew' as const),
        id: sessionId,
        which: fc.oneof(
          { weight: 5, arbitrary: fc.record({ of: fc.constant('inFlight' as const), index }) },
          { weight: 2, arbitrary: fc.record({ of: fc.constant('any' as const), index }) },
          { weight: 1, arbitrary: fc.constant('unknown' as const) },
        ),
      }),
    },
    {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant('release' as const),
        id: sessionId,
        range: fc.oneof(
          fc.record({
            at: fc.constant('covered' as const),
            index,
            from: fc.integer({ min: -3, max: 6 }),
            length: fc.integer({ min: 1, max: 12 }),
          }),
          fc.record({
            at: fc.constant('batch' as const),
            index,
            before: fc.integer({ min: -2, max: 2 }),
            after: fc.integer({ min: -2, max: 2 }),
          }),
          fc.constant({ at: 'behind' as const }),
        ),
        qualities: fc.option(fc.subarray([...QUALITIES]), { freq: 2 }),
      }),
    },
    // Half of them of no session: sessions should live long enough to get somewhere.
    {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant('end' as const),
        id: fc.oneof(fc.constantFrom(...SESSION_IDS), fc.constant(UNKNOWN_SESSION)),
      }),
    },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('sweep' as const), wait }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('tick' as const), wait }) },
    { weight: 1, arbitrary: fc.constant({ kind: 'subscribe' as const }) },
  )
  .map(readable);

/**
 * A sequence starts with its sessions (s0, and s1 unless shrunk away), so
 * that its steps act on live sessions rather than mostly meeting NOT_FOUND.
 */
const sequence = fc
  .tuple(
    createOf(fc.constant(SESSION_IDS[0])).map(readable),
    fc.option(createOf(fc.constant(SESSION_IDS[1])).map(readable), { nil: undefined }),
    fc.array(op, { maxLength: MAX_STEPS - 2, size: 'max' }),
  )
  .map(([first, second, rest]) =>
    second === undefined ? [first, ...rest] : [first, second, ...rest],
  );

const plain = { fresh: false, length: null, qualities: null } as const;
/** Counterexamples found before, tried first on every run. */
const found: Op[][] = [
  // The Redis bus took the second s1's first batch for a repeat of the first's.
  [
    {
      kind: 'create',
      id: 's0',
      batchSize: 3,
      threshold: 0,
      startSegment: 0,
      segmentDuration: 1,
      ...plain,
    },
    {
      kind: 'create',
      id: 's1',
      batchSize: 3,
      threshold: 0,
      startSegment: 0,
      segmentDuration: 1,
      ...plain,
    },
    { kind: 'end', id: 's1' },
    {
      kind: 'create',
      id: 's1',
      batchSize: 3,
      threshold: 0,
      startSegment: 0,
      segmentDuration: 1,
      ...plain,
    },
  ],
];

// ---------------------------------------------------------------------------
// Watching a side

/** What a side announced, and a way to wait until it has all arrived. */
class Watch {
  /** From coordinator.batchNeeded(), in delivery order. */
  readonly needs: BatchNeededEvent[] = [];
  /** From coordinator.streamSessionEnded(), in delivery order. */
  readonly ended: StreamSessionEndedEvent[] = [];
  /**
   * Each session's view after each of its changes in the current call, when
   * watched with `timeline` (the memory side): the states a view the Redis
   * bus attaches on delivery may show (see compareAnnouncements).
   */
  readonly views = new Map<string, Promise<StreamSessionView | null>[]>();
  private bus = { needs: 0, ended: 0, barriers: new Set<string>() };
  private waiters = new Set<() => void>();
  private readonly stops: Array<() => unknown> = [];

  constructor(
    private readonly side: Side,
    timeline: boolean,
  ) {
    // Registered before any change: the coordinator's subscriptions hear
    // exactly what this listener hears (nothing is pending when they start).
    this.stops.push(
      side.events.subscribe((message) => {
        if (message.type === 'batchNeeded') {
          if (!isBarrier(message.event.streamSession.id)) this.bus.needs++;
        } else if (message.type === 'streamSessionEnded') {
          this.bus.ended++;
        } else if (isBarrier(message.event.id)) {
          this.bus.barriers.add(message.event.id);
        } else if (timeline) {
          // The memory store computes a view when asked, before its promise
          // settles, and its bus delivers during the change: this is the view
          // right after the change.
          const id = message.event.id;
          this.views.set(id, [
            ...(this.views.get(id) ?? []),
            side.coordinator.getStreamSession(id),
          ]);
        }
        this.notify();
      }),
    );
    this.pump(side.coordinator.batchNeeded(), (event) => {
      if (!isBarrier(event.streamSession.id)) this.needs.push(event);
    });
    this.pump(side.coordinator.streamSessionEnded(), (event) => this.ended.push(event));
  }

  /**
   * Resolves once everything the side's changes so far published has reached
   * this watch. Redis delivers asynchronously (pub/sub, then the bus reads
   * the session a need is about), so a count could be short by timing luck;
   * a barrier cannot: the sentinel goes out through the bus's publish, on
   * the same connection the store's scripts PUBLISH on, after the change's
   * reply came back, so Redis orders it after every event of that change;
   * the bus delivers in arrival order, one after another. Once the sentinel
   * is here, the bus has handed every earlier event to every listener, the
   * coordinator's subscriptions included, whose readers then catch up.
   */
  async settle(barrier: string): Promise<void> {
    this.side.events.publish({ type: 'streamSessionChanged', event: { id: barrier } });
    await this.until(`barrier '${barrier}'`, () => this.bus.barriers.has(barrier));
    await this.until(
      'the subscriptions to read what the bus delivered',
      () => this.needs.length === this.bus.needs && this.ended.length === this.bus.ended,
    );
  }

  /**
   * The needs a new batchNeeded subscriber is told first (the pending ones),
   * read up to a sentinel need published after it subscribed: the
   * subscription holds live events until its replay is done, so the
   * sentinel comes after the whole replay.
   */
  async replay(barrier: string): Promise<BatchNeededEvent[]> {
    const replayed: BatchNeededEvent[] = [];
    const subscription = this.side.coordinator.batchNeeded();
    let done = false;
    this.pump(subscription, (event) => {
      if (event.streamSession.id === barrier) done = true;
      else replayed.push(event);
    });
    this.side.events.publish({ type: 'batchNeeded', event: sentinelNeed(barrier) });
    await this.until(`the replay up to '${barrier}'`, () => done);
    await subscription.return?.();
    return replayed;
  }

  close(): void {
    for (const stop of this.stops) stop();
  }

  /** Reads a subscription in the background; its first read subscribes at once. */
  private pump<T>(iterator: AsyncIterableIterator<T>, onEvent: (event: T) => void): void {
    this.stops.push(() => iterator.return?.(undefined));
    void (async () => {
      try {
        for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
          onEvent(next.value);
          this.notify();
        }
      } catch (error) {
        this.side.errors.push(error);
        this.notify();
      }
    })();
  }

  private notify(): void {
    for (const waiter of this.waiters) waiter();
  }

  private until(what: string, done: () => boolean): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!done()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`${this.side.kind}: waited ${SETTLE_TIMEOUT} ms for ${what}`));
      }, SETTLE_TIMEOUT);
      this.waiters.add(check);
    });
  }
}

const isBarrier = (id: string) => id.startsWith('barrier ');

/** A need no session has: only its id and creation (the Redis bus' dedupe key) matter. */
function sentinelNeed(id: string): BatchNeededEvent {
  return {
    streamSession: { id, createdAt: 0 } as StreamSessionView,
    sequence: 1,
  } as BatchNeededEvent;
}

// ---------------------------------------------------------------------------
// Comparing

/**
 * The first place where two values differ: its path and both values there;
 * null when they are equal.
 */
function difference(a: unknown, b: unknown, path = ''): string | null {
  if (Object.is(a, b)) return null;
  const show = (v: unknown) => JSON.stringify(v) ?? String(v);
  const both = `\n    memory: ${show(a)}\n    redis:  ${show(b)}`;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) {
    return `${path}${both}`;
  }
  if (Array.isArray(a) !== Array.isArray(b)) return `${path}${both}`;
  if (Array.isArray(a) && Array.isArray(b) && a.length !== b.length) {
    return `${path} (memory has ${a.length}, redis ${b.length})${both}`;
  }
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  for (const key of keys) {
    const at = Array.isArray(a) ? `${path}[${key}]` : `${path}.${key}`;
    const found = difference(
      (a as Record<string, unknown>)[key],
      (b as Record<string, unknown>)[key],
      at,
    );
    if (found !== null) return found;
  }
  return null;
}

class Drift extends Error {
  override name = 'Drift';
}

function same(what: string, memory: unknown, redis: unknown): void {
  const found = difference(memory, redis);
  if (found !== null) throw new Drift(`${what}${found}`);
}

/**
 * A call's answer, or its error as the API shows it (code and message);
 * any other error fails the run, even when both sides throw it.
 */
async function outcome(side: Side, call: Call): Promise<unknown> {
  try {
    return { value: await call(side.coordinator) };
  } catch (error) {
    if (!(error instanceof DomainError)) throw new Drift(`${side.kind} threw ${String(error)}`);
    return { error: { code: error.code, message: error.message } };
  }
}

/**
 * Every session's view, the list (a whole page, and a page of one at an
 * offset), and every pending need (each session's by sequence, with its view).
 */
async function views(side: Side) {
  const [sessions, list, page, pending] = await Promise.all([
    Promise.all(ALL_SESSION_IDS.map((id) => side.coordinator.getStreamSession(id))),
    side.coordinator.listStreamSessions(10, 0),
    side.coordinator.listStreamSessions(1, 1),
    side.store.pendingNeeds(),
  ]);
  return {
    sessions: Object.fromEntries(ALL_SESSION_IDS.map((id, i) => [id, sessions[i]])),
    list,
    page,
    pending,
  };
}

const withoutView = ({ streamSession: _, ...need }: BatchNeededEvent) => need;

function bySession<T>(events: readonly T[], idOf: (event: T) => string): Map<string, T[]> {
  const grouped = new Map<string, T[]>();
  for (const event of events)
    grouped.set(idOf(event), [...(grouped.get(idOf(event)) ?? []), event]);
  return grouped;
}

/**
 * The needs and endings one call announced. Compared per session, in order:
 * between sessions, the order of what one sweep does is unspecified where
 * their deadlines tie (the memory store goes by insertion, Redis by ZSET
 * member), and ties are common: changes share instants, and every session
 * stalled or emptied in one sweep gets the same next deadline.
 */
function compareAnnouncements(
  { memory, redis }: { memory: Watch; redis: Watch },
  from: { needs: [number, number]; ended: [number, number] },
  sweeping: boolean,
  timeline: Map<string, StreamSessionView[]>,
): void {
  const ended = [memory.ended.slice(from.ended[0]), redis.ended.slice(from.ended[1])];
  const endedBy = ended.map((list) => bySession(list, (e) => e.id));
  for (const id of new Set([...endedBy[0]!.keys(), ...endedBy[1]!.keys()])) {
    same(`streamSessionEnded[${id}]`, endedBy[0]!.get(id) ?? [], endedBy[1]!.get(id) ?? []);
  }
  const needsBy = [
    bySession(memory.needs.slice(from.needs[0]), (e) => e.streamSession.id),
    bySession(redis.needs.slice(from.needs[1]), (e) => e.streamSession.id),
  ];
  for (const id of new Set([...needsBy[0]!.keys(), ...needsBy[1]!.keys()])) {
    const m = needsBy[0]!.get(id) ?? [];
    const r = needsBy[1]!.get(id) ?? [];
    // The Redis bus drops a need whose session is gone when it reads the
    // view (redis-event-bus.ts, `complete`). A sweep can stall a batch and
    // end its session IDLE in one go; whether the read comes before the end
    // is a race, so those needs may or may not arrive (never others).
    const mayDrop = sweeping && (endedBy[0]!.get(id) ?? []).length > 0;
    if (!(r.length === m.length || (mayDrop && r.length < m.length))) {
      same(`batchNeeded[${id}]`, m.map(withoutView), r.map(withoutView));
    }
    // The Redis bus attaches the session's view when it delivers a need, not
    // when the script announced it: within one sweep that changes a session
    // several times, that may be any of its states from the announcement on
    // (in order). Elsewhere one call is one change, and the view is the one
    // right after it, as in memory.
    const states = timeline.get(id) ?? [];
    const stateAt = (view: StreamSessionView, from: number) =>
      states.findIndex((s, at) => at >= from && difference(s, view) === null);
    let announcedAt = 0;
    let seenAt = 0;
    for (const [i, need] of r.entries()) {
      const memoryNeed = m[i]!;
      same(`batchNeeded[${id}][${i}]`, withoutView(memoryNeed), withoutView(need));
      announcedAt = stateAt(memoryNeed.streamSession, announcedAt);
      if (announcedAt < 0) throw new Error(`memory need ${i} of ${id} shows no state it had`);
      seenAt = stateAt(need.streamSession, Math.max(announcedAt, seenAt));
      if (seenAt < 0) {
        same(
          `batchNeeded[${id}][${i}].streamSession`,
          memoryNeed.streamSession,
          need.streamSession,
        );
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Running a sequence

type Call = (coordinator: BatchCoordinator) => Promise<unknown>;

/** What the memory side (the reference) shows, from which each call's arguments are worked out. */
interface Known {
  view(id: string): StreamSessionView | null;
  /** The session's pending needs, by sequence. */
  pending(id: string): readonly BatchNeededEvent[];
  /** 1 + the highest batch number the session ever claimed (0 before its first claim). */
  claimedHigh(id: string): number;
  /** When the batch last stalled (its STALLED need's change), if it has since its claim. */
  stalledAt(id: string, batchNumber: number): number | undefined;
  /** When the batch's claim was last renewed, if ever. */
  renewedAt(id: string, batchNumber: number): number | undefined;
  /** A renewal of the batch's claim succeeded now. */
  renewed(id: string, batchNumber: number): void;
}

/**
 * The concrete calls an op makes, worked out from the state before each.
 * Changes share the instant of the change before them (as they may: a
 * session may end and be made again within a millisecond; claims of one
 * session in one millisecond tie on their stall deadlines), but for
 * position reports, which come a millisecond apart: two clients heard in
 * the same millisecond tie on the client timeout, and the stores expire
 * tied clients in different orders (memory as they reported, Redis by
 * sessionId), an order the contract leaves open.
 */
function* calls(op: Op, known: Known, clock: ManualClock): Generator<Call> {
  if (op.kind === 'sweep' || op.kind === 'tick') {
    clock.set(Math.max(clock.now(), waitedUntil(op.wait, known, clock.now())));
  }
  switch (op.kind) {
    case 'create': {
      const free = SESSION_IDS.find((id) => known.view(id) === null);
      const id = op.fresh && known.view(op.id) !== null && free !== undefined ? free : op.id;
      const input = createInput({ ...op, id });
      yield (c) => c.createStreamSession(input);
      return;
    }
    case 'update':
      for (const move of op.moves) {
        clock.advance(1);
        const view = known.view(op.id);
        const segmentNumber = Math.max(0, segmentOf(move, view, known.pending(op.id)));
        const here = view?.clientPositions.find((p) => p.sessionId === move.client);
        const quality =
          move.quality !== 'keep' ? move.quality : (here?.quality ?? view?.qualities[0] ?? '720p');
        yield (c) =>
          c.updateClientPosition({
            streamSessionId: op.id,
            sessionId: move.client,
            segmentNumber,
            quality,
          });
      }
      return;
    case 'remove':
      yield (c) => c.removeClient(op.id, op.client);
      return;
    case 'claim': {
      const input = claimInput(op, known);
      yield (c) => c.setCurrentBatch(input);
      if (!op.thenComplete) return;
      yield (c) => c.completeBatch(op.id, input.batchNumber);
      return;
    }
    case 'complete':
      for (let i = 0; i < op.times; i++) {
        const view = known.view(op.id);
        const { which } = op;
        const all = view?.batches ?? [];
        const inFlight = all.filter((b) => !b.isComplete);
        // One in flight, else any.
        const batches =
          typeof which !== 'string' && which.of === 'inFlight' && inFlight.length > 0
            ? inFlight
            : all;
        const batchNumber =
          which === 'unknown'
            ? known.claimedHigh(op.id) + 3
            : which === 'current' || batches.length === 0
              ? (view?.currentBatch?.batchNumber ?? 0)
              : (batches[which.index % batches.length]?.batchNumber ?? 0);
        yield (c) => c.completeBatch(op.id, batchNumber);
      }
      return;
    case 'renew': {
      const view = known.view(op.id);
      const { which } = op;
      const all = view?.batches ?? [];
      const inFlight = all.filter((b) => !b.isComplete);
      const batches =
        which !== 'unknown' && which.of === 'inFlight' && inFlight.length > 0 ? inFlight : all;
      const batchNumber =
        which === 'unknown' || batches.length === 0
          ? known.claimedHigh(op.id) + 3
          : (batches[which.index % batches.length]?.batchNumber ?? 0);
      yield async (c) => {
        const batch = await c.renewBatchClaim(op.id, batchNumber);
        known.renewed(op.id, batchNumber);
        return batch;
      };
      return;
    }
    case 'release': {
      const input = releaseInput(op, known.view(op.id));
      yield (c) => c.releaseSegments(input);
      return;
    }
    case 'end':
      yield (c) => c.endStreamSession(op.id);
      return;
    case 'sweep':
      yield (c) => c.sweep();
      return;
    case 'tick':
    case 'subscribe':
      return;
  }
}

function createInput(op: CreateOp): CreateStreamSessionInput {
  const { kind: _, length, qualities, ...settings } = op;
  // Its last segment holds `quarters` quarters of a segment: ceil() - 1 is the last segment.
  const lastSegment = length && Math.max(0, op.startSegment + length.segments);
  return {
    ...settings,
    videoSourcePath: `/v/${op.id}.mp4`,
    durationSeconds:
      length && lastSegment !== null
        ? (lastSegment + length.quarters / 4) * op.segmentDuration
        : null,
    qualities,
  };
}

function waitedUntil(wait: Wait, known: Known, now: number): number {
  if ('ms' in wait) return now + wait.ms;
  const view = known.view(wait.id);
  let deadline: number | undefined;
  if (wait.until === 'batch') {
    const inFlight = (view?.batches ?? []).filter((b) => !b.isComplete);
    const batch = inFlight[wait.index % Math.max(1, inFlight.length)];
    if (batch !== undefined) {
      // Once stalled, the next stall is a timeout after the last (unless claimed again since).
      // A renewal moves it (renewals come only between a claim and a stall).
      const stalled = known.stalledAt(wait.id, batch.batchNumber) ?? batch.generationStarted;
      const renewed = known.renewedAt(wait.id, batch.batchNumber) ?? batch.generationStarted;
      deadline = Math.max(batch.generationStarted, stalled, renewed) + timeouts.batchTimeout;
    }
  } else if (wait.until === 'client') {
    const client = view?.clientPositions.find((p) => p.sessionId === wait.client);
    deadline = client && client.lastUpdated + timeouts.clientTimeout;
  } else if (view?.clientPositions.length === 0) {
    deadline = view.updatedAt + timeouts.idleTimeout;
  }
  return deadline === undefined ? now : deadline + wait.off;
}

function segmentOf(
  move: Move,
  view: StreamSessionView | null,
  pending: readonly BatchNeededEvent[],
): number {
  const { target } = move;
  const start = view?.startSegment ?? 0;
  switch (target.at) {
    case 'segment':
      return target.segment;
    case 'batchEnd':
      return (view?.currentBatch?.endSegment ?? start) + target.offset;
    case 'self': {
      const here = view?.clientPositions.find((p) => p.sessionId === move.client);
      return (here?.segmentNumber ?? view?.furthestSegment ?? 0) + target.delta;
    }
    case 'range': {
      const ranges = view?.coverage ?? [];
      const range = ranges[target.index % Math.max(1, ranges.length)];
      if (range === undefined) return start + target.offset;
      return (target.edge === 'start' ? range.startSegment : range.endSegment) + target.offset;
    }
    case 'edge': {
      const ranges = view?.coverage ?? [];
      const range = ranges[target.index % Math.max(1, ranges.length)];
      const end = range?.endSegment ?? start;
      return end - (view?.threshold ?? 0) + target.offset;
    }
    case 'need': {
      const need = pending[target.index % Math.max(1, pending.length)];
      return (need?.startSegment ?? view?.furthestSegment ?? start) + target.offset;
    }
    case 'last':
      return (view?.lastSegment ?? start + 30) + target.offset;
  }
}

/** The claim an op makes, from the reference side's view and pending needs. */
function claimInput(op: Extract<Op, { kind: 'claim' }>, known: Known): SetCurrentBatchInput {
  const { id } = op;
  const view = known.view(id);
  const pending = known.pending(id);
  const fresh = pending.filter((n) => n.reason !== 'STALLED');
  const stalled = pending.filter((n) => n.reason === 'STALLED');
  const inFlight = (view?.batches ?? []).filter((b) => !b.isComplete);
  const pick = <T>(list: readonly T[], i: number) => list[i % Math.max(1, list.length)];
  // The next unused number: past every claim and every pending need (not STALLED).
  const unused = Math.max(known.claimedHigh(id), ...fresh.map((n) => n.batchNumber + 1));
  const need =
    op.claim.of === 'need'
      ? pick(fresh, op.claim.index)
      : op.claim.of === 'stalled'
        ? pick(stalled, op.claim.index)
        : undefined;
  const over = op.claim.of === 'overlap' ? pick(inFlight, op.claim.index) : undefined;
  const again = op.claim.of === 'batch' ? pick(view?.batches ?? [], op.claim.index) : undefined;

  let batchNumber: number;
  let startSegment: number;
  let endSegment: number;
  let base: readonly Quality[];
  if (need !== undefined) {
    batchNumber = need.batchNumber;
    base = need.qualities;
    [startSegment, endSegment] =
      op.around === null
        ? [need.startSegment, need.endSegment]
        : [Math.max(0, need.startSegment - op.around.before), need.startSegment + op.around.after];
  } else if (again !== undefined) {
    batchNumber = again.batchNumber;
    base = again.qualities;
    [startSegment, endSegment] = [again.startSegment, again.endSegment];
  } else if (over !== undefined) {
    batchNumber = unused;
    base = over.qualities;
    const span = over.endSegment - over.startSegment + 1;
    startSegment = over.startSegment + (op.ahead.start % span);
    endSegment = startSegment + op.ahead.length - 1;
  } else {
    batchNumber = unused;
    base = view?.qualities ?? QUALITIES;
    startSegment = op.ahead.start;
    endSegment = startSegment + op.ahead.length - 1;
  }
  // A claim past the end is wrong on purpose only: cut it there.
  const last = view?.lastSegment ?? null;
  if (last !== null && endSegment > last) endSegment = Math.max(startSegment, last);

  let qualities: readonly Quality[] | undefined;
  const q = op.qualities;
  switch (q.q) {
    case 'absent':
      qualities = undefined;
      break;
    case 'same':
      qualities = base;
      break;
    case 'missing':
      qualities = base.length > 1 ? base.slice(1) : QUALITIES.filter((x) => !base.includes(x));
      break;
    case 'extra':
      qualities = sortQualities([...base, q.extra]);
      break;
    case 'subset':
      qualities = q.subset;
      break;
  }
  const segmentDuration = view?.segmentDuration ?? 6;
  const input = {
    streamSessionId: id,
    batchNumber,
    startSegment,
    endSegment,
    videoSourcePath: `/v/${id}.mp4`,
    videoStartOffset: startSegment * segmentDuration,
    qualities,
  };
  switch (op.wrong) {
    case null:
      return input;
    case 'offset':
      return { ...input, videoStartOffset: input.videoStartOffset + 1 };
    case 'path':
      return { ...input, videoSourcePath: `/v/${id}-other.mp4` };
    case 'pastEnd':
      return { ...input, endSegment: (last ?? endSegment) + 1 };
    case 'backwards':
      return { ...input, endSegment: startSegment - 1, startSegment };
    case 'number':
      return { ...input, batchNumber: Math.max(0, batchNumber + op.by) };
    case 'noQualities':
      return { ...input, qualities: [] };
    case 'misses': {
      const from = (need?.startSegment ?? startSegment) + 1;
      return {
        ...input,
        startSegment: from,
        endSegment: Math.max(from, endSegment),
        videoStartOffset: from * segmentDuration,
      };
    }
  }
}

function releaseInput(
  op: Extract<Op, { kind: 'release' }>,
  view: StreamSessionView | null,
): ReleaseSegmentsInput {
  const { range } = op;
  let startSegment = 0;
  let endSegment = 0;
  if (range.at === 'covered') {
    const ranges = view?.coverage ?? [];
    const covered = ranges[range.index % Math.max(1, ranges.length)];
    startSegment = Math.max(0, (covered?.startSegment ?? view?.startSegment ?? 0) + range.from);
    endSegment = startSegment + range.length - 1;
  } else if (range.at === 'batch') {
    // A complete one, whose segments are made (else any).
    const all = view?.batches ?? [];
    const complete = all.filter((b) => b.isComplete);
    const batches = complete.length > 0 ? complete : all;
    const batch = batches[range.index % Math.max(1, batches.length)];
    startSegment = Math.max(0, (batch?.startSegment ?? 0) - range.before);
    endSegment = Math.max(startSegment, (batch?.endSegment ?? 0) + range.after);
  } else {
    endSegment = Math.max(0, (view?.slowestSegment ?? 1) - 1);
  }
  return { streamSessionId: op.id, startSegment, endSegment, qualities: op.qualities };
}

const opened = new Set<Side>();
let sequences = 0;
// Deletes each sequence's keys (one connection for all: a run opens enough of its own).
const admin = new Redis(url, { lazyConnect: true });

afterAll(async () => {
  await Promise.all([...opened].map((side) => side.close()));
  admin.disconnect();
  // Whatever a failed run left behind.
  await deleteKeys(url, filePrefix);
});

/** Runs one sequence on both sides; throws Drift at the first call whose effects differ. */
async function runSequence(ops: readonly Op[]): Promise<void> {
  const keyPrefix = `${filePrefix}${++sequences}:`;
  const clock = new ManualClock();
  const memory = await makeSide('memory', clock, keyPrefix);
  opened.add(memory);
  const redis = await makeSide('redis', clock, keyPrefix);
  opened.add(redis);
  const run = new Run(memory, redis, clock);
  const trail: string[] = [];
  try {
    for (const [index, op] of ops.entries()) {
      trail.push(`${index + 1}. ${describeOp(op)}`);
      // An op of several calls (moves, a claim then its completion) says which one differed.
      let made = 0;
      try {
        if (op.kind === 'subscribe') await run.subscribe();
        for (const call of calls(op, run, clock)) {
          made++;
          await run.call(call, op.kind === 'sweep');
        }
      } catch (error) {
        const cause = error instanceof Drift ? error.message : String((error as Error).stack);
        const which = made > 1 ? ` (its call ${made})` : '';
        throw new Drift(
          `after step ${index + 1}${which}, ${describeOp(op)}: ${cause}\n  steps:\n    ${trail.join('\n    ')}`,
        );
      }
    }
  } finally {
    run.close();
    await Promise.all([memory.close(), redis.close()]);
    opened.delete(memory);
    opened.delete(redis);
    const keys = await admin.keys(`${keyPrefix}*`);
    if (keys.length > 0) await admin.del(...keys);
  }
}

/** What the test keeps of one session (while it lives) to work out its calls. */
interface Track {
  readonly createdAt: number;
  high: number;
  readonly stalledAt: Map<number, number>;
  readonly renewedAt: Map<number, number>;
}

/** Both sides of one sequence, and what the memory side (the reference) showed last. */
class Run implements Known {
  private readonly watches: { memory: Watch; redis: Watch };
  private latest: Awaited<ReturnType<typeof views>> | null = null;
  private readonly tracks = new Map<string, Track>();
  private barriers = 0;

  constructor(
    private readonly memory: Side,
    private readonly redis: Side,
    private readonly clock: ManualClock,
  ) {
    this.watches = { memory: new Watch(memory, true), redis: new Watch(redis, false) };
  }

  view(id: string): StreamSessionView | null {
    return this.latest?.sessions[id] ?? null;
  }

  pending(id: string): readonly BatchNeededEvent[] {
    return (this.latest?.pending ?? []).filter((n) => n.streamSession.id === id);
  }

  claimedHigh(id: string): number {
    return this.tracks.get(id)?.high ?? 0;
  }

  stalledAt(id: string, batchNumber: number): number | undefined {
    return this.tracks.get(id)?.stalledAt.get(batchNumber);
  }

  renewedAt(id: string, batchNumber: number): number | undefined {
    return this.tracks.get(id)?.renewedAt.get(batchNumber);
  }

  renewed(id: string, batchNumber: number): void {
    this.tracks.get(id)?.renewedAt.set(batchNumber, this.clock.now());
  }

  /** Makes one call on both sides, waits for what it announced, and compares everything. */
  async call(call: Call, sweeping: boolean): Promise<void> {
    const { memory, redis } = this.watches;
    const from = {
      needs: [memory.needs.length, redis.needs.length] as [number, number],
      ended: [memory.ended.length, redis.ended.length] as [number, number],
    };
    memory.views.clear();
    const results = await Promise.all([outcome(this.memory, call), outcome(this.redis, call)]);
    // Views are read as the events settle: nothing changes meanwhile.
    const barrier = this.barrier();
    const [, , ...now] = await Promise.all([
      memory.settle(barrier),
      redis.settle(barrier),
      views(this.memory),
      views(this.redis),
    ]);
    const timeline = new Map<string, StreamSessionView[]>();
    for (const [id, states] of memory.views) {
      timeline.set(
        id,
        (await Promise.all(states)).filter((s) => s !== null),
      );
    }
    for (const side of [this.memory, this.redis]) {
      if (side.errors.length > 0) throw new Drift(`${side.kind} reported ${side.errors[0]}`);
    }
    same('results', results[0], results[1]);
    same('views', now[0], now[1]);
    compareAnnouncements(this.watches, from, sweeping, timeline);
    this.latest = now[0];
    this.track(memory.needs.slice(from.needs[0]));
  }

  /** Keeps, per live session, its highest claim and when its batches stalled. */
  private track(announced: readonly BatchNeededEvent[]): void {
    for (const id of SESSION_IDS) {
      const view = this.view(id);
      if (view === null) {
        this.tracks.delete(id);
        continue;
      }
      let track = this.tracks.get(id);
      if (track === undefined || track.createdAt !== view.createdAt) {
        track = { createdAt: view.createdAt, high: 0, stalledAt: new Map(), renewedAt: new Map() };
        this.tracks.set(id, track);
      }
      for (const batch of [...view.batches, ...(view.currentBatch ? [view.currentBatch] : [])]) {
        track.high = Math.max(track.high, batch.batchNumber + 1);
      }
    }
    for (const need of announced) {
      if (need.reason !== 'STALLED') continue;
      // Stalled at the instant of the change that announced it (the sweep's).
      this.tracks.get(need.streamSession.id)?.stalledAt.set(need.batchNumber, this.clock.now());
    }
  }

  /** A new encoder subscribes on each side: both must replay the same pending needs. */
  async subscribe(): Promise<void> {
    const barrier = this.barrier();
    const [m, r] = await Promise.all([
      this.watches.memory.replay(barrier),
      this.watches.redis.replay(barrier),
    ]);
    same('replayed pending needs', m, r);
  }

  close(): void {
    this.watches.memory.close();
    this.watches.redis.close();
  }

  private barrier(): string {
    return `barrier ${++this.barriers}`;
  }
}

describe('the memory and Redis stores, side by side', () => {
  it(
    `agree on every answer, view and announcement (${RUNS} random sequences of up to ${MAX_STEPS} steps)`,
    async () => {
      await fc.assert(fc.asyncProperty(sequence, runSequence), {
        numRuns: RUNS,
        examples: found.map((ops): [Op[]] => [ops.map(readable)]),
        seed: process.env.PARITY_SEED === undefined ? undefined : Number(process.env.PARITY_SEED),
        path: process.env.PARITY_PATH,
        endOnFailure: false,
        includeErrorInReport: true,
      });
      expect(opened.size).toBe(0);
    },
    Math.max(60_000, RUNS * 1_000),
  );
});
