import { afterEach, describe, expect, it, vi } from 'vitest';
import { ManualClock } from '../src/state/clock.js';
import {
  BatchCoordinator,
  type CoordinatorOptions,
  SlowSubscriberError,
  type SweepReport,
} from '../src/state/coordinator.js';
import {
  ConflictError,
  DomainError,
  InvalidInputError,
  NotFoundError,
  SlowSubscriberError as SlowSubscriberErrorFromErrors,
} from '../src/state/errors.js';
import { LocalEventBus } from '../src/state/events.js';
import { MemoryStore } from '../src/state/memory-store.js';
import {
  type BatchNeededEvent,
  BatchNeededReason,
  type ClientPosition,
  QUALITIES,
  Quality,
  type SessionDefaults,
  type StreamSessionEndedEvent,
  type StreamSessionView,
} from '../src/state/model.js';
import type { Change, Timeouts } from '../src/state/store.js';

const T0 = Date.UTC(2026, 0, 1);
const defaults: SessionDefaults = {
  segmentDuration: 6,
  batchSize: 20,
  threshold: 5,
  qualities: QUALITIES,
};
const timeouts: Timeouts = { batchTimeout: 60_000, clientTimeout: 30_000, idleTimeout: 300_000 };

interface Setup<S extends MemoryStore = MemoryStore> {
  store: S;
  events: LocalEventBus;
  clock: ManualClock;
  coordinator: BatchCoordinator;
  /** Every batchNeeded event published on the bus, in publish order. */
  published: BatchNeededEvent[];
  /** Every streamSessionEnded event published on the bus, in publish order. */
  ended: StreamSessionEndedEvent[];
}

function setup<S extends MemoryStore = MemoryStore>(
  options: {
    maxQueuedEvents?: number;
    /** Makes the store over the setup's bus (a subclass, to shape its timing). */
    store?: (events: LocalEventBus) => S;
    onSweep?: CoordinatorOptions['onSweep'];
    onError?: CoordinatorOptions['onError'];
  } = {},
): Setup<S> {
  const events = new LocalEventBus((error) => {
    throw error;
  });
  const store = options.store?.(events) ?? (new MemoryStore(timeouts, events) as S);
  const clock = new ManualClock(T0);
  const coordinator = new BatchCoordinator({
    store,
    events,
    defaults,
    clock,
    ...(options.maxQueuedEvents === undefined ? {} : { maxQueuedEvents: options.maxQueuedEvents }),
    ...(options.onSweep === undefined ? {} : { onSweep: options.onSweep }),
    ...(options.onError === undefined ? {} : { onError: options.onError }),
  });
  const published: BatchNeededEvent[] = [];
  const ended: StreamSessionEndedEvent[] = [];
  events.subscribe((message) => {
    if (message.type === 'batchNeeded') published.push(message.event);
    else if (message.type === 'streamSessionEnded') ended.push(message.event);
  });
  return { store, events, clock, coordinator, published, ended };
}

/** Creates a session whose batch 0 (segments 0..19) is claimed and complete. */
async function withCompleteBatch0(c: BatchCoordinator, id: string): Promise<void> {
  await c.createStreamSession({ id, videoSourcePath: `/${id}.mp4` });
  await c.setCurrentBatch(batch0(id));
  await c.completeBatch(id, 0);
}

function batch0(streamSessionId: string) {
  return {
    streamSessionId,
    batchNumber: 0,
    startSegment: 0,
    endSegment: 19,
    videoSourcePath: `/${streamSessionId}.mp4`,
    videoStartOffset: 0,
  };
}

function position(streamSessionId: string, sessionId: string, segmentNumber: number) {
  return { streamSessionId, sessionId, segmentNumber, quality: Quality.Q720P };
}

async function take<T = BatchNeededEvent>(iterator: AsyncIterator<T>, count: number): Promise<T[]> {
  const out: T[] = [];
  for (let i = 0; i < count; i++) {
    const next = await iterator.next();
    if (next.done) throw new Error(`iterator ended after ${i} events`);
    out.push(next.value);
  }
  return out;
}

/** What an event says, without the session snapshot. */
const brief = (e: BatchNeededEvent) => ({
  id: e.streamSession.id,
  reason: e.reason,
  batchNumber: e.batchNumber,
  startSegment: e.startSegment,
  sequence: e.sequence,
});

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected a rejection');
}

const flushMicrotasks = async (n: number) => {
  for (let i = 0; i < n; i++) await Promise.resolve();
};

describe('BatchCoordinator.createStreamSession', () => {
  it('fills what the input leaves out from the defaults and the clock', async () => {
    const { coordinator } = setup();
    const view = await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    expect(view).toEqual({
      id: 'a',
      videoSourcePath: '/a.mp4',
      segmentDuration: 6,
      batchSize: 20,
      threshold: 5,
      startSegment: 0,
      durationSeconds: null,
      lastSegment: null,
      qualities: QUALITIES,
      currentBatch: null,
      batches: [],
      stalledBatches: [],
      coverage: [],
      clientPositions: [],
      furthestSegment: null,
      slowestSegment: null,
      shouldGenerateNextBatch: false,
      createdAt: T0,
      updatedAt: T0,
    } satisfies StreamSessionView);
    expect(await coordinator.getStreamSession('a')).toEqual(view);
  });

  it('treats null fields as absent', async () => {
    const { coordinator } = setup();
    const view = await coordinator.createStreamSession({
      id: 'a',
      videoSourcePath: '/a.mp4',
      segmentDuration: null,
      batchSize: null,
      threshold: null,
      startSegment: null,
    });
    expect(view).toMatchObject({
      segmentDuration: 6,
      batchSize: 20,
      threshold: 5,
      startSegment: 0,
    });
  });

  it('uses the values it is given', async () => {
    const { coordinator, published } = setup();
    const view = await coordinator.createStreamSession({
      id: 'a',
      videoSourcePath: '/a.mp4',
      segmentDuration: 4,
      batchSize: 10,
      threshold: 10,
      startSegment: 7,
    });
    expect(view).toMatchObject({
      segmentDuration: 4,
      batchSize: 10,
      threshold: 10,
      startSegment: 7,
    });
    expect(published.map(brief)).toEqual([
      { id: 'a', reason: 'FIRST_BATCH', batchNumber: 0, startSegment: 7, sequence: 1 },
    ]);
    expect(published[0]).toMatchObject({ endSegment: 16, videoStartOffset: 28 });
  });

  it('generates a UUID when the id is absent', async () => {
    const { coordinator } = setup();
    const a = await coordinator.createStreamSession({ videoSourcePath: '/a.mp4' });
    const b = await coordinator.createStreamSession({ id: null, videoSourcePath: '/b.mp4' });
    const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
    expect(a.id).toMatch(uuid);
    expect(b.id).toMatch(uuid);
    expect(a.id).not.toBe(b.id);
    expect((await coordinator.getStreamSession(a.id))?.videoSourcePath).toBe('/a.mp4');
  });

  it.each([
    [{ threshold: 21 }, 'threshold (21)'],
    [{ batchSize: 4 }, 'batchSize (4)'],
    [{ batchSize: 3, threshold: 4 }, 'threshold (4)'],
  ])(
    'rejects threshold > batchSize (%o) with InvalidInputError and creates nothing',
    async (input, text) => {
      const { coordinator, store, published } = setup();
      const error = await rejection(
        coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4', ...input }),
      );
      expect(error).toBeInstanceOf(InvalidInputError);
      expect((error as DomainError).code).toBe('BAD_USER_INPUT');
      expect((error as Error).message).toContain(text);
      expect(store.size).toBe(0);
      expect(await coordinator.getStreamSession('a')).toBeNull();
      expect(published).toEqual([]);
      expect(coordinator.changesInFlight).toBe(0);
      // The id is still free.
      await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
      expect(store.size).toBe(1);
    },
  );

  it('accepts threshold == batchSize', async () => {
    const { coordinator } = setup();
    const view = await coordinator.createStreamSession({
      id: 'a',
      videoSourcePath: '/a.mp4',
      batchSize: 5,
      threshold: 5,
    });
    expect(view).toMatchObject({ batchSize: 5, threshold: 5 });
  });

  it('rejects a taken id with ConflictError and leaves the first session as it was', async () => {
    const { coordinator, store, published } = setup();
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/first.mp4' });
    await coordinator.updateClientPosition(position('a', 'p', 3));
    const error = await rejection(
      coordinator.createStreamSession({ id: 'a', videoSourcePath: '/second.mp4' }),
    );
    expect(error).toBeInstanceOf(ConflictError);
    expect((error as DomainError).code).toBe('CONFLICT');
    expect(store.size).toBe(1);
    const view = await coordinator.getStreamSession('a');
    expect(view?.videoSourcePath).toBe('/first.mp4');
    expect(view?.clientPositions).toHaveLength(1);
    expect(published).toHaveLength(1);
    expect(coordinator.changesInFlight).toBe(0);
  });
});

