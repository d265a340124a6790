/**
 * BatchCoordinator.streamSessionUpdated on the memory store: the current
 * state first, then coalesced changes per session (the last state always
 * delivered), endings dropped, slow readers bounded; and the cheap
 * streamSessionChanged event behind it.
 */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../src/state/clock.js';
import { BatchCoordinator } from '../src/state/coordinator.js';
import { type CoordinatorEvent, LocalEventBus } from '../src/state/events.js';
import { MemoryStore } from '../src/state/memory-store.js';
import { QUALITIES, Quality, type StreamSessionView } from '../src/state/model.js';
import type { Timeouts } from '../src/state/store.js';
import { eventually, sleep } from './fixtures.js';

const INTERVAL = 100;
const timeouts: Timeouts = { batchTimeout: 60_000, clientTimeout: 30_000, idleTimeout: 300_000 };

function setup(options: { maxQueuedEvents?: number } = {}) {
  const events = new LocalEventBus((error) => {
    throw error;
  });
  const store = new MemoryStore(timeouts, events);
  const clock = new ManualClock();
  const coordinator = new BatchCoordinator({
    store,
    events,
    clock,
    defaults: { segmentDuration: 6, batchSize: 20, threshold: 5, qualities: QUALITIES },
    sessionUpdateInterval: INTERVAL,
    maxQueuedEvents: options.maxQueuedEvents ?? 1_000,
  });
  const published: CoordinatorEvent[] = [];
  events.subscribe((message) => published.push(message));
  return { store, events, clock, coordinator, published };
}

const position = (streamSessionId: string, sessionId: string, segmentNumber: number) => ({
  streamSessionId,
  sessionId,
  segmentNumber,
  quality: Quality.Q720P,
});

const batch = (streamSessionId: string, batchNumber: number, startSegment: number) => ({
  streamSessionId,
  batchNumber,
  startSegment,
  endSegment: startSegment + 19,
  videoSourcePath: `/${streamSessionId}.mp4`,
  videoStartOffset: startSegment * 6,
});

/**
 * Reads one subscription: `take(n)` waits for the next n states, `through`
 * reads until the states so far show what the test waits for, `until(ms)`
 * collects what arrives until none has for ms (one read stays pending
 * across calls).
 */
function reader(iterator: AsyncIterableIterator<StreamSessionView>) {
  let pending: Promise<IteratorResult<StreamSessionView>> | null = null;
  const next = () => {
    pending ??= iterator.next();
    return pending;
  };
  return {
    async take(count: number, timeoutMs = 2_000): Promise<StreamSessionView[]> {
      const out: StreamSessionView[] = [];
      while (out.length < count) {
        const result = await Promise.race([
          next(),
          // A deadline: fail rather than hang.
          sleep(timeoutMs).then(() => {
            throw new Error(`timed out after ${out.length} of ${count} states`);
          }),
        ]);
        pending = null;
        if (result.done) throw new Error(`ended after ${out.length} of ${count} states`);
        out.push(result.value);
      }
      return out;
    },
    /** Every state that arrives, with when, until those so far satisfy `done`. */
    async through(
      done: (views: StreamSessionView[]) => boolean,
      timeoutMs = 2_000,
    ): Promise<Array<{ view: StreamSessionView; at: number }>> {
      const out: Array<{ view: StreamSessionView; at: number }> = [];
      const deadline = performance.now() + timeoutMs;
      while (!done(out.map((s) => s.view))) {
        const [view] = await this.take(1, Math.max(1, deadline - performance.now()));
        out.push({ view: view!, at: performance.now() });
      }
      return out;
    },
    /**
     * Every state that arrives until none has for `ms`: to show that no
     * (more) state comes, where nothing observable marks when one would.
     */
    async until(ms: number): Promise<Array<{ view: StreamSessionView; at: number }>> {
      const out: Array<{ view: StreamSessionView; at: number }> = [];
      for (;;) {
        const result = await Promise.race([next(), sleep(ms).then(() => null)]);
        if (result === null) return out;
        pending = null;
        if (result.done) throw new Error('ended');
        out.push({ view: result.value, at: performance.now() });
      }
    },
    next,
    close: () => iterator.return?.(),
  };
}

