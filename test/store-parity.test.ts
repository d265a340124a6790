/**
 * The domain rules live twice: in TypeScript (the memory store, the
 * reference) and in Lua (the Redis store). This model-based test runs random
 * sequences of operations against both, side by side through one
 * BatchCoordinator each on one shared ManualClock, and after every
 * coordinator call compares what each side answered, what it shows (every
 * session, the list) and what it announced (batchNeeded, streamSessionEnded).
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
import { createStore } from '../src/state/create-store.js';
import { DomainError } from '../src/state/errors.js';
import type { EventBus } from '../src/state/events.js';
import {
  type BatchNeededEvent,
  QUALITIES,
  type Quality,
  type StreamSessionEndedEvent,
  type StreamSessionView,
} from '../src/state/model.js';
import type { Timeouts } from '../src/state/store.js';
import { deleteKeys } from './fixtures.js';

const url = process.env.REDIS_URL ?? defaultConfig.redisUrl;
const RUNS = Number(process.env.PARITY_RUNS ?? 300);
const MAX_STEPS = 40;
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
    defaults: { segmentDuration: 6, batchSize: 5, threshold: 2 },
    onError,
  });
  return {
    kind,
    coordinator,
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
/** Where a client moves to: a segment, near the current batch's end, or a seek from where it is. */
type Target =
  | { readonly at: 'segment'; readonly segment: number }
  | { readonly at: 'batchEnd'; readonly offset: number }
  | { readonly at: 'self'; readonly delta: number };
interface Move {
  readonly client: ClientId;
  readonly target: Target;
  readonly quality: Quality;
}

/**
 * How far the clock moves: some milliseconds, or to a millisecond either side
 * of a deadline the reference side shows (a claim's, a client's, an empty
 * session's), so that the boundary itself is tried. Never backwards.
 */
type Wait =
  | { readonly ms: number }
  | {
      readonly until: 'batch' | 'client' | 'idle';
      readonly id: SessionId;
      readonly client: ClientId;
      readonly off: number;
    };

type Op =
  | {
      readonly kind: 'create';
      readonly id: SessionId;
      readonly batchSize: number;
      readonly threshold: number;
      readonly startSegment: number;
      readonly segmentDuration: number;
    }
  /** Several clients report, one call each. */
  | { readonly kind: 'update'; readonly id: SessionId; readonly moves: readonly Move[] }
  | { readonly kind: 'remove'; readonly id: SessionId; readonly client: ClientId }
  /**
   * right: the number and range the session's need says; else off by
   * `wrongBy`. `resize` moves the end of the claimed range (an encoder may
   * claim another range than the need's). An encoder that does its job
   * completes what it claimed.
   */
  | {
      readonly kind: 'claim';
      readonly id: SessionId;
      readonly wrongBy: number;
      readonly resize: number;
      readonly thenComplete: boolean;
    }
  | {
      readonly kind: 'complete';
      readonly id: SessionId;
      readonly wrongBy: number;
      readonly times: number;
    }
  | { readonly kind: 'end'; readonly id: SessionId }
  /** The clock moves, then the sweeper runs. */
  | { readonly kind: 'sweep'; readonly wait: Wait }
  /** The clock moves. */
  | { readonly kind: 'tick'; readonly wait: Wait }
  /** An encoder subscribes: it is first told every pending need. */
  | { readonly kind: 'subscribe' };

function describeTarget(target: Target): string {
  switch (target.at) {
    case 'segment':
      return `${target.segment}`;
    case 'batchEnd':
      return `batchEnd${target.offset >= 0 ? '+' : ''}${target.offset}`;
    case 'self':
      return `self${target.delta >= 0 ? '+' : ''}${target.delta}`;
  }
}

function describeWait(wait: Wait): string {
  if ('ms' in wait) return `+${wait.ms}ms`;
  const off = wait.off === 0 ? '' : `${wait.off > 0 ? '+' : ''}${wait.off}ms`;
  const of = wait.until === 'client' ? `${wait.id} ${wait.client}` : wait.id;
  return `to ${of} ${wait.until} deadline${off}`;
}