describe('BatchCoordinator: changes and their events', () => {
  it('NOT_FOUND for changes to an unknown session', async () => {
    const { coordinator } = setup();
    const attempts = [
      coordinator.updateClientPosition(position('nope', 'p', 1)),
      coordinator.removeClient('nope', 'p'),
      coordinator.setCurrentBatch(batch0('nope')),
      coordinator.completeBatch('nope', 0),
    ];
    for (const attempt of attempts) {
      const error = await rejection(attempt);
      expect(error).toBeInstanceOf(NotFoundError);
      expect((error as DomainError).code).toBe('NOT_FOUND');
      expect((error as Error).message).toContain("'nope'");
    }
    expect(await coordinator.endStreamSession('nope')).toBe(false);
    expect(await coordinator.getStreamSession('nope')).toBeNull();
  });

  it('stamps changes with the clock', async () => {
    const { coordinator, clock } = setup();
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    clock.advance(1_000);
    const p = await coordinator.updateClientPosition(position('a', 'p', 2));
    expect(p.lastUpdated).toBe(T0 + 1_000);
    clock.advance(1_000);
    const b = await coordinator.setCurrentBatch(batch0('a'));
    expect(b.generationStarted).toBe(T0 + 2_000);
    clock.advance(1_000);
    const done = await coordinator.completeBatch('a', 0);
    expect(done.generationEnded).toBe(T0 + 3_000);
    const view = await coordinator.getStreamSession('a');
    expect(view).toMatchObject({ createdAt: T0, updatedAt: T0 + 3_000 });
  });

  it('publishes each announcement after its change, in the order of the changes', async () => {
    const { coordinator, events } = setup();
    // At publish time, the store must already show the change.
    const seen: Array<{ event: BatchNeededEvent; stateThen: Promise<StreamSessionView | null> }> =
      [];
    events.subscribe((message) => {
      if (message.type !== 'batchNeeded') return;
      seen.push({
        event: message.event,
        stateThen: coordinator.getStreamSession(message.event.streamSession.id),
      });
    });
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    await coordinator.updateClientPosition(position('a', 'p', 2));
    await coordinator.setCurrentBatch(batch0('a'));
    await coordinator.updateClientPosition(position('a', 'p', 16));
    await coordinator.completeBatch('a', 0);
    // 30 lies within batch 1 as announced (20..39): the same need.
    await coordinator.updateClientPosition(position('a', 'p', 30));
    await coordinator.updateClientPosition(position('a', 'p', 45));
    // 46 lies within 45..64 as announced: the same need.
    await coordinator.updateClientPosition(position('a', 'p', 46));
    await coordinator.updateClientPosition(position('a', 'p', 70));

    expect(seen.map((s) => brief(s.event))).toEqual([
      { id: 'a', reason: 'FIRST_BATCH', batchNumber: 0, startSegment: 0, sequence: 1 },
      { id: 'a', reason: 'APPROACHING_END', batchNumber: 1, startSegment: 20, sequence: 2 },
      { id: 'a', reason: 'SEEK_AHEAD', batchNumber: 1, startSegment: 45, sequence: 3 },
      { id: 'a', reason: 'SEEK_AHEAD', batchNumber: 1, startSegment: 70, sequence: 4 },
    ]);
    const states = await Promise.all(seen.map((s) => s.stateThen));
    expect(states[0]?.clientPositions).toEqual([]);
    // The APPROACHING_END came from completeBatch: the batch is complete already.
    expect(states[1]?.currentBatch?.isComplete).toBe(true);
    expect(states[1]?.furthestSegment).toBe(16);
    expect(states[2]?.furthestSegment).toBe(45);
    expect(states[3]?.furthestSegment).toBe(70);
    // Each event carries the session as the change left it.
    for (const [i, s] of seen.entries()) {
      expect(s.event.streamSession, `event ${i}`).toEqual(states[i]);
    }
  });

  it('completing a batch while clients are near its end announces at once', async () => {
    const { coordinator, published } = setup();
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    await coordinator.setCurrentBatch(batch0('a'));
    await coordinator.updateClientPosition({ ...position('a', 'p', 15), quality: Quality.Q1080P });
    await coordinator.updateClientPosition({ ...position('a', 'q', 9), quality: Quality.Q480P });
    expect(published).toHaveLength(1);
    await coordinator.completeBatch('a', 0);
    expect(published).toHaveLength(2);
    expect(published[1]).toMatchObject({
      reason: BatchNeededReason.APPROACHING_END,
      batchNumber: 1,
      startSegment: 20,
      endSegment: 39,
      videoSourcePath: '/a.mp4',
      videoStartOffset: 120,
      furthestSegment: 15,
      // v2: only the renditions of the clients it serves; q (9) is 10 from the end.
      qualities: [Quality.Q1080P],
      sequence: 2,
    });
    // Completing it again is idempotent and announces nothing more.
    await coordinator.completeBatch('a', 0);
    expect(published).toHaveLength(2);
  });

  it('a refused change announces nothing and changes nothing', async () => {
    const { coordinator, published } = setup();
    await withCompleteBatch0(coordinator, 'a');
    await coordinator.updateClientPosition(position('a', 'p', 3));
    const before = await coordinator.getStreamSession('a');
    const count = published.length;
    const conflicts = [
      coordinator.setCurrentBatch({ ...batch0('a'), batchNumber: 0 }),
      coordinator.setCurrentBatch({ ...batch0('a'), batchNumber: 2 }),
      coordinator.completeBatch('a', 1),
    ];
    for (const attempt of conflicts) expect(await rejection(attempt)).toBeInstanceOf(ConflictError);
    expect(await coordinator.getStreamSession('a')).toEqual(before);
    expect(published).toHaveLength(count);
    expect(coordinator.changesInFlight).toBe(0);
  });

  it('removing the last client near the end withdraws the pending need', async () => {
    const { coordinator } = setup();
    await withCompleteBatch0(coordinator, 'a');
    await coordinator.updateClientPosition(position('a', 'p', 18));
    expect(await coordinator.removeClient('a', 'p')).toBe(true);
    expect(await coordinator.removeClient('a', 'p')).toBe(false);
    const it = coordinator.batchNeeded('a');
    const first = it.next();
    await coordinator.updateClientPosition(position('a', 'p', 40));
    expect(brief((await first).value as BatchNeededEvent)).toMatchObject({
      reason: 'SEEK_AHEAD',
      startSegment: 40,
    });
    await it.return?.();
  });

  it('endStreamSession removes the session, its clients and its pending need', async () => {
    const { coordinator, store } = setup();
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    await coordinator.updateClientPosition(position('a', 'p', 3));
    expect(await coordinator.endStreamSession('a')).toBe(true);
    expect(await coordinator.endStreamSession('a')).toBe(false);
    expect(store.size).toBe(0);
    expect(await store.pendingNeeds()).toEqual([]);
    expect(await rejection(coordinator.updateClientPosition(position('a', 'p', 4)))).toBeInstanceOf(
      NotFoundError,
    );
    expect(coordinator.changesInFlight).toBe(0);
  });

  it('lists sessions oldest first with limit and offset', async () => {
    const { coordinator } = setup();
    for (const id of ['c', 'a', 'b', 'd']) {
      await coordinator.createStreamSession({ id, videoSourcePath: `/${id}.mp4` });
    }
    const ids = async (limit: number, offset: number) =>
      (await coordinator.listStreamSessions(limit, offset)).map((s) => s.id);
    expect(await ids(100, 0)).toEqual(['c', 'a', 'b', 'd']);
    expect(await ids(2, 1)).toEqual(['a', 'b']);
    expect(await ids(2, 3)).toEqual(['d']);
    expect(await ids(0, 0)).toEqual([]);
    expect(await coordinator.isReady()).toBe(true);
  });
});