describe('BatchCoordinator.streamSessionUpdated', () => {
  it("first sends every live session's state, oldest first, then each change", async () => {
    const { coordinator } = setup();
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    await coordinator.createStreamSession({ id: 'b', videoSourcePath: '/b.mp4' });
    await coordinator.updateClientPosition(position('b', 'p', 7));
    const updates = reader(coordinator.streamSessionUpdated());
    const first = await updates.take(2);
    expect(first.map((v) => [v.id, v.furthestSegment])).toEqual([
      ['a', null],
      ['b', 7],
    ]);
    expect(first[1]).toEqual(await coordinator.getStreamSession('b'));
    await coordinator.updateClientPosition(position('a', 'q', 3));
    const [changed] = await updates.take(1);
    expect(changed?.id).toBe('a');
    expect(changed?.clientPositions).toEqual([expect.objectContaining({ sessionId: 'q' })]);
    await coordinator.createStreamSession({ id: 'c', videoSourcePath: '/c.mp4' });
    expect((await updates.take(1))[0]?.id).toBe('c');
    await updates.close();
  });

  it('for the session named: its state first, then only its changes', async () => {
    const { coordinator } = setup();
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    await coordinator.createStreamSession({ id: 'b', videoSourcePath: '/b.mp4' });
    const updates = reader(coordinator.streamSessionUpdated('b'));
    expect((await updates.take(1)).map((v) => v.id)).toEqual(['b']);
    await coordinator.updateClientPosition(position('a', 'p', 1));
    await coordinator.updateClientPosition(position('b', 'p', 2));
    const [next] = await updates.take(1);
    expect(next).toMatchObject({ id: 'b', furthestSegment: 2 });
    expect(await updates.until(INTERVAL * 2)).toEqual([]);
    await updates.close();
  });

  it('for a session that does not exist yet: nothing first, its state once it is created', async () => {
    const { coordinator } = setup();
    const updates = reader(coordinator.streamSessionUpdated('later'));
    expect(await updates.until(50)).toEqual([]);
    await coordinator.createStreamSession({ id: 'later', videoSourcePath: '/l.mp4' });
    expect((await updates.take(1))[0]).toMatchObject({ id: 'later', clientPositions: [] });
    await updates.close();
  });

  it('100 rapid updates of one session: a few states, at most one per interval, the last one final', async () => {
    const { coordinator } = setup();
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    const updates = reader(coordinator.streamSessionUpdated());
    await updates.take(1);
    const started = performance.now();
    for (let i = 0; i < 100; i++) {
      await coordinator.updateClientPosition(position('a', `p${i % 4}`, i));
    }
    const elapsed = performance.now() - started;
    const final = (v: StreamSessionView | undefined) =>
      v?.clientPositions.map((c) => c.segmentNumber).join() === '96,97,98,99';
    const states = await updates.through((views) => final(views.at(-1)));
    // One at the first change, then at most one per interval while they go on, one after.
    expect(states.length).toBeGreaterThanOrEqual(1);
    expect(states.length).toBeLessThanOrEqual(2 + Math.ceil(elapsed / INTERVAL));
    expect(states.length).toBeLessThan(10);
    for (let i = 1; i < states.length; i++) {
      // Timers may fire a millisecond early.
      expect(states[i]!.at - states[i - 1]!.at).toBeGreaterThanOrEqual(INTERVAL - 5);
    }
    const last = states.at(-1)!.view;
    expect(last.furthestSegment).toBe(99);
    expect(last.clientPositions.map((c) => c.segmentNumber)).toEqual([96, 97, 98, 99]);
    await updates.close();
  });

  it('a busy session does not hold back another: each ends at its final state', async () => {
    const { coordinator } = setup();
    await coordinator.createStreamSession({ id: 'busy', videoSourcePath: '/b.mp4' });
    await coordinator.createStreamSession({ id: 'calm', videoSourcePath: '/c.mp4' });
    const updates = reader(coordinator.streamSessionUpdated());
    await updates.take(2);
    let made = 0;
    const work = (async () => {
      for (let i = 0; i < 300; i++) {
        await coordinator.updateClientPosition(position('busy', 'p', i));
        made++;
        // Pacing: the busy session's changes span a few turns of the event loop.
        if (i % 50 === 0) await sleep(5);
      }
    })();
    // The calm session changes once, in the middle of the busy one's changes.
    await eventually(() => made >= 100);
    await coordinator.updateClientPosition(position('calm', 'p', 42));
    await work;
    const states = (
      await updates.through(
        (views) =>
          views.some((v) => v.id === 'calm') &&
          views.some((v) => v.id === 'busy' && v.furthestSegment === 299),
      )
    ).map((s) => s.view);
    const calm = states.filter((v) => v.id === 'calm');
    expect(calm).toHaveLength(1);
    expect(calm[0]?.furthestSegment).toBe(42);
    expect(states.filter((v) => v.id === 'busy').at(-1)?.furthestSegment).toBe(299);
    await updates.close();
  });

  it('a slow reader gets fewer, fresher states and is never closed as too slow', async () => {
    const { coordinator } = setup({ maxQueuedEvents: 5 });
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    await coordinator.createStreamSession({ id: 'b', videoSourcePath: '/b.mp4' });
    const iterator = coordinator.streamSessionUpdated();
    const updates = reader(iterator);
    await updates.take(2);
    // Nobody reads while 1,000 changes happen (200 times the queue limit).
    for (let i = 0; i < 500; i++) {
      await coordinator.updateClientPosition(position('a', 'p', i));
      await coordinator.updateClientPosition(position('b', 'p', 1_000 + i));
    }
    // And nobody reads for two intervals more, while the trailing states are made.
    await sleep(INTERVAL * 2);
    const states = (
      await updates.through(
        (views) =>
          views.some((v) => v.id === 'a' && v.furthestSegment === 499) &&
          views.some((v) => v.id === 'b' && v.furthestSegment === 1_499),
      )
    ).map((s) => s.view);
    expect(states.length).toBeLessThanOrEqual(6);
    expect(states.filter((v) => v.id === 'a').at(-1)?.furthestSegment).toBe(499);
    expect(states.filter((v) => v.id === 'b').at(-1)?.furthestSegment).toBe(1_499);
    await updates.close();
  });

  it('a session that ends is not sent after its end; its pending changes are dropped', async () => {
    const { coordinator } = setup();
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    const updates = reader(coordinator.streamSessionUpdated());
    await updates.take(1);
    await coordinator.updateClientPosition(position('a', 'p', 1));
    expect((await updates.take(1))[0]?.furthestSegment).toBe(1);
    // Within its interval: these wait for the trailing state, which the end cancels.
    for (let i = 2; i < 10; i++) await coordinator.updateClientPosition(position('a', 'p', i));
    await coordinator.endStreamSession('a');
    expect(await updates.until(INTERVAL * 3)).toEqual([]);
    // The same id again is a new session, sent at once.
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/again.mp4' });
    expect((await updates.take(1))[0]).toMatchObject({
      id: 'a',
      videoSourcePath: '/again.mp4',
      clientPositions: [],
    });
    await updates.close();
  });

  it('a session that ends while a new subscriber reads the first states is not sent', async () => {
    const { coordinator, store } = setup();
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    await coordinator.createStreamSession({ id: 'b', videoSourcePath: '/b.mp4' });
    // The first states are read, then 'a' ends before they are sent.
    const list = store.listStreamSessions.bind(store);
    store.listStreamSessions = async (limit, offset) => {
      const page = await list(limit, offset);
      await coordinator.endStreamSession('a');
      return page;
    };
    const updates = reader(coordinator.streamSessionUpdated());
    expect((await updates.take(1)).map((v) => v.id)).toEqual(['b']);
    expect(await updates.until(INTERVAL * 2)).toEqual([]);
    await updates.close();
  });

  it('shows a stalled batch as stalled until it is claimed again', async () => {
    const { coordinator, clock } = setup();
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    await coordinator.setCurrentBatch(batch('a', 0, 0));
    const updates = reader(coordinator.streamSessionUpdated('a'));
    expect((await updates.take(1))[0]?.stalledBatches).toEqual([]);
    clock.advance(timeouts.batchTimeout);
    expect(await coordinator.sweep()).toMatchObject({ batchesStalled: 1 });
    const [stalled] = await updates.take(1);
    expect(stalled?.stalledBatches).toEqual([0]);
    expect(stalled?.currentBatch).toMatchObject({ batchNumber: 0, isComplete: false });
    await coordinator.setCurrentBatch(batch('a', 0, 0));
    expect((await updates.take(1))[0]?.stalledBatches).toEqual([]);
    await updates.close();
  });

  it('ends when the coordinator closes, or when its reader leaves, and leaves nothing behind', async () => {
    const { coordinator, events } = setup();
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    const listeners = events.listenerCount;
    const left = reader(coordinator.streamSessionUpdated());
    await left.take(1);
    const stays = reader(coordinator.streamSessionUpdated());
    await stays.take(1);
    expect(coordinator.subscriptionCount).toBe(2);
    expect(events.listenerCount).toBe(listeners + 2);
    await coordinator.updateClientPosition(position('a', 'p', 1));
    await left.close();
    await eventually(() => coordinator.subscriptionCount === 1);
    const waiting = stays.next();
    await coordinator.close();
    // The change above may still be in the remaining subscriber's hands.
    let result = await waiting;
    if (!result.done) result = await stays.next();
    expect(result.done).toBe(true);
    await eventually(() => coordinator.subscriptionCount === 0);
    expect(events.listenerCount).toBe(listeners);
    expect(await coordinator.streamSessionUpdated().next()).toMatchObject({ done: true });
  });
});

