/**
 * The streamSessionUpdated subscription through the API, on either store
 * (with Redis its changes travel through pub/sub): the current state first,
 * then at most about 4 states a second per session with the last one
 * always delivered, endings told by streamSessionEnded. Who may subscribe
 * is in auth.test.ts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/state/clock.js';
import {
  eventually,
  type GraphQLResponse,
  Q,
  sleep,
  sseSubscribe,
  startTestServer,
  type TestServer,
  wsSubscribe,
} from './fixtures.js';

/** The coordinator's default: one state per session every 250 ms at most. */
const INTERVAL = 250;
const BATCH_TIMEOUT = 60_000;

const UPDATED = `subscription Updated($id: ID) {
  streamSessionUpdated(id: $id) {
    id videoSourcePath threshold furthestSegment updatedAt
    currentBatch { batchNumber startSegment endSegment isComplete isStalled }
    clientPositions { sessionId segmentNumber quality }
  }
}`;

interface Session {
  id: string;
  videoSourcePath: string;
  threshold: number;
  furthestSegment: number | null;
  updatedAt: string;
  currentBatch: {
    batchNumber: number;
    startSegment: number;
    endSegment: number;
    isComplete: boolean;
    isStalled: boolean;
  } | null;
  clientPositions: Array<{ sessionId: string; segmentNumber: number; quality: string }>;
}
type Updated = GraphQLResponse<{ streamSessionUpdated: Session }>;

let server: TestServer;
let clock: ManualClock;
beforeAll(async () => {
  clock = new ManualClock(Date.now());
  server = await startTestServer(
    { batchTimeout: BATCH_TIMEOUT, clientTimeout: 86_400_000, idleTimeout: 86_400_000 },
    clock,
  );
});
afterAll(() => server.stop());

let counter = 0;
const uid = (prefix: string) =>
  `upd-${prefix}-${++counter}-${Math.random().toString(36).slice(2, 8)}`;

async function ok(query: string, variables?: Record<string, unknown>) {
  const response = await server.gql(query, variables);
  expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
  return response.data as Record<string, any>;
}

const create = (id: string) => ok(Q.create, { input: { id, videoSourcePath: `/media/${id}.mp4` } });
const move = (
  streamSessionId: string,
  sessionId: string,
  segmentNumber: number,
  quality = 'Q720P',
) => ok(Q.update, { input: { streamSessionId, sessionId, segmentNumber, quality } });

const sessionsOf = (events: Updated[]) =>
  events.map((e) => {
    expect(e.errors, JSON.stringify(e.errors)).toBeUndefined();
    return e.data!.streamSessionUpdated;
  });