describe('BatchCoordinator.batchNeeded', () => {
  it('replays the pending needs first, then live ones as they are announced', async () => {
    const { coordinator, events } = setup();
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    await coordinator.createStreamSession({ id: 'b', videoSourcePath: '/b.mp4' });
    // 'c' needs nothing: its batch 0 is complete and its client far from the end.
    await withCompleteBatch0(coordinator, 'c');
    await coordinator.updateClientPosition(position('c', 'p', 2));
    // 'd' needed batch 1 and still does.
    await withCompleteBatch0(coordinator, 'd');
    await coordinator.updateClientPosition(position('d', 'p', 17));
    // 'e' had FIRST_BATCH, but batch 0 is claimed now: nothing pending.
    await coordinator.createStreamSession({ id: 'e', videoSourcePath: '/e.mp4' });
    await coordinator.setCurrentBatch(batch0('e'));

    const listenersBefore = events.listenerCount;
    const it = coordinator.batchNeeded();
    const replayed = await take(it, 3);
    expect(replayed.map(brief)).toEqual([
      { id: 'a', reason: 'FIRST_BATCH', batchNumber: 0, startSegment: 0, sequence: 1 },
      { id: 'b', reason: 'FIRST_BATCH', batchNumber: 0, startSegment: 0, sequence: 1 },
      { id: 'd', reason: 'APPROACHING_END', batchNumber: 1, startSegment: 20, sequence: 2 },
    ]);
    expect(replayed[2]?.streamSession.furthestSegment).toBe(17);
    expect(events.listenerCount).toBe(listenersBefore + 1);

    await coordinator.updateClientPosition(position('c', 'p', 16));
    await coordinator.createStreamSession({ id: 'f', videoSourcePath: '/f.mp4' });
    // Not a new need for 'd' (within batch 1 as announced, 20..39): nothing.
    await coordinator.updateClientPosition(position('d', 'p', 18));
    await coordinator.updateClientPosition(position('d', 'p', 33));
    // Beyond it: a new need.
    await coordinator.updateClientPosition(position('d', 'p', 41));
    const live = await take(it, 3);
    expect(live.map(brief)).toEqual([
      { id: 'c', reason: 'APPROACHING_END', batchNumber: 1, startSegment: 20, sequence: 2 },
      { id: 'f', reason: 'FIRST_BATCH', batchNumber: 0, startSegment: 0, sequence: 1 },
      { id: 'd', reason: 'SEEK_AHEAD', batchNumber: 1, startSegment: 41, sequence: 3 },
    ]);

    // Leaving stops listening.
    expect(await it.return?.()).toMatchObject({ done: true });
    await flushMicrotasks(5);
    expect(events.listenerCount).toBe(listenersBefore);
  });

  it('tells a session made again under a replayed id its first batch again', async () => {
    const { coordinator, clock } = setup();
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    const it = coordinator.batchNeeded();
    expect((await take(it, 1)).map(brief)).toEqual([
      { id: 'a', reason: 'FIRST_BATCH', batchNumber: 0, startSegment: 0, sequence: 1 },
    ]);
    await coordinator.endStreamSession('a');
    clock.advance(1);
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a2.mp4' });
    // Its sequence starts over at 1, as the replayed one had: a new session, a new need.
    const [again] = await take(it, 1);
    expect(brief(again!)).toEqual({
      id: 'a',
      reason: 'FIRST_BATCH',
      batchNumber: 0,
      startSegment: 0,
      sequence: 1,
    });
    expect(again?.videoSourcePath).toBe('/a2.mp4');
    await it.return?.();
  });

  it('filters by streamSessionId, in the replay and live', async () => {
    const { coordinator } = setup();
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    await coordinator.createStreamSession({ id: 'b', videoSourcePath: '/b.mp4' });
    const it = coordinator.batchNeeded('b');
    expect((await take(it, 1)).map(brief)).toEqual([
      { id: 'b', reason: 'FIRST_BATCH', batchNumber: 0, startSegment: 0, sequence: 1 },
    ]);
    await withCompleteBatch0(coordinator, 'x');
    await coordinator.setCurrentBatch(batch0('a'));
    await coordinator.completeBatch('a', 0);
    await coordinator.updateClientPosition(position('a', 'p', 19));
    await coordinator.setCurrentBatch(batch0('b'));
    await coordinator.completeBatch('b', 0);
    await coordinator.updateClientPosition(position('b', 'p', 50));
    expect((await take(it, 1)).map(brief)).toEqual([
      { id: 'b', reason: 'SEEK_AHEAD', batchNumber: 1, startSegment: 50, sequence: 2 },
    ]);
    await it.return?.();
  });

  it('a subscription for an unknown session replays nothing and hears it once it exists', async () => {
    const { coordinator } = setup();
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    const it = coordinator.batchNeeded('later');
    const next = it.next();
    await coordinator.createStreamSession({ id: 'later', videoSourcePath: '/l.mp4' });
    expect(brief((await next).value as BatchNeededEvent)).toMatchObject({
      id: 'later',
      reason: 'FIRST_BATCH',
    });
    await it.return?.();
  });

  describe('no duplicates and nothing missed when changes happen while it starts', () => {
    /** A MemoryStore whose snapshot of pending needs waits for the test, before or after it is taken. */
    class GatedStore extends MemoryStore {
      entered = false;
      private release: () => void = () => {};
      constructor(
        private readonly where: 'before' | 'after',
        events: LocalEventBus,
      ) {
        super(timeouts, events);
      }
      override async pendingNeeds(streamSessionId?: string): Promise<BatchNeededEvent[]> {
        this.entered = true;
        const gate = new Promise<void>((resolve) => {
          this.release = resolve;
        });
        if (this.where === 'before') await gate;
        const needs = await super.pendingNeeds(streamSessionId);
        if (this.where === 'after') await gate;
        return needs;
      }
      open(): void {
        this.release();
      }
    }

    it('changes before the snapshot: the held events it already has are dropped', async () => {
      const { coordinator, store } = setup({ store: (events) => new GatedStore('before', events) });
      await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
      await withCompleteBatch0(coordinator, 'b');

      const it = coordinator.batchNeeded();
      const first = it.next();
      expect(store.entered).toBe(true);
      // While the subscription waits for its snapshot:
      await coordinator.createStreamSession({ id: 'c', videoSourcePath: '/c.mp4' }); // c#1
      await coordinator.updateClientPosition(position('b', 'p', 15)); // b#2
      await coordinator.updateClientPosition(position('b', 'p', 45)); // b#3
      await coordinator.setCurrentBatch(batch0('a')); // a's need is gone
      store.open();

      const events = [(await first).value as BatchNeededEvent, ...(await take(it, 1))];
      expect(events.map(brief)).toEqual([
        { id: 'b', reason: 'SEEK_AHEAD', batchNumber: 1, startSegment: 45, sequence: 3 },
        { id: 'c', reason: 'FIRST_BATCH', batchNumber: 0, startSegment: 0, sequence: 1 },
      ]);
      // Then a sentinel: if anything had been repeated it would come before it.
      await coordinator.createStreamSession({ id: 'sentinel', videoSourcePath: '/s.mp4' });
      expect(brief((await take(it, 1))[0]!).id).toBe('sentinel');
      await it.return?.();
    });

    it('changes after the snapshot: the held events are delivered after it, in order', async () => {
      const { coordinator, store } = setup({ store: (events) => new GatedStore('after', events) });
      await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
      await withCompleteBatch0(coordinator, 'b');

      const it = coordinator.batchNeeded();
      const first = it.next();
      await flushMicrotasks(5);
      expect(store.entered).toBe(true);
      await coordinator.createStreamSession({ id: 'c', videoSourcePath: '/c.mp4' }); // c#1
      await coordinator.updateClientPosition(position('b', 'p', 15)); // b#2
      await coordinator.updateClientPosition(position('b', 'p', 45)); // b#3
      store.open();

      const events = [(await first).value as BatchNeededEvent, ...(await take(it, 3))];
      expect(events.map(brief)).toEqual([
        { id: 'a', reason: 'FIRST_BATCH', batchNumber: 0, startSegment: 0, sequence: 1 },
        { id: 'c', reason: 'FIRST_BATCH', batchNumber: 0, startSegment: 0, sequence: 1 },
        { id: 'b', reason: 'APPROACHING_END', batchNumber: 1, startSegment: 20, sequence: 2 },
        { id: 'b', reason: 'SEEK_AHEAD', batchNumber: 1, startSegment: 45, sequence: 3 },
      ]);
      await coordinator.createStreamSession({ id: 'sentinel', videoSourcePath: '/s.mp4' });
      expect(brief((await take(it, 1))[0]!).id).toBe('sentinel');
      await it.return?.();
    });

    // The StreamSessionStore interface is async so that a remote store (Redis)
    // fits: such a store has applied a change before its answer comes back,
    // and a new subscriber's snapshot can see the change in that gap. The
    // event published once the answer arrives reaches the subscriber live,
    // after the replay is done, and must be dropped: the snapshot gave it.
    it('a change the store applied before answering is not repeated to a subscriber whose snapshot saw it', async () => {
      class SlowReplyStore extends MemoryStore {
        private gate: Promise<void> | null = null;
        private release: () => void = () => {};
        hold(): void {
          this.gate = new Promise<void>((resolve) => {
            this.release = resolve;
          });
        }
        open(): void {
          this.gate = null;
          this.release();
        }
        override async updateClientPosition(
          ...args: Parameters<MemoryStore['updateClientPosition']>
        ): Promise<Change<ClientPosition>> {
          const change = super.updateClientPosition(...args);
          if (this.gate !== null) await this.gate;
          return change;
        }
      }
      const { coordinator, store } = setup({
        store: (events) => new SlowReplyStore(timeouts, events),
      });
      await withCompleteBatch0(coordinator, 'a');
      store.hold();
      const change = coordinator.updateClientPosition(position('a', 'p', 15));
      await flushMicrotasks(10);
      // Applied in the store, not yet answered (so not yet published).
      expect((await store.getStreamSession('a'))?.furthestSegment).toBe(15);

      const it = coordinator.batchNeeded('a');
      const got: BatchNeededEvent[] = await take(it, 1);
      expect(brief(got[0]!)).toMatchObject({ reason: 'APPROACHING_END', sequence: 2 });
      store.open();
      await change;
      // The next need is a seek: it must come next, with nothing repeated before it.
      await coordinator.updateClientPosition(position('a', 'p', 40));
      got.push(...(await take(it, 1)));
      await it.return?.();
      expect(got.map((e) => `${e.reason}#${e.sequence}`)).toEqual([
        'APPROACHING_END#2',
        'SEEK_AHEAD#3',
      ]);
    });

    it('whatever the interleaving with concurrent changes (plain MemoryStore)', async () => {
      for (let delay = 0; delay < 40; delay++) {
        const { coordinator } = setup();
        await withCompleteBatch0(coordinator, 'a');
        // Changes in flight on two sessions while the subscription starts.
        const changes = Promise.all([
          coordinator.createStreamSession({ id: 'b', videoSourcePath: '/b.mp4' }),
          coordinator.updateClientPosition(position('a', 'p', 15)),
          coordinator.updateClientPosition(position('a', 'p', 40)),
          // Within 40..59 as announced: the same need, not announced.
          coordinator.updateClientPosition(position('a', 'p', 41)),
          coordinator.updateClientPosition(position('a', 'p', 65)),
          coordinator.setCurrentBatch(batch0('b')),
        ]);
        await flushMicrotasks(delay);
        const it = coordinator.batchNeeded();
        const first = it.next();
        await changes;
        await coordinator.createStreamSession({ id: 'sentinel', videoSourcePath: '/s.mp4' });
        const got: BatchNeededEvent[] = [(await first).value as BatchNeededEvent];
        while (got.at(-1)?.streamSession.id !== 'sentinel') got.push(...(await take(it, 1)));
        await it.return?.();

        const keys = got.map((e) => `${e.streamSession.id}#${e.sequence}`);
        expect(new Set(keys).size, `delay ${delay}: ${keys}`).toBe(keys.length);
        // Per session, sequences only increase.
        for (const id of ['a', 'b']) {
          const seqs = got.filter((e) => e.streamSession.id === id).map((e) => e.sequence);
          expect(seqs, `delay ${delay}`).toEqual([...seqs].sort((x, y) => x - y));
        }
        // The need 'a' has at the end (SEEK_AHEAD at 65, the 4th announcement) was not missed.
        expect(
          got.some((e) => e.streamSession.id === 'a' && e.sequence === 4 && e.startSegment === 65),
          `delay ${delay}: ${keys}`,
        ).toBe(true);
      }
    });
  });

  it('ends with SlowSubscriberError when more than maxQueuedEvents are left unread', async () => {
    const { coordinator, events } = setup({ maxQueuedEvents: 3 });
    const listenersBefore = events.listenerCount;
    const it = coordinator.batchNeeded();
    const first = it.next();
    await coordinator.createStreamSession({ id: 's0', videoSourcePath: '/0.mp4' });
    expect(brief((await first).value as BatchNeededEvent).id).toBe('s0');
    // Nobody reads: three wait in the queue, the fourth is one too many.
    for (let i = 1; i <= 6; i++) {
      await coordinator.createStreamSession({ id: `s${i}`, videoSourcePath: `/${i}.mp4` });
    }
    // What was queued is still delivered, then the error.
    expect((await take(it, 3)).map((e) => e.streamSession.id)).toEqual(['s1', 's2', 's3']);
    const error = await rejection(it.next());
    expect(error).toBeInstanceOf(SlowSubscriberError);
    expect((error as Error).message).toContain('3');
    expect(await it.next()).toMatchObject({ done: true });
    await flushMicrotasks(5);
    expect(events.listenerCount).toBe(listenersBefore);
    // The coordinator itself is unaffected.
    await coordinator.createStreamSession({ id: 'after', videoSourcePath: '/a.mp4' });
    expect(await coordinator.getStreamSession('after')).not.toBeNull();
  });

  it('exactly maxQueuedEvents unread is still fine', async () => {
    const { coordinator } = setup({ maxQueuedEvents: 3 });
    const it = coordinator.batchNeeded();
    const first = it.next();
    await coordinator.createStreamSession({ id: 's0', videoSourcePath: '/0.mp4' });
    await first;
    for (let i = 1; i <= 3; i++) {
      await coordinator.createStreamSession({ id: `s${i}`, videoSourcePath: `/${i}.mp4` });
    }
    expect((await take(it, 3)).map((e) => e.streamSession.id)).toEqual(['s1', 's2', 's3']);
    const next = it.next();
    await coordinator.createStreamSession({ id: 's4', videoSourcePath: '/4.mp4' });
    expect(((await next).value as BatchNeededEvent).streamSession.id).toBe('s4');
    await it.return?.();
  });

  it('another subscriber is not affected when a slow one is closed', async () => {
    const { coordinator } = setup({ maxQueuedEvents: 2 });
    const slow = coordinator.batchNeeded();
    const fast = coordinator.batchNeeded();
    const slowFirst = slow.next();
    const fastSeen: string[] = [];
    for (let i = 0; i < 6; i++) {
      const next = fast.next();
      await coordinator.createStreamSession({ id: `s${i}`, videoSourcePath: `/${i}.mp4` });
      fastSeen.push(((await next).value as BatchNeededEvent).streamSession.id);
    }
    expect(fastSeen).toEqual(['s0', 's1', 's2', 's3', 's4', 's5']);
    await slowFirst;
    await take(slow, 2);
    expect(await rejection(slow.next())).toBeInstanceOf(SlowSubscriberError);
    await fast.return?.();
  });

  // Contract: "A new subscription first receives every need that is pending at
  // that moment, so an encoder that reconnects misses nothing." The replay
  // goes at the reader's pace, so a replay larger than maxQueuedEvents must
  // reach a reader that reads, rather than close it as too slow.
  it('replays more pending needs than maxQueuedEvents to a reader that reads promptly', async () => {
    const { coordinator } = setup({ maxQueuedEvents: 3 });
    for (let i = 0; i < 6; i++) {
      await coordinator.createStreamSession({ id: `s${i}`, videoSourcePath: `/${i}.mp4` });
    }
    const it = coordinator.batchNeeded();
    const ids: string[] = [];
    let failure: unknown = null;
    try {
      for (let i = 0; i < 6; i++) {
        const next = await it.next();
        if (next.done) break;
        ids.push(next.value.streamSession.id);
      }
    } catch (error) {
      failure = error;
    }
    await it.return?.();
    expect(failure).toBeNull();
    expect(ids).toEqual(['s0', 's1', 's2', 's3', 's4', 's5']);
  });

  it('a long replay read slowly still delivers the live events that came meanwhile, once', async () => {
    const { coordinator } = setup({ maxQueuedEvents: 2 });
    for (let i = 0; i < 5; i++) {
      await coordinator.createStreamSession({ id: `s${i}`, videoSourcePath: `/${i}.mp4` });
    }
    const it = coordinator.batchNeeded();
    const got = await take(it, 2);
    // While the rest of the replay waits for the reader: one live need, and
    // a change to a replayed session that announces nothing new.
    await coordinator.createStreamSession({ id: 'live', videoSourcePath: '/l.mp4' });
    await coordinator.updateClientPosition(position('s3', 'p', 4));
    got.push(...(await take(it, 4)));
    await coordinator.createStreamSession({ id: 'sentinel', videoSourcePath: '/s.mp4' });
    got.push(...(await take(it, 1)));
    await it.return?.();
    expect(got.map((e) => e.streamSession.id)).toEqual([
      's0',
      's1',
      's2',
      's3',
      's4',
      'live',
      'sentinel',
    ]);
    // A replayed need describes the session as the snapshot saw it, when the subscription began.
    expect(got[3]?.furthestSegment).toBeNull();
    expect(got[3]?.streamSession.clientPositions).toEqual([]);
  });

  it('more live events than maxQueuedEvents during a replay close a reader that does not read', async () => {
    const { coordinator } = setup({ maxQueuedEvents: 2 });
    for (let i = 0; i < 4; i++) {
      await coordinator.createStreamSession({ id: `s${i}`, videoSourcePath: `/${i}.mp4` });
    }
    const it = coordinator.batchNeeded();
    expect((await take(it, 1)).map((e) => e.streamSession.id)).toEqual(['s0']);
    // The replay waits for the reader; meanwhile three live needs arrive.
    for (let i = 0; i < 3; i++) {
      await coordinator.createStreamSession({ id: `live${i}`, videoSourcePath: `/l${i}.mp4` });
    }
    const seen: string[] = [];
    let failure: unknown = null;
    try {
      for (;;) {
        const next = await it.next();
        if (next.done) break;
        seen.push(next.value.streamSession.id);
      }
    } catch (error) {
      failure = error;
    }
    expect(failure).toBeInstanceOf(SlowSubscriberError);
    expect(seen).not.toContain('live2');
    expect(coordinator.subscriptionCount).toBe(0);
  });

  it('SlowSubscriberError is a RATE_LIMITED DomainError, the one errors.ts exports', async () => {
    expect(SlowSubscriberError).toBe(SlowSubscriberErrorFromErrors);
    const error = new SlowSubscriberError(7);
    expect(error).toBeInstanceOf(DomainError);
    expect(error).toBeInstanceOf(Error);
    expect(error.code).toBe('RATE_LIMITED');
    expect(error.name).toBe('SlowSubscriberError');
    expect(error.message).toContain('7');
  });
});