describe('the streamSessionChanged event', () => {
  it('is published after every change, after its announcement, with only the id', async () => {
    const { coordinator, published } = setup();
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    expect(published.map((m) => m.type)).toEqual(['batchNeeded', 'streamSessionChanged']);
    expect(published[1]).toEqual({ type: 'streamSessionChanged', event: { id: 'a' } });
    published.length = 0;
    await coordinator.updateClientPosition(position('a', 'p', 1));
    await coordinator.setCurrentBatch(batch('a', 0, 0));
    await coordinator.completeBatch('a', 0);
    await coordinator.removeClient('a', 'p');
    expect(published).toEqual(
      Array.from({ length: 4 }, () => ({ type: 'streamSessionChanged', event: { id: 'a' } })),
    );
  });

  it('is not published for a change that changed nothing or failed', async () => {
    const { coordinator, published } = setup();
    await coordinator.createStreamSession({ id: 'a', videoSourcePath: '/a.mp4' });
    published.length = 0;
    expect(await coordinator.removeClient('a', 'nobody')).toBe(false);
    await expect(coordinator.updateClientPosition(position('zz', 'p', 1))).rejects.toThrow();
    await expect(coordinator.completeBatch('a', 3)).rejects.toThrow();
    expect(published).toEqual([]);
    // An ending is told by streamSessionEnded alone.
    await coordinator.endStreamSession('a');
    expect(published.map((m) => m.type)).toEqual(['streamSessionEnded']);
  });
});