function describeOp(op: Op): string {
  switch (op.kind) {
    case 'create':
      return `create(${op.id}, batchSize ${op.batchSize}, threshold ${op.threshold}, start ${op.startSegment}, segmentDuration ${op.segmentDuration})`;
    case 'update':
      return `update(${op.id}, ${op.moves.map((m) => `${m.client}→${describeTarget(m.target)} ${m.quality}`).join(', ')})`;
    case 'remove':
      return `remove(${op.id}, ${op.client})`;
    case 'claim':
      return `claim(${op.id}, ${op.wrongBy === 0 ? 'right' : `wrong by ${op.wrongBy}`}${op.resize === 0 ? '' : `, end${op.resize > 0 ? '+' : ''}${op.resize}`}${op.thenComplete ? ', then complete' : ''})`;
    case 'complete':
      return `complete(${op.id}, ${op.wrongBy === 0 ? 'current' : `wrong by ${op.wrongBy}`}${op.times > 1 ? `, ×${op.times}` : ''})`;
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
// Anywhere now and then; mostly around the current batch's end (the threshold) or a short seek.
const target: fc.Arbitrary<Target> = fc.oneof(
  {
    weight: 1,
    arbitrary: fc.record({
      at: fc.constant('segment' as const),
      segment: fc.integer({ min: 0, max: 60 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      at: fc.constant('batchEnd' as const),
      offset: fc.integer({ min: -9, max: 3 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      at: fc.constant('self' as const),
      delta: fc.integer({ min: -6, max: 6 }),
    }),
  },
);
// Mostly less than a client's timeout, so sessions live long enough to get somewhere.
const wait: fc.Arbitrary<Wait> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ ms: fc.integer({ min: 0, max: 1_500 }) }) },
  { weight: 1, arbitrary: fc.record({ ms: fc.integer({ min: 0, max: 6_000 }) }) },
  {
    weight: 3,
    arbitrary: fc.record({
      until: fc.constantFrom('batch' as const, 'client' as const, 'idle' as const),
      id: fc.constantFrom(...SESSION_IDS),
      client: clientId,
      off: fc.constantFrom(-1, 0, 1),
    }),
  },
);

const createOf = (id: fc.Arbitrary<SessionId>) =>
  fc
    .record({
      id,
      batchSize: fc.integer({ min: 3, max: 8 }),
      startSegment: fc.integer({ min: 0, max: 20 }),
      segmentDuration: fc.integer({ min: 1, max: 10 }),
      threshold: fc.integer({ min: 0, max: 8 }),
    })
    // Any threshold from 0 to batchSize, evenly.
    .map(({ threshold, ...rest }) => ({
      kind: 'create' as const,
      ...rest,
      threshold: threshold % (rest.batchSize + 1),
    }));
const create = createOf(fc.constantFrom(...SESSION_IDS));

const op: fc.Arbitrary<Op> = fc
  .oneof(
    { weight: 2, arbitrary: create },
    {
      weight: 6,
      arbitrary: fc.record({
        kind: fc.constant('update' as const),
        id: sessionId,
        moves: fc.array(fc.record({ client: clientId, target, quality }), {
          minLength: 1,
          maxLength: 3,
        }),
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
    {
      weight: 4,
      arbitrary: fc.record({
        kind: fc.constant('claim' as const),
        id: sessionId,
        wrongBy: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, fc.constantFrom(-1, 1, 2)),
        resize: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, fc.integer({ min: -3, max: 3 })),
        thenComplete: fc.boolean(),
      }),
    },
    {
      weight: 4,
      arbitrary: fc.record({
        kind: fc.constant('complete' as const),
        id: sessionId,
        wrongBy: fc.oneof({ weight: 4, arbitrary: fc.constant(0) }, fc.constantFrom(-1, 1)),
        times: fc.constantFrom(1, 1, 2),
      }),
    },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('end' as const), id: sessionId }) },
    { weight: 3, arbitrary: fc.record({ kind: fc.constant('sweep' as const), wait }) },
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

/** Counterexamples found before, tried first on every run. */
const found: Op[][] = [
  // The Redis bus took the second s1's first batch for a repeat of the first's.
  [
    { kind: 'create', id: 's0', batchSize: 3, threshold: 0, startSegment: 0, segmentDuration: 1 },
    { kind: 'create', id: 's1', batchSize: 3, threshold: 0, startSegment: 0, segmentDuration: 1 },
    { kind: 'end', id: 's1' },
    { kind: 'create', id: 's1', batchSize: 3, threshold: 0, startSegment: 0, segmentDuration: 1 },
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

/** Every session's view and the list (a whole page, and a page of one at an offset). */
async function views(side: Side) {
  const [sessions, list, page] = await Promise.all([
    Promise.all(ALL_SESSION_IDS.map((id) => side.coordinator.getStreamSession(id))),
    side.coordinator.listStreamSessions(10, 0),
    side.coordinator.listStreamSessions(1, 1),
  ]);
  return {
    sessions: Object.fromEntries(ALL_SESSION_IDS.map((id, i) => [id, sessions[i]])),
    list,
    page,
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

/** What the memory side (the reference) shows, from which "the right batch" is worked out. */
interface Known {
  view(id: string): StreamSessionView | null;
  /** The need last announced for the session (while it lives). */
  lastNeed(id: string): BatchNeededEvent | undefined;
}

/**
 * The concrete calls an op makes, worked out from the state before each.
 * Changes share the instant of the change before them (as they may: a
 * session may end and be made again within a millisecond), but for position
 * reports, which come a millisecond apart: two clients heard in the same
 * millisecond tie on the client timeout, and the stores expire tied clients
 * in different orders (memory as they reported, Redis by sessionId), an
 * order the contract leaves open.
 */
function* calls(op: Op, known: Known, clock: ManualClock): Generator<Call> {
  if (op.kind === 'sweep' || op.kind === 'tick') {
    clock.set(Math.max(clock.now(), waitedUntil(op.wait, known, clock.now())));
  }
  switch (op.kind) {
    case 'create': {
      const { kind: _, ...input } = op;
      yield (c) => c.createStreamSession({ ...input, videoSourcePath: `/v/${op.id}.mp4` });
      return;
    }
    case 'update':
      for (const move of op.moves) {
        clock.advance(1);
        const view = known.view(op.id);
        const segmentNumber = Math.max(0, segmentOf(move, view));
        yield (c) =>
          c.updateClientPosition({
            streamSessionId: op.id,
            sessionId: move.client,
            segmentNumber,
            quality: move.quality,
          });
      }
      return;
    case 'remove':
      yield (c) => c.removeClient(op.id, op.client);
      return;
    case 'claim': {
      const claim = rightClaim(op.id, known);
      const batchNumber = claim.batchNumber + op.wrongBy;
      const endSegment = claim.endSegment + op.resize;
      yield (c) => c.setCurrentBatch({ ...claim, batchNumber, endSegment });
      if (!op.thenComplete) return;
      yield (c) => c.completeBatch(op.id, batchNumber);
      return;
    }
    case 'complete':
      for (let i = 0; i < op.times; i++) {
        const batchNumber = (known.view(op.id)?.currentBatch?.batchNumber ?? 0) + op.wrongBy;
        yield (c) => c.completeBatch(op.id, batchNumber);
      }
      return;
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

function waitedUntil(wait: Wait, known: Known, now: number): number {
  if ('ms' in wait) return now + wait.ms;
  const view = known.view(wait.id);
  let deadline: number | undefined;
  if (wait.until === 'batch') {
    const batch = view?.currentBatch;
    // Once stalled, the next stall is a timeout after the last (its updatedAt, unless changed since).
    const from = view?.currentBatchStalled ? view.updatedAt : batch?.generationStarted;
    deadline = from === undefined ? undefined : from + timeouts.batchTimeout;
  } else if (wait.until === 'client') {
    const client = view?.clientPositions.find((p) => p.sessionId === wait.client);
    deadline = client && client.lastUpdated + timeouts.clientTimeout;
  } else if (view?.clientPositions.length === 0) {
    deadline = view.updatedAt + timeouts.idleTimeout;
  }
  return deadline === undefined ? now : deadline + wait.off;
}

function segmentOf(move: Move, view: StreamSessionView | null): number {
  const { target } = move;
  switch (target.at) {
    case 'segment':
      return target.segment;
    case 'batchEnd':
      return (view?.currentBatch?.endSegment ?? view?.startSegment ?? 0) + target.offset;
    case 'self': {
      const here = view?.clientPositions.find((p) => p.sessionId === move.client);
      return (here?.segmentNumber ?? view?.furthestSegment ?? 0) + target.delta;
    }
  }
}

/** The claim an encoder makes for the session's need, or for the batch it expects next. */
function rightClaim(id: string, known: Known) {
  const view = known.view(id);
  const batch = view?.currentBatch ?? null;
  const expected =
    batch === null ? 0 : batch.isComplete ? batch.batchNumber + 1 : batch.batchNumber;
  const need = known.lastNeed(id);
  if (need !== undefined && need.batchNumber === expected) {
    const { batchNumber, startSegment, endSegment, videoSourcePath, videoStartOffset } = need;
    return {
      streamSessionId: id,
      batchNumber,
      startSegment,
      endSegment,
      videoSourcePath,
      videoStartOffset,
    };
  }
  const startSegment =
    batch === null
      ? (view?.startSegment ?? 0)
      : batch.isComplete
        ? batch.endSegment + 1
        : batch.startSegment;
  const batchSize = view?.batchSize ?? 5;
  return {
    streamSessionId: id,
    batchNumber: expected,
    startSegment,
    endSegment: startSegment + batchSize - 1,
    videoSourcePath: `/v/${id}.mp4`,
    videoStartOffset: startSegment * (view?.segmentDuration ?? 6),
  };
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
  const run = new Run(memory, redis);
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

/** Both sides of one sequence, and what the memory side (the reference) showed last. */
class Run implements Known {
  private readonly watches: { memory: Watch; redis: Watch };
  private latest: Awaited<ReturnType<typeof views>> | null = null;
  private readonly lastNeeds = new Map<string, BatchNeededEvent>();
  private barriers = 0;

  constructor(
    private readonly memory: Side,
    private readonly redis: Side,
  ) {
    this.watches = { memory: new Watch(memory, true), redis: new Watch(redis, false) };
  }

  view(id: string): StreamSessionView | null {
    return this.latest?.sessions[id] ?? null;
  }

  lastNeed(id: string): BatchNeededEvent | undefined {
    return this.lastNeeds.get(id);
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
    for (const need of memory.needs.slice(from.needs[0])) {
      this.lastNeeds.set(need.streamSession.id, need);
    }
    for (const { id } of memory.ended.slice(from.ended[0])) this.lastNeeds.delete(id);
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