describe('BatchCoordinator: changes in flight', () => {
  it('with the embedded store each change and its events run in one turn', async () => {
    const { coordinator, events } = setup();
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    const seen: string[] = [];
    const stop = events.subscribe((message) => {
      if (message.type === 'streamSessionChanged') seen.push(message.event.id);
    });
    const work = Promise.all(
      Array.from({ length: 50 }, (_, i) =>
        coordinator.updateClientPosition(position('a', `p${i}`, i)),
      ),
    );
    // Every change and its event happened before the first await returned.
    expect(coordinator.changesInFlight).toBe(0);
    expect(seen).toHaveLength(50);
    await work;
    expect((await coordinator.requireStreamSession('a')).furthestSegment).toBe(49);
    stop();
  });

  it('counts the changes a store that answers later has not answered yet', async () => {
    class RemoteLikeStore extends MemoryStore {
      override async createStreamSession(
        ...args: Parameters<MemoryStore['createStreamSession']>
      ): Promise<Change<StreamSessionView>> {
        return super.createStreamSession(...args);
      }
      override async updateClientPosition(
        ...args: Parameters<MemoryStore['updateClientPosition']>
      ): Promise<Change<ClientPosition>> {
        return super.updateClientPosition(...args);
      }
    }
    const { coordinator } = setup({ store: (events) => new RemoteLikeStore(timeouts, events) });
    expect(coordinator.changesInFlight).toBe(0);
    const creating = coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    expect(coordinator.changesInFlight).toBe(1);
    await creating;
    expect(coordinator.changesInFlight).toBe(0);
    // No lock: the store orders them (Redis runs each script atomically, in the order sent).
    const work = Promise.all([
      coordinator.updateClientPosition(position('a', 'p', 1)),
      coordinator.updateClientPosition(position('a', 'q', 2)),
    ]);
    expect(coordinator.changesInFlight).toBe(2);
    await work;
    expect(coordinator.changesInFlight).toBe(0);
    await coordinator.setCurrentBatch(batch0('a'));
    await coordinator.completeBatch('a', 0);
    await coordinator.removeClient('a', 'p');
    await coordinator.endStreamSession('a');
    expect(coordinator.changesInFlight).toBe(0);
  });

  it('returns to 0 after errors: NOT_FOUND, CONFLICT, BAD_USER_INPUT', async () => {
    const { coordinator } = setup();
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    const failures = await Promise.allSettled([
      ...Array.from({ length: 20 }, (_, i) =>
        coordinator.updateClientPosition(position(`missing-${i}`, 'p', 1)),
      ),
      coordinator.removeClient('missing', 'p'),
      coordinator.setCurrentBatch(batch0('missing')),
      coordinator.completeBatch('missing', 0),
      coordinator.completeBatch('a', 0),
      coordinator.setCurrentBatch({ ...batch0('a'), batchNumber: 5 }),
      coordinator.createStreamSession({ id: 'a', videoSourcePath: '/again.mp4' }),
      coordinator.createStreamSession({ id: 'z', videoSourcePath: '/z.mp4', threshold: 99 }),
    ]);
    expect(failures.every((f) => f.status === 'rejected')).toBe(true);
    const codes = failures.map((f) =>
      f.status === 'rejected' ? (f.reason as DomainError).code : 'ok',
    );
    expect(codes.filter((c) => c === 'NOT_FOUND')).toHaveLength(23);
    expect(codes.filter((c) => c === 'CONFLICT')).toHaveLength(3);
    expect(codes.filter((c) => c === 'BAD_USER_INPUT')).toHaveLength(1);
    expect(coordinator.changesInFlight).toBe(0);
    await coordinator.endStreamSession('never-existed');
    expect(coordinator.changesInFlight).toBe(0);
  });

  it('serialises many concurrent position updates of one client in call order', async () => {
    const { coordinator, published, events } = setup();
    await withCompleteBatch0(coordinator, 'a');
    expect(published).toHaveLength(1); // FIRST_BATCH
    // Each announcement is published before the next change begins: the
    // store, read at publish time, still shows the position it announced.
    const stateAtPublish: Array<Promise<StreamSessionView | null>> = [];
    events.subscribe((message) => {
      if (message.type === 'batchNeeded') stateAtPublish.push(coordinator.getStreamSession('a'));
    });
    const N = 300;
    const results = await Promise.all(
      Array.from({ length: N }, (_, i) => coordinator.updateClientPosition(position('a', 'p', i))),
    );
    expect(results.map((r) => r.segmentNumber)).toEqual(Array.from({ length: N }, (_, i) => i));
    const view = await coordinator.getStreamSession('a');
    expect(view?.furthestSegment).toBe(N - 1);
    expect(view?.clientPositions).toEqual([
      expect.objectContaining({ sessionId: 'p', segmentNumber: N - 1 }),
    ]);
    // A model of "once per need" for batch 0 (0..19), threshold 5, size 20:
    // from 14 batch 1 is needed from 20, past 19 from the client's segment;
    // it is announced when its start leaves the range last announced.
    const expectedStarts: number[] = [];
    let range: { start: number; end: number } | null = null;
    for (let segment = 0; segment < N; segment++) {
      const start = segment < 14 ? null : segment > 19 ? segment : 20;
      if (start !== null && (range === null || start < range.start || start > range.end)) {
        range = { start, end: start + 19 };
        expectedStarts.push(start);
      }
    }
    // 20, then every batchSize segments: 40, 60, ..., 280.
    expect(expectedStarts).toEqual(Array.from({ length: 14 }, (_, i) => 20 * (i + 1)));
    const announced = published.slice(1);
    expect(announced.map((e) => e.startSegment)).toEqual(expectedStarts);
    expect(announced[0]).toMatchObject({ reason: 'APPROACHING_END', startSegment: 20 });
    expect(announced.slice(1).every((e) => e.reason === 'SEEK_AHEAD')).toBe(true);
    // Each was announced by the update that reached its start.
    expect(announced.map((e) => e.furthestSegment)).toEqual([14, ...expectedStarts.slice(1)]);
    expect(announced.map((e) => e.sequence)).toEqual(
      Array.from({ length: announced.length }, (_, i) => i + 2),
    );
    const states = await Promise.all(stateAtPublish);
    expect(states.map((s) => s?.furthestSegment)).toEqual(announced.map((e) => e.furthestSegment));
    expect(coordinator.changesInFlight).toBe(0);
  });

  it('many clients updating at once: exact furthest and one announcement', async () => {
    const { coordinator, published } = setup();
    await withCompleteBatch0(coordinator, 'a');
    const N = 400;
    await Promise.all(
      Array.from({ length: N }, (_, i) =>
        coordinator.updateClientPosition(position('a', `client-${i}`, i % 20)),
      ),
    );
    const view = await coordinator.getStreamSession('a');
    expect(view?.clientPositions).toHaveLength(N);
    expect(view?.furthestSegment).toBe(19);
    expect(view?.slowestSegment).toBe(0);
    expect(published.map(brief)).toEqual([
      { id: 'a', reason: 'FIRST_BATCH', batchNumber: 0, startSegment: 0, sequence: 1 },
      { id: 'a', reason: 'APPROACHING_END', batchNumber: 1, startSegment: 20, sequence: 2 },
    ]);
    // Everybody leaves at once except the slowest: furthest falls back to 0.
    await Promise.all(
      Array.from({ length: N - 1 }, (_, i) => coordinator.removeClient('a', `client-${i + 1}`)),
    );
    const after = await coordinator.getStreamSession('a');
    expect(after?.clientPositions.map((p) => p.sessionId)).toEqual(['client-0']);
    expect(after?.furthestSegment).toBe(0);
    expect(after?.shouldGenerateNextBatch).toBe(false);
    expect(coordinator.changesInFlight).toBe(0);
  });

  it('concurrent encoders racing for one batch: exactly one wins', async () => {
    const { coordinator } = setup();
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    const claims = await Promise.allSettled(
      Array.from({ length: 10 }, () => coordinator.setCurrentBatch(batch0('a'))),
    );
    expect(claims.filter((c) => c.status === 'fulfilled')).toHaveLength(1);
    const losers = claims.filter((c) => c.status === 'rejected');
    expect(losers).toHaveLength(9);
    for (const l of losers) expect(l.reason).toBeInstanceOf(ConflictError);
    expect(coordinator.changesInFlight).toBe(0);
  });
});