describe('streamSessionUpdated', () => {
  it("over WebSocket: every live session's state first, then the changes", async () => {
    const a = uid('a');
    const b = uid('b');
    await create(a);
    await create(b);
    await move(b, 'viewer-1', 4, 'Q1080P');
    const updates = wsSubscribe<Updated>(server.wsClient(), UPDATED);
    await updates.waitFor(2);
    const first = sessionsOf(updates.events);
    const ours = first.filter((s) => s.id === a || s.id === b);
    expect(ours.map((s) => s.id)).toEqual([a, b]);
    expect(ours[1]).toMatchObject({
      furthestSegment: 4,
      currentBatch: null,
      clientPositions: [{ sessionId: 'viewer-1', segmentNumber: 4, quality: 'Q1080P' }],
    });
    const count = updates.events.length;
    await move(a, 'viewer-2', 9);
    await updates.waitFor(count + 1);
    expect(sessionsOf(updates.events).at(-1)).toMatchObject({
      id: a,
      furthestSegment: 9,
      clientPositions: [{ sessionId: 'viewer-2', segmentNumber: 9, quality: 'Q720P' }],
    });
    updates.stop();
  });

  it('over SSE: the session named, then its changes', async () => {
    const id = uid('sse');
    await create(id);
    const updates = sseSubscribe<Updated>(server.url, UPDATED, { id });
    await updates.ready;
    await updates.waitFor(1);
    expect(sessionsOf(updates.events)).toEqual([
      expect.objectContaining({ id, furthestSegment: null, clientPositions: [] }),
    ]);
    await move(id, 'p', 2);
    await updates.waitFor(2);
    expect(sessionsOf(updates.events)[1]).toMatchObject({ id, furthestSegment: 2 });
    updates.stop();
  });

  it('100 rapid position updates: a few states, the last one showing the final positions', async () => {
    const id = uid('rapid');
    await create(id);
    const updates = wsSubscribe<Updated>(server.wsClient(), UPDATED, { id });
    await updates.waitFor(1);
    const started = Date.now();
    // Four players, 25 updates each, all in flight at once.
    await Promise.all(
      Array.from({ length: 4 }, async (_, player) => {
        for (let i = 0; i < 25; i++) await move(id, `p${player}`, player * 100 + i);
      }),
    );
    const elapsed = Date.now() - started;
    const final = [24, 124, 224, 324];
    // The last state always comes: wait for it.
    const states = await eventually(() => {
      const all = sessionsOf(updates.events).slice(1);
      expect(all.at(-1)?.clientPositions.map((c) => c.segmentNumber)).toEqual(final);
      return all;
    });
    expect(states.length).toBeGreaterThanOrEqual(1);
    // At most one per interval while they went on, plus the first and the last.
    expect(states.length).toBeLessThanOrEqual(2 + Math.ceil(elapsed / INTERVAL));
    expect(states.length).toBeLessThan(100);
    expect(states.at(-1)).toMatchObject({
      furthestSegment: 324,
      clientPositions: [
        { sessionId: 'p0', segmentNumber: 24 },
        { sessionId: 'p1', segmentNumber: 124 },
        { sessionId: 'p2', segmentNumber: 224 },
        { sessionId: 'p3', segmentNumber: 324 },
      ],
    });
    updates.stop();
  });

  it('shows the batch generating, stalled and complete', async () => {
    const id = uid('batch');
    await create(id);
    const updates = wsSubscribe<Updated>(server.wsClient(), UPDATED, { id });
    await updates.waitFor(1);
    const claim = {
      streamSessionId: id,
      batchNumber: 0,
      startSegment: 0,
      endSegment: 19,
      videoSourcePath: `/media/${id}.mp4`,
      videoStartOffset: 0,
    };
    const latest = () => sessionsOf(updates.events).at(-1)?.currentBatch;
    await ok(Q.claim, { input: claim });
    await expect.poll(latest).toEqual({
      batchNumber: 0,
      startSegment: 0,
      endSegment: 19,
      isComplete: false,
      isStalled: false,
    });
    // A sweep of the server's own still in flight would be shared, with the old time:
    // let it end first, then move the clock and sweep in the same turn.
    await server.app.coordinator.sweep();
    clock.advance(BATCH_TIMEOUT);
    expect(await server.app.coordinator.sweep()).toMatchObject({ batchesStalled: 1 });
    await expect.poll(() => latest()?.isStalled, { timeout: 2_000 }).toBe(true);
    await ok(Q.claim, { input: claim });
    await ok(Q.complete, { streamSessionId: id, batchNumber: 0 });
    await expect
      .poll(latest, { timeout: 2_000 })
      .toMatchObject({ isComplete: true, isStalled: false });
    updates.stop();
  });

  it('an ending comes on streamSessionEnded, and no state of the session follows it', async () => {
    const id = uid('end');
    await create(id);
    const client = server.wsClient();
    const ended = wsSubscribe<GraphQLResponse<{ streamSessionEnded: { id: string } }>>(
      client,
      'subscription($id: ID) { streamSessionEnded(streamSessionId: $id) { id reason } }',
      { id },
    );
    const updates = wsSubscribe<Updated>(client, UPDATED, { id });
    await updates.waitFor(1);
    await move(id, 'p', 1);
    await updates.waitFor(2);
    for (let i = 2; i < 10; i++) await move(id, 'p', i);
    await ok(Q.end, { id });
    await ended.waitFor(1);
    expect(ended.events[0]?.data?.streamSessionEnded).toEqual({ id, reason: 'ENDED' });
    const after = updates.events.length;
    // No state follows, and nothing observable marks when one would have: a state pending
    // at the end would have come within an interval; wait three.
    await sleep(INTERVAL * 3);
    expect(updates.events.length).toBe(after);
    updates.stop();
    ended.stop();
  });
});