describe('BatchCoordinator: ending sessions', () => {
  it('endStreamSession tells streamSessionEnded subscribers: ENDED, when', async () => {
    const { coordinator, clock, ended } = setup();
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    await coordinator.createStreamSession({ id: 'b', videoSourcePath: '/b.mp4' });
    const all = coordinator.streamSessionEnded();
    const onlyB = coordinator.streamSessionEnded('b');
    const nextAll = all.next();
    const nextB = onlyB.next();
    clock.advance(5_000);
    expect(await coordinator.endStreamSession('a')).toBe(true);
    // Ending it again, or an unknown session, tells nobody.
    expect(await coordinator.endStreamSession('a')).toBe(false);
    expect(await coordinator.endStreamSession('nope')).toBe(false);
    clock.advance(1_000);
    expect(await coordinator.endStreamSession('b')).toBe(true);
    expect((await nextAll).value).toEqual({ id: 'a', reason: 'ENDED', endedAt: T0 + 5_000 });
    expect((await take(all, 1))[0]).toEqual({ id: 'b', reason: 'ENDED', endedAt: T0 + 6_000 });
    expect((await nextB).value).toEqual({ id: 'b', reason: 'ENDED', endedAt: T0 + 6_000 });
    expect(ended.map((e) => e.id)).toEqual(['a', 'b']);
    await all.return?.();
    await onlyB.return?.();
    expect(coordinator.subscriptionCount).toBe(0);
  });

  it('each subscription hears only its own kind of event', async () => {
    const { coordinator } = setup();
    // A subscription starts listening on its first next().
    const needs = coordinator.batchNeeded();
    const firstNeed = needs.next();
    const ends = coordinator.streamSessionEnded();
    const firstEnd = ends.next();
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    await coordinator.endStreamSession('a');
    await coordinator.createStreamSession({ id: 'b', videoSourcePath: '/b.mp4' });
    await coordinator.endStreamSession('b');
    expect(
      [(await firstNeed).value as BatchNeededEvent, ...(await take(needs, 1))].map(brief),
    ).toEqual([
      { id: 'a', reason: 'FIRST_BATCH', batchNumber: 0, startSegment: 0, sequence: 1 },
      { id: 'b', reason: 'FIRST_BATCH', batchNumber: 0, startSegment: 0, sequence: 1 },
    ]);
    expect([(await firstEnd).value, ...(await take(ends, 1))]).toEqual([
      { id: 'a', reason: 'ENDED', endedAt: T0 },
      { id: 'b', reason: 'ENDED', endedAt: T0 },
    ]);
    await needs.return?.();
    await ends.return?.();
  });

  it('an ending after a change in flight: the change lands first, then the end', async () => {
    const { coordinator, ended } = setup();
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    const [moved, endedOk] = await Promise.all([
      coordinator.updateClientPosition(position('a', 'p', 3)),
      coordinator.endStreamSession('a'),
    ]);
    expect(moved.segmentNumber).toBe(3);
    expect(endedOk).toBe(true);
    expect(ended).toHaveLength(1);
    expect(coordinator.changesInFlight).toBe(0);
  });
});

describe('BatchCoordinator.close', () => {
  it('completes every open subscription, and new ones end at once', async () => {
    const { coordinator, events } = setup();
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    const needs = coordinator.batchNeeded();
    expect((await take(needs, 1)).map((e) => e.streamSession.id)).toEqual(['a']);
    const waiting = needs.next();
    const ends = coordinator.streamSessionEnded();
    const waitingEnd = ends.next();
    await flushMicrotasks(5);
    expect(coordinator.subscriptionCount).toBe(2);
    await coordinator.close();
    expect(await waiting).toMatchObject({ done: true });
    expect(await waitingEnd).toMatchObject({ done: true });
    await flushMicrotasks(5);
    expect(coordinator.subscriptionCount).toBe(0);
    expect(events.listenerCount).toBe(1); // the test's own listener
    expect(await coordinator.batchNeeded().next()).toMatchObject({ done: true });
    expect(await coordinator.streamSessionEnded().next()).toMatchObject({ done: true });
    expect(coordinator.subscriptionCount).toBe(0);
  });

  it('waits for the changes in flight', async () => {
    class GatedUpdateStore extends MemoryStore {
      release: () => void = () => {};
      override async updateClientPosition(
        ...args: Parameters<MemoryStore['updateClientPosition']>
      ): Promise<Change<ClientPosition>> {
        await new Promise<void>((resolve) => {
          this.release = resolve;
        });
        return super.updateClientPosition(...args);
      }
    }
    const { coordinator, store } = setup({
      store: (events) => new GatedUpdateStore(timeouts, events),
    });
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    let updated = false;
    const update = coordinator.updateClientPosition(position('a', 'p', 3)).then(() => {
      updated = true;
    });
    await flushMicrotasks(5);
    let closed = false;
    const closing = coordinator.close().then(() => {
      closed = true;
    });
    await flushMicrotasks(20);
    expect(closed).toBe(false);
    store.release();
    await closing;
    expect(updated).toBe(true);
    await update;
    expect((await coordinator.getStreamSession('a'))?.furthestSegment).toBe(3);
  });
});

describe('BatchCoordinator.sweep', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  const nothing: SweepReport = { clientsExpired: 0, batchesStalled: 0, sessionsEnded: 0 };

  it('does nothing before any deadline', async () => {
    const { coordinator, clock, published, ended } = setup();
    await withCompleteBatch0(coordinator, 'a');
    await coordinator.updateClientPosition(position('a', 'p', 3));
    await coordinator.createStreamSession({ id: 'b', videoSourcePath: '/b.mp4' });
    await coordinator.setCurrentBatch(batch0('b'));
    await coordinator.updateClientPosition(position('b', 'p', 3));
    const count = published.length;
    clock.advance(timeouts.clientTimeout - 1);
    expect(await coordinator.sweep()).toEqual(nothing);
    expect(published).toHaveLength(count);
    expect(ended).toEqual([]);
    expect((await coordinator.getStreamSession('a'))?.clientPositions).toHaveLength(1);
    expect(coordinator.changesInFlight).toBe(0);
  });

  it('a client silent for the client timeout leaves; one that reported stays', async () => {
    const { coordinator, clock } = setup();
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    await coordinator.updateClientPosition(position('a', 'silent', 8));
    await coordinator.updateClientPosition(position('a', 'talker', 2));
    clock.advance(timeouts.clientTimeout - 1);
    await coordinator.updateClientPosition(position('a', 'talker', 3));
    expect(await coordinator.sweep()).toEqual(nothing);
    clock.advance(1);
    expect(await coordinator.sweep()).toEqual({ ...nothing, clientsExpired: 1 });
    const view = await coordinator.getStreamSession('a');
    expect(view?.clientPositions.map((p) => p.sessionId)).toEqual(['talker']);
    expect(view?.furthestSegment).toBe(3);
    expect(view?.updatedAt).toBe(T0 + timeouts.clientTimeout);
    // Done once: the next sweep finds nothing.
    expect(await coordinator.sweep()).toEqual(nothing);
    clock.advance(timeouts.clientTimeout - 1);
    expect(await coordinator.sweep()).toEqual({ ...nothing, clientsExpired: 1 });
    expect((await coordinator.getStreamSession('a'))?.clientPositions).toEqual([]);
    expect(coordinator.changesInFlight).toBe(0);
  });

  it('an expiry is a change like removeClient: it publishes what it announces', async () => {
    const { coordinator, clock, published, store } = setup();
    await withCompleteBatch0(coordinator, 'a');
    await coordinator.updateClientPosition(position('a', 'slow', 16));
    await coordinator.updateClientPosition(position('a', 'fast', 50));
    expect(published.slice(1).map(brief)).toEqual([
      { id: 'a', reason: 'APPROACHING_END', batchNumber: 1, startSegment: 20, sequence: 2 },
      { id: 'a', reason: 'SEEK_AHEAD', batchNumber: 2, startSegment: 50, sequence: 3 },
    ]);
    clock.advance(timeouts.clientTimeout / 2);
    await coordinator.updateClientPosition(position('a', 'slow', 17));
    clock.advance(timeouts.clientTimeout / 2);
    // v2: 'fast' falls silent: its need (2) is withdrawn; 'slow' keeps batch 1 from 20,
    // which stays pending and is not announced again.
    expect(await coordinator.sweep()).toEqual({ ...nothing, clientsExpired: 1 });
    expect(published.slice(3).map(brief)).toEqual([]);
    expect((await store.pendingNeeds('a')).map(brief)).toEqual([
      { id: 'a', reason: 'APPROACHING_END', batchNumber: 1, startSegment: 20, sequence: 2 },
    ]);
    expect(
      (await coordinator.getStreamSession('a'))?.clientPositions.map((p) => p.sessionId),
    ).toEqual(['slow']);
  });

  it('a batch not completed within the batch timeout is announced STALLED, and again each timeout', async () => {
    const { coordinator, clock, published } = setup();
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    await coordinator.updateClientPosition(position('a', 'p', 4));
    clock.advance(1_000);
    await coordinator.setCurrentBatch(batch0('a'));
    const it = coordinator.batchNeeded('a');
    const first = it.next();
    clock.advance(timeouts.batchTimeout - 1);
    await coordinator.updateClientPosition(position('a', 'p', 5)); // keeps 'p' alive
    expect(await coordinator.sweep()).toEqual(nothing);
    clock.advance(1);
    expect(await coordinator.sweep()).toEqual({ ...nothing, batchesStalled: 1 });
    expect((await first).value).toMatchObject({
      reason: 'STALLED',
      batchNumber: 0,
      startSegment: 0,
      endSegment: 19,
      videoSourcePath: '/a.mp4',
      videoStartOffset: 0,
      furthestSegment: 5,
      sequence: 2,
    });
    expect(await coordinator.sweep()).toEqual(nothing);
    // Nobody claims it: stalled again one timeout later.
    clock.advance(timeouts.batchTimeout - 1);
    await coordinator.updateClientPosition(position('a', 'p', 6));
    expect(await coordinator.sweep()).toEqual(nothing);
    clock.advance(1);
    expect(await coordinator.sweep()).toEqual({ ...nothing, batchesStalled: 1 });
    expect(brief((await take(it, 1))[0]!)).toEqual({
      id: 'a',
      reason: 'STALLED',
      batchNumber: 0,
      startSegment: 0,
      sequence: 3,
    });
    expect(published.map((e) => e.reason)).toEqual(['FIRST_BATCH', 'STALLED', 'STALLED']);
    // Another encoder takes it over with the same number.
    const again = await coordinator.setCurrentBatch(batch0('a'));
    expect(again).toMatchObject({ batchNumber: 0, generationStarted: clock.now() });
    await it.return?.();
  });

  it('a batch completed in time, or claimed again, does not stall at the old deadline', async () => {
    const { coordinator, clock, published } = setup();
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    await coordinator.createStreamSession({ id: 'b', videoSourcePath: '/b.mp4' });
    await coordinator.setCurrentBatch(batch0('a'));
    await coordinator.setCurrentBatch(batch0('b'));
    clock.advance(timeouts.batchTimeout - 1);
    await coordinator.completeBatch('a', 0);
    clock.advance(1);
    expect(await coordinator.sweep()).toEqual({ ...nothing, batchesStalled: 1 });
    expect(published.filter((e) => e.reason === 'STALLED').map((e) => e.streamSession.id)).toEqual([
      'b',
    ]);
    clock.advance(10);
    await coordinator.setCurrentBatch(batch0('b'));
    clock.advance(timeouts.batchTimeout - 1);
    expect(await coordinator.sweep()).toEqual(nothing);
    expect((await coordinator.getStreamSession('b'))?.currentBatch?.isComplete).toBe(false);
  });

  // BUG (fails on the current src): see stream-session.test.ts. The second
  // claim's stall is counted (batchesStalled 1) but announces nothing, because
  // the stall count restarts at 1 and matches the stall announced for the
  // first claim; encoders hear of it only one more batch timeout later.
  it('a batch claimed again after a stall is announced STALLED when that claim stalls too', async () => {
    const { coordinator, clock, published } = setup();
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    await coordinator.setCurrentBatch(batch0('a'));
    clock.advance(timeouts.batchTimeout);
    expect(await coordinator.sweep()).toEqual({ ...nothing, batchesStalled: 1 });
    await coordinator.setCurrentBatch(batch0('a'));
    clock.advance(timeouts.batchTimeout);
    expect(await coordinator.sweep()).toEqual({ ...nothing, batchesStalled: 1 });
    expect(published.map((e) => `${e.reason}#${e.sequence}`)).toEqual([
      'FIRST_BATCH#1',
      'STALLED#2',
      'STALLED#3',
    ]);
  });

  it('a session without clients for the idle timeout ends: IDLE', async () => {
    const { coordinator, clock, store, ended } = setup();
    await coordinator.createStreamSession({ id: 'empty', videoSourcePath: '/e.mp4' });
    await coordinator.createStreamSession({ id: 'watched', videoSourcePath: '/w.mp4' });
    clock.advance(timeouts.idleTimeout / 2);
    await coordinator.createStreamSession({ id: 'left', videoSourcePath: '/l.mp4' });
    await coordinator.updateClientPosition(position('left', 'p', 1));
    await coordinator.removeClient('left', 'p');
    const ends = coordinator.streamSessionEnded();
    const firstEnd = ends.next();
    // 'watched' has a client that keeps reporting.
    for (let t = 0; t < timeouts.idleTimeout / 2; t += timeouts.clientTimeout / 2) {
      await coordinator.updateClientPosition(position('watched', 'p', t));
      clock.advance(timeouts.clientTimeout / 2);
    }
    expect(clock.now()).toBe(T0 + timeouts.idleTimeout);
    await coordinator.updateClientPosition(position('watched', 'p', 0));
    expect(await coordinator.sweep()).toEqual({ ...nothing, sessionsEnded: 1 });
    expect((await firstEnd).value).toEqual({
      id: 'empty',
      reason: 'IDLE',
      endedAt: T0 + timeouts.idleTimeout,
    });
    expect(await coordinator.getStreamSession('empty')).toBeNull();
    // 'left' has been empty since its client left, half a timeout ago.
    clock.advance(timeouts.idleTimeout / 2 - 1);
    await coordinator.updateClientPosition(position('watched', 'p', 0));
    expect(await coordinator.sweep()).toEqual(nothing);
    clock.advance(1);
    await coordinator.updateClientPosition(position('watched', 'p', 0));
    expect(await coordinator.sweep()).toEqual({ ...nothing, sessionsEnded: 1 });
    expect(ended).toEqual([
      { id: 'empty', reason: 'IDLE', endedAt: T0 + timeouts.idleTimeout },
      { id: 'left', reason: 'IDLE', endedAt: T0 + 1.5 * timeouts.idleTimeout },
    ]);
    expect((await coordinator.listStreamSessions(10, 0)).map((v) => v.id)).toEqual(['watched']);
    expect(store.size).toBe(1);
    await ends.return?.();
  });

  it('a session whose last client falls silent ends one idle timeout after the client left', async () => {
    const { coordinator, clock, ended } = setup();
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    await coordinator.updateClientPosition(position('a', 'p', 1));
    clock.advance(timeouts.clientTimeout);
    expect(await coordinator.sweep()).toEqual({ ...nothing, clientsExpired: 1 });
    clock.advance(timeouts.idleTimeout - 1);
    expect(await coordinator.sweep()).toEqual(nothing);
    clock.advance(1);
    expect(await coordinator.sweep()).toEqual({ ...nothing, sessionsEnded: 1 });
    expect(ended).toEqual([
      { id: 'a', reason: 'IDLE', endedAt: T0 + timeouts.clientTimeout + timeouts.idleTimeout },
    ]);
  });

  it('acts on everything due in one sweep', async () => {
    const { coordinator, clock } = setup();
    for (const id of ['a', 'b', 'c']) {
      await coordinator.createStreamSession({ id, videoSourcePath: `/${id}.mp4` });
      await coordinator.setCurrentBatch(batch0(id));
      await coordinator.updateClientPosition(position(id, 'p', 1));
      await coordinator.updateClientPosition(position(id, 'q', 2));
    }
    await coordinator.createStreamSession({ id: 'idle', videoSourcePath: '/i.mp4' });
    clock.advance(timeouts.idleTimeout);
    expect(await coordinator.sweep()).toEqual({
      clientsExpired: 6,
      batchesStalled: 3,
      sessionsEnded: 1,
    });
    // The sessions whose clients just left are idle from now.
    expect((await coordinator.listStreamSessions(10, 0)).map((v) => v.id)).toEqual(['a', 'b', 'c']);
    expect(coordinator.changesInFlight).toBe(0);
  });

  it('concurrent calls share one sweep', async () => {
    const { coordinator, clock } = setup();
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    await coordinator.updateClientPosition(position('a', 'p', 1));
    clock.advance(timeouts.clientTimeout);
    const one = coordinator.sweep();
    const two = coordinator.sweep();
    expect(two).toBe(one);
    expect(await one).toEqual({ ...nothing, clientsExpired: 1 });
    const three = coordinator.sweep();
    expect(three).not.toBe(one);
    expect(await three).toEqual(nothing);
  });

  it('startSweeper sweeps on its interval, reports what it did, and stops on close', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const reports: SweepReport[] = [];
    const { coordinator, clock } = setup({ onSweep: (r) => reports.push(r) });
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    await coordinator.updateClientPosition(position('a', 'p', 1));
    coordinator.startSweeper(1_000);
    coordinator.startSweeper(10); // a second start changes nothing
    await vi.advanceTimersByTimeAsync(1_000);
    // Nothing was due: nothing reported.
    expect(reports).toEqual([]);
    expect(vi.getTimerCount()).toBe(1);
    clock.advance(timeouts.clientTimeout);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(reports).toEqual([{ ...nothing, clientsExpired: 1 }]);
    await coordinator.close();
    expect(vi.getTimerCount()).toBe(0);
    clock.advance(timeouts.idleTimeout);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(reports).toHaveLength(1);
    expect(await coordinator.getStreamSession('a')).not.toBeNull();
    coordinator.startSweeper(1_000);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('an observer that throws goes to onError as activity; the change stands', async () => {
    const errors: Array<[unknown, string]> = [];
    const events = new LocalEventBus();
    const coordinator = new BatchCoordinator({
      store: new MemoryStore(timeouts, events),
      events,
      defaults,
      clock: new ManualClock(T0),
      onActivity: () => {
        throw new Error('observer broke');
      },
      onError: (error, during) => errors.push([error, during]),
    });
    const created = await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    expect(created.id).toBe('a');
    expect(await coordinator.getStreamSession('a')).not.toBeNull();
    expect(errors.length).toBeGreaterThan(0);
    expect(
      errors.every(
        ([e, during]) => (e as Error).message === 'observer broke' && during === 'activity',
      ),
    ).toBe(true);
  });

  it('a failing sweep goes to onError and the next one tries again', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    class FlakyStore extends MemoryStore {
      failures = 1;
      override async dueWork(...args: Parameters<MemoryStore['dueWork']>) {
        if (this.failures-- > 0) throw new Error('store unavailable');
        return super.dueWork(...args);
      }
    }
    const errors: unknown[] = [];
    const during: string[] = [];
    const reports: SweepReport[] = [];
    const { coordinator, clock } = setup({
      store: (events) => new FlakyStore(timeouts, events),
      onError: (e, d) => {
        errors.push(e);
        during.push(d);
      },
      onSweep: (r) => reports.push(r),
    });
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    await coordinator.updateClientPosition(position('a', 'p', 1));
    clock.advance(timeouts.clientTimeout);
    coordinator.startSweeper(100);
    await vi.advanceTimersByTimeAsync(100);
    expect(errors.map((e) => (e as Error).message)).toEqual(['store unavailable']);
    expect(during).toEqual(['sweep']);
    expect(reports).toEqual([]);
    await vi.advanceTimersByTimeAsync(100);
    expect(reports).toEqual([{ ...nothing, clientsExpired: 1 }]);
    expect(errors).toHaveLength(1);
    await coordinator.close();
  });
});
