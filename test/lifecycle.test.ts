/**
 * Issue 3, the lifecycle of what the coordinator holds: stalled batches,
 * silent clients, paused players, idle sessions, and timers that scale.
 *
 * Time is a ManualClock and each test sweeps by hand right after moving it,
 * so deadlines are exact to the millisecond and nothing sleeps. The running
 * server's own sweeper reads the same clock; since every advance is followed
 * at once by a sweep, it never finds anything left to do. One test at the end
 * runs the real sweeper with small real timeouts, to show it is wired in.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { ConfigError, defaultConfig, loadConfig } from '../src/config.js';
import { sweepInterval } from '../src/server/app.js';
import { ManualClock } from '../src/state/clock.js';
import { BatchCoordinator } from '../src/state/coordinator.js';
import { LocalEventBus } from '../src/state/events.js';
import { MemoryStore } from '../src/state/memory-store.js';
import { QUALITIES } from '../src/state/model.js';
import type { DueWork } from '../src/state/store.js';
import {
  type Collected,
  eventually,
  type GraphQLResponse,
  type Need,
  Q,
  sseSubscribe,
  startTestServer,
  type TestServer,
  wsSubscribe,
} from './fixtures.js';

const BATCH_TIMEOUT = 60_000;
const CLIENT_TIMEOUT = 30_000;
const IDLE_TIMEOUT = 90_000;
/** Long enough never to pass in a test that is about another timeout. */
const NEVER = 30 * 86_400_000;

const ENDED = `subscription Ended($id: ID) {
  streamSessionEnded(streamSessionId: $id) { id reason endedAt }
}`;

interface Ended {
  id: string;
  reason: 'ENDED' | 'IDLE';
  endedAt: string;
}

let clock: ManualClock;
let server: TestServer;

/** A server on a ManualClock for each test of the block, with the timeouts it is about. */
function serveEach(timeouts: { batchTimeout: number; clientTimeout: number; idleTimeout: number }) {
  beforeEach(async () => {
    clock = new ManualClock();
    server = await startTestServer(timeouts, clock);
  });
  afterEach(() => server.stop());
}

const iso = () => new Date(clock.now()).toISOString();

/** Moves the clock and sweeps in the same turn, so no other sweep sees the new time first. */
function advanceAndSweep(ms: number) {
  clock.advance(ms);
  return server.app.coordinator.sweep();
}

const nothing = { clientsExpired: 0, batchesStalled: 0, sessionsEnded: 0 };

async function ok(query: string, variables: Record<string, unknown>): Promise<any> {
  const response = await server.gql(query, variables);
  expect(response.errors).toBeUndefined();
  return response.data;
}

function errorCode(response: GraphQLResponse): string | undefined {
  return response.errors?.[0]?.extensions?.code;
}

const create = (id: string, input: Record<string, unknown> = {}) =>
  ok(Q.create, {
    input: {
      id,
      videoSourcePath: `/v/${id}.mp4`,
      segmentDuration: 6,
      batchSize: 20,
      threshold: 5,
      ...input,
    },
  });

const position = (
  streamSessionId: string,
  sessionId: string,
  segmentNumber: number,
  quality = 'Q720P',
) => ok(Q.update, { input: { streamSessionId, sessionId, segmentNumber, quality } });

const claim = (
  streamSessionId: string,
  batchNumber: number,
  startSegment: number,
  endSegment: number,
) =>
  server.gql(Q.claim, {
    input: {
      streamSessionId,
      batchNumber,
      startSegment,
      endSegment,
      videoSourcePath: `/v/${streamSessionId}.mp4`,
      videoStartOffset: startSegment * 6,
    },
  });

const complete = (streamSessionId: string, batchNumber: number) =>
  server.gql(Q.complete, { streamSessionId, batchNumber });

const removeClient = async (streamSessionId: string, sessionId: string): Promise<boolean> =>
  (await ok(Q.remove, { streamSessionId, sessionId })).removeClient;

const view = async (id: string) => (await ok(Q.session, { id })).streamSession;

/** Subscribes over SSE and returns once the coordinator holds the subscription. */
async function subscribe<T>(
  query: string,
  field: string,
  variables: Record<string, unknown> = {},
): Promise<Collected<any> & { items(): T[] }> {
  const before = server.app.coordinator.subscriptionCount;
  const sub = sseSubscribe<any>(server.url, query, variables);
  await sub.ready;
  await eventually(() => server.app.coordinator.subscriptionCount > before);
  return Object.assign(sub, { items: () => sub.events.map((e) => e.data[field] as T) });
}

const needs = (variables: Record<string, unknown> = {}) =>
  subscribe<Need>(Q.batchNeeded, 'batchNeeded', variables);
const endings = (variables: Record<string, unknown> = {}) =>
  subscribe<Ended>(ENDED, 'streamSessionEnded', variables);

describe('stalled batches', () => {
  serveEach({ batchTimeout: BATCH_TIMEOUT, clientTimeout: NEVER, idleTimeout: NEVER });

  it('announces STALLED for the claimed batch once BATCH_TIMEOUT passes, and again each further timeout', async () => {
    const heard = await needs();
    await create('s');
    await position('s', 'a', 3);
    // A claim of less than batchSize: the stall asks for exactly the claimed range again.
    expect((await claim('s', 0, 0, 9)).errors).toBeUndefined();

    expect(await advanceAndSweep(BATCH_TIMEOUT - 1)).toEqual(nothing);
    expect(await advanceAndSweep(1)).toEqual({ ...nothing, batchesStalled: 1 });
    await heard.waitFor(2);
    expect(heard.items()[1]).toEqual({
      streamSession: { id: 's', furthestSegment: 3 },
      reason: 'STALLED',
      batchNumber: 0,
      startSegment: 0,
      endSegment: 9,
      videoSourcePath: '/v/s.mp4',
      videoStartOffset: 0,
      furthestSegment: 3,
      // v2: the stalled batch again, in its renditions: the FIRST_BATCH it was claimed
      // for was announced in the session's qualities (the default, all three).
      qualities: ['Q1080P', 'Q720P', 'Q480P'],
    });
    const stalled = await view('s');
    expect(stalled.currentBatch).toMatchObject({ batchNumber: 0, isComplete: false });

    // Nobody re-claims it: announced again one timeout later, and only then.
    expect(await advanceAndSweep(BATCH_TIMEOUT - 1)).toEqual(nothing);
    expect(await advanceAndSweep(1)).toEqual({ ...nothing, batchesStalled: 1 });
    await heard.waitFor(3);
    expect(heard.items()[2]).toMatchObject({ reason: 'STALLED', batchNumber: 0, endSegment: 9 });

    // A fence: the next event is another session's, so nothing else was sent for 's'.
    await create('fence');
    await heard.waitFor(4);
    expect(heard.items().map((n) => [n.streamSession.id, n.reason, n.batchNumber])).toEqual([
      ['s', 'FIRST_BATCH', 0],
      ['s', 'STALLED', 0],
      ['s', 'STALLED', 0],
      ['fence', 'FIRST_BATCH', 0],
    ]);

    // An encoder that connects now is told of the stall among the pending needs.
    const late = await needs({ streamSessionId: 's' });
    await late.waitFor(1);
    expect(late.items()[0]).toMatchObject({ reason: 'STALLED', batchNumber: 0, startSegment: 0 });
  });

  it('a second claim of the running batch is CONFLICT until it stalls; then the same number re-claims it', async () => {
    await create('s');
    expect((await claim('s', 0, 0, 19)).errors).toBeUndefined();
    expect(errorCode(await claim('s', 0, 0, 19))).toBe('CONFLICT');
    // v2: the next number may be claimed ahead of need, but not over the running batch.
    expect(errorCode(await claim('s', 1, 10, 29))).toBe('CONFLICT');

    expect(await advanceAndSweep(BATCH_TIMEOUT / 2)).toEqual(nothing);
    expect(errorCode(await claim('s', 0, 0, 19))).toBe('CONFLICT');
    expect(await advanceAndSweep(BATCH_TIMEOUT / 2)).toEqual({ ...nothing, batchesStalled: 1 });

    // Stalled: the same number is the one to claim; the next one still is not.
    expect(errorCode(await claim('s', 1, 20, 39))).toBe('CONFLICT');
    clock.advance(BATCH_TIMEOUT / 4);
    const reclaimed = await claim('s', 0, 0, 19);
    expect(reclaimed.errors).toBeUndefined();
    expect(reclaimed.data?.setCurrentBatch).toMatchObject({
      batchNumber: 0,
      isComplete: false,
      generationStarted: iso(),
      generationEnded: null,
    });
    // The re-claim is running, not stalled: a third encoder loses the race.
    expect(errorCode(await claim('s', 0, 0, 19))).toBe('CONFLICT');

    // The re-claim's own timeout counts from the re-claim, not from the stall.
    expect(await advanceAndSweep((BATCH_TIMEOUT * 3) / 4)).toEqual(nothing);
    expect(await advanceAndSweep(BATCH_TIMEOUT / 4 - 1)).toEqual(nothing);
    expect(await advanceAndSweep(1)).toEqual({ ...nothing, batchesStalled: 1 });
  });

  it('accepts a late completeBatch from the first claimant, and then stops announcing the stall', async () => {
    const heard = await needs({ streamSessionId: 's' });
    await create('s');
    await position('s', 'a', 2);
    expect((await claim('s', 0, 0, 19)).errors).toBeUndefined();
    expect(await advanceAndSweep(BATCH_TIMEOUT)).toEqual({ ...nothing, batchesStalled: 1 });
    await heard.waitFor(2);

    clock.advance(1_000);
    const late = await complete('s', 0);
    expect(late.errors).toBeUndefined();
    expect(late.data?.completeBatch).toMatchObject({
      batchNumber: 0,
      isComplete: true,
      generationEnded: iso(),
    });
    expect((await view('s')).currentBatch).toMatchObject({ batchNumber: 0, isComplete: true });
    // Complete: no more stalls, and the next batch is the one to claim.
    expect(await advanceAndSweep(BATCH_TIMEOUT * 3)).toEqual(nothing);
    expect(errorCode(await claim('s', 0, 0, 19))).toBe('CONFLICT');
    expect((await claim('s', 1, 20, 39)).errors).toBeUndefined();
    expect(heard.items().map((n) => n.reason)).toEqual(['FIRST_BATCH', 'STALLED']);
  });

  it('accepts a late completeBatch from the first claimant after a second encoder re-claimed the batch', async () => {
    await create('s');
    expect((await claim('s', 0, 0, 19)).errors).toBeUndefined();
    expect(await advanceAndSweep(BATCH_TIMEOUT)).toEqual({ ...nothing, batchesStalled: 1 });
    expect((await claim('s', 0, 0, 19)).errors).toBeUndefined(); // encoder B

    clock.advance(5_000);
    const first = await complete('s', 0); // encoder A, late
    expect(first.errors).toBeUndefined();
    expect(first.data?.completeBatch).toMatchObject({ isComplete: true, generationEnded: iso() });
    clock.advance(5_000);
    const second = await complete('s', 0); // encoder B: idempotent
    expect(second.errors).toBeUndefined();
    expect(second.data?.completeBatch).toEqual(first.data?.completeBatch);
    expect(await advanceAndSweep(BATCH_TIMEOUT * 2)).toEqual(nothing);
  });
});

describe('renewed claims (issue 13: a slow but live encoder is not STALLED)', () => {
  serveEach({ batchTimeout: BATCH_TIMEOUT, clientTimeout: NEVER, idleTimeout: NEVER });

  const RENEW = `mutation Renew($streamSessionId: ID!, $batchNumber: Int!) {
    renewBatchClaim(streamSessionId: $streamSessionId, batchNumber: $batchNumber) {
      batchNumber startSegment endSegment isComplete generationStarted
    }
  }`;
  const renew = (streamSessionId: string, batchNumber: number) =>
    server.gql(RENEW, { streamSessionId, batchNumber });
  const stalledBatches = async (id: string): Promise<number[]> =>
    (
      await ok('query($id: ID!) { streamSession(id: $id) { batches { batchNumber isStalled } } }', {
        id,
      })
    ).streamSession.batches
      .filter((b: { isStalled: boolean }) => b.isStalled)
      .map((b: { batchNumber: number }) => b.batchNumber);

  it('a renewed batch stalls BATCH_TIMEOUT after its last renewal, not after its claim', async () => {
    const heard = await needs({ streamSessionId: 's' });
    await create('s');
    await position('s', 'a', 3);
    expect((await claim('s', 0, 0, 9)).errors).toBeUndefined();
    const claimedAt = iso();

    expect(await advanceAndSweep(BATCH_TIMEOUT - 1)).toEqual(nothing);
    const renewed = await renew('s', 0);
    expect(renewed.errors).toBeUndefined();
    // The batch as it was: a renewal changes nothing a reader sees.
    expect(renewed.data?.renewBatchClaim).toEqual({
      batchNumber: 0,
      startSegment: 0,
      endSegment: 9,
      isComplete: false,
      generationStarted: claimedAt,
    });
    // Past the claim's own deadline: not stalled.
    expect(await advanceAndSweep(1)).toEqual(nothing);
    expect(await advanceAndSweep(BATCH_TIMEOUT - 2)).toEqual(nothing);
    // Renewed again, then silent: it stalls one timeout after that renewal.
    expect((await renew('s', 0)).errors).toBeUndefined();
    expect(await advanceAndSweep(BATCH_TIMEOUT - 1)).toEqual(nothing);
    expect(await advanceAndSweep(1)).toEqual({ ...nothing, batchesStalled: 1 });
    await heard.waitFor(2);
    expect(heard.items().map((n) => n.reason)).toEqual(['FIRST_BATCH', 'STALLED']);
    expect(await stalledBatches('s')).toEqual([0]);
  });

  it('is CONFLICT once the batch stalled, is complete, or is no batch; NOT_FOUND for an unknown session; and changes nothing', async () => {
    await create('s');
    expect((await claim('s', 0, 0, 9)).errors).toBeUndefined();
    expect(errorCode(await renew('s', 3))).toBe('CONFLICT');
    expect(errorCode(await renew('nobody', 0))).toBe('NOT_FOUND');

    expect(await advanceAndSweep(BATCH_TIMEOUT)).toEqual({ ...nothing, batchesStalled: 1 });
    const stalled = await renew('s', 0);
    expect(errorCode(stalled)).toBe('CONFLICT');
    expect(stalled.errors?.[0]?.message).toMatch(/stalled/);
    // Refused: the stall's own clock runs on (announced again a timeout after the stall).
    expect(await advanceAndSweep(BATCH_TIMEOUT)).toEqual({ ...nothing, batchesStalled: 1 });

    // Re-claimed, renewable again; complete, not.
    expect((await claim('s', 0, 0, 9)).errors).toBeUndefined();
    expect((await renew('s', 0)).errors).toBeUndefined();
    expect((await complete('s', 0)).errors).toBeUndefined();
    const done = await renew('s', 0);
    expect(errorCode(done)).toBe('CONFLICT');
    expect(done.errors?.[0]?.message).toMatch(/complete/);
    expect(await advanceAndSweep(BATCH_TIMEOUT * 2)).toEqual(nothing);
  });

  it('renewals of many batches at once each move only their own deadline', async () => {
    await create('s', { batchSize: 5 });
    await create('t', { batchSize: 5 });
    expect((await claim('s', 0, 0, 4)).errors).toBeUndefined();
    expect((await claim('t', 0, 0, 4)).errors).toBeUndefined();
    expect(await advanceAndSweep(BATCH_TIMEOUT / 2)).toEqual(nothing);
    // 20 renewals of s's batch in parallel: all succeed; t's is never renewed.
    const replies = await Promise.all(Array.from({ length: 20 }, () => renew('s', 0)));
    expect(replies.map(errorCode)).toEqual(Array(20).fill(undefined));
    expect(await advanceAndSweep(BATCH_TIMEOUT / 2)).toEqual({ ...nothing, batchesStalled: 1 });
    expect(await stalledBatches('t')).toEqual([0]);
    expect(await stalledBatches('s')).toEqual([]);
    expect(await advanceAndSweep(BATCH_TIMEOUT / 2)).toEqual({ ...nothing, batchesStalled: 1 });
    expect(await stalledBatches('s')).toEqual([0]);
  });
});

describe('client expiry', () => {
  serveEach({ batchTimeout: NEVER, clientTimeout: CLIENT_TIMEOUT, idleTimeout: NEVER });

  it('a client silent for CLIENT_TIMEOUT leaves its session; the furthest one leaving lowers furthestSegment', async () => {
    await create('s');
    await position('s', 'far', 12);
    clock.advance(10_000);
    await position('s', 'near', 5);

    expect(await advanceAndSweep(CLIENT_TIMEOUT - 10_000 - 1)).toEqual(nothing);
    expect((await view('s')).furthestSegment).toBe(12);
    expect(await advanceAndSweep(1)).toEqual({ ...nothing, clientsExpired: 1 });
    const after = await view('s');
    expect(after.clientPositions.map((c: any) => c.sessionId)).toEqual(['near']);
    expect(after.furthestSegment).toBe(5);
    expect(after.slowestSegment).toBe(5);
    expect(after.updatedAt).toBe(iso());
    // It is gone as if removed.
    expect(await removeClient('s', 'far')).toBe(false);

    expect(await advanceAndSweep(10_000)).toEqual({ ...nothing, clientsExpired: 1 });
    const empty = await view('s');
    expect(empty.clientPositions).toEqual([]);
    expect(empty.furthestSegment).toBeNull();
    expect(empty.slowestSegment).toBeNull();
  });

  it('re-evaluates furthestSegment and the need exactly as removeClient does', async () => {
    const heard = await needs();
    // x loses its clients by removeClient, y by expiry; otherwise they are twins.
    for (const id of ['x', 'y']) {
      await create(id);
      expect((await claim(id, 0, 0, 19)).errors).toBeUndefined();
      expect((await complete(id, 0)).errors).toBeUndefined();
      await position(id, 'far', 30, 'Q1080P');
    }
    clock.advance(1_000);
    for (const id of ['x', 'y']) await position(id, 'near', 16, 'Q480P');
    // Past the end of batch 0: SEEK_AHEAD from the far client.
    for (const id of ['x', 'y']) {
      expect((await view(id)).shouldGenerateNextBatch).toBe(true);
    }

    // The far client leaves: x by removeClient, y by expiry at the same instant.
    clock.advance(CLIENT_TIMEOUT - 1_000 - 1);
    expect(await removeClient('x', 'far')).toBe(true);
    expect(await advanceAndSweep(1)).toEqual({ ...nothing, clientsExpired: 1 });
    const [x1, y1] = [await view('x'), await view('y')];
    expect(y1.furthestSegment).toBe(16);
    expect(strip(y1)).toEqual(strip(x1));
    // v2: near (480p, within threshold of batch 0's end) was served at once by its
    // own need, batch 2 after far's SEEK_AHEAD 1 (1080p); far leaving withdraws 1.
    await heard.waitFor(6);
    const perSession = (id: string) =>
      heard
        .items()
        .filter((n) => n.streamSession.id === id)
        .map(({ streamSession: _s, videoSourcePath: _v, ...need }) => need);
    expect(perSession('y')).toEqual(perSession('x'));
    expect(perSession('y').map((n) => [n.reason, n.batchNumber, n.startSegment])).toEqual([
      ['FIRST_BATCH', 0, 0],
      ['SEEK_AHEAD', 1, 30],
      ['APPROACHING_END', 2, 20],
    ]);
    expect(perSession('y')[2]).toMatchObject({ furthestSegment: 30, qualities: ['Q480P'] });
    for (const id of ['x', 'y']) {
      const pending = await server.app.store.pendingNeeds(id);
      expect(pending.map((n) => [n.reason, n.batchNumber, n.furthestSegment])).toEqual([
        ['APPROACHING_END', 2, 16],
      ]);
    }

    // The last client leaves: the need disappears.
    expect(await removeClient('x', 'near')).toBe(true);
    expect(await advanceAndSweep(1_000)).toEqual({ ...nothing, clientsExpired: 1 });
    const [x2, y2] = [await view('x'), await view('y')];
    expect(y2).toMatchObject({ furthestSegment: null, shouldGenerateNextBatch: false });
    expect(strip(y2)).toEqual(strip(x2));
    expect(await server.app.store.pendingNeeds('y')).toEqual([]);
    expect(await server.app.store.pendingNeeds('x')).toEqual([]);
  });
});

/** A view without what differs between two twin sessions. */
function strip(view: any) {
  const {
    id: _id,
    videoSourcePath: _path,
    currentBatch,
    createdAt: _c,
    updatedAt: _u,
    ...rest
  } = view;
  const {
    videoSourcePath: _bp,
    generationStarted: _gs,
    generationEnded: _ge,
    ...batch
  } = currentBatch ?? {};
  return { ...rest, currentBatch: batch };
}

describe('paused players', () => {
  serveEach({ batchTimeout: NEVER, clientTimeout: CLIENT_TIMEOUT, idleTimeout: NEVER });

  it('resending the same position is a heartbeat that keeps the client', async () => {
    await create('s');
    await position('s', 'paused', 7);
    await position('s', 'gone', 7);
    clock.advance(CLIENT_TIMEOUT - 1_000);
    const beat = await position('s', 'paused', 7);
    expect(beat.updateClientPosition).toEqual({
      sessionId: 'paused',
      segmentNumber: 7,
      quality: 'Q720P',
      lastUpdated: iso(),
    });

    expect(await advanceAndSweep(1_000)).toEqual({ ...nothing, clientsExpired: 1 });
    expect((await view('s')).clientPositions.map((c: any) => c.sessionId)).toEqual(['paused']);
    // Its own timeout counts from the heartbeat.
    expect(await advanceAndSweep(CLIENT_TIMEOUT - 1_000 - 1)).toEqual(nothing);
    expect(await advanceAndSweep(1)).toEqual({ ...nothing, clientsExpired: 1 });
    expect((await view('s')).clientPositions).toEqual([]);
  });

  it('a heartbeat at the same segment does not announce the need again', async () => {
    const heard = await needs();
    await create('s');
    expect((await claim('s', 0, 0, 19)).errors).toBeUndefined();
    expect((await complete('s', 0)).errors).toBeUndefined();
    await position('s', 'a', 16);
    await heard.waitFor(2);
    for (let beat = 0; beat < 5; beat++) {
      expect(await advanceAndSweep(CLIENT_TIMEOUT / 2)).toEqual(nothing);
      await position('s', 'a', 16);
    }
    await create('fence');
    await heard.waitFor(3);
    expect(heard.items().map((n) => [n.streamSession.id, n.reason])).toEqual([
      ['s', 'FIRST_BATCH'],
      ['s', 'APPROACHING_END'],
      ['fence', 'FIRST_BATCH'],
    ]);
    expect((await view('s')).clientPositions).toHaveLength(1);
  });
});

describe('idle sessions', () => {
  serveEach({ batchTimeout: NEVER, clientTimeout: CLIENT_TIMEOUT, idleTimeout: IDLE_TIMEOUT });

  it('a session without clients for SESSION_IDLE_TIMEOUT ends, reason IDLE', async () => {
    const ended = await endings();
    await create('s');
    expect(await advanceAndSweep(IDLE_TIMEOUT - 1)).toEqual(nothing);
    expect(await view('s')).not.toBeNull();
    expect(await advanceAndSweep(1)).toEqual({ ...nothing, sessionsEnded: 1 });
    await ended.waitFor(1);
    expect(ended.items()).toEqual([{ id: 's', reason: 'IDLE', endedAt: iso() }]);

    // Ended as by endStreamSession: gone, unknown to mutations, its id free.
    expect(await view('s')).toBeNull();
    const update = await server.gql(Q.update, {
      input: { streamSessionId: 's', sessionId: 'a', segmentNumber: 1, quality: 'Q480P' },
    });
    expect(errorCode(update)).toBe('NOT_FOUND');
    expect((await ok(Q.end, { id: 's' })).endStreamSession).toBe(false);
    await create('s');
  });

  it('the idle time counts from when the last client left, by removeClient or by expiry', async () => {
    const ended = await endings();
    await create('removed');
    await create('expired');
    await create('empty');
    await position('removed', 'a', 1);
    await position('expired', 'b', 1);
    clock.advance(20_000);
    await position('removed', 'a', 2);
    // b falls silent at 0 and expires at CLIENT_TIMEOUT (30 s).
    expect(await advanceAndSweep(CLIENT_TIMEOUT - 20_000)).toEqual({
      ...nothing,
      clientsExpired: 1,
    });
    clock.advance(10_000); // 40 s
    expect(await removeClient('removed', 'a')).toBe(true);

    // 'empty' has been idle since 0, 'expired' since 30 s, 'removed' since 40 s.
    expect(await advanceAndSweep(IDLE_TIMEOUT - 40_000 - 1)).toEqual(nothing);
    expect(await advanceAndSweep(1)).toEqual({ ...nothing, sessionsEnded: 1 });
    expect(await advanceAndSweep(30_000 - 1)).toEqual(nothing);
    expect(await advanceAndSweep(1)).toEqual({ ...nothing, sessionsEnded: 1 });
    expect(await advanceAndSweep(10_000 - 1)).toEqual(nothing);
    expect(await advanceAndSweep(1)).toEqual({ ...nothing, sessionsEnded: 1 });
    await ended.waitFor(3);
    expect(ended.items().map((e) => [e.id, e.reason])).toEqual([
      ['empty', 'IDLE'],
      ['expired', 'IDLE'],
      ['removed', 'IDLE'],
    ]);
  });

  it('a client joining an idle session keeps it', async () => {
    await create('s');
    clock.advance(IDLE_TIMEOUT - 1);
    await position('s', 'a', 0);
    for (let t = 0; t < 4; t++) {
      expect(await advanceAndSweep(CLIENT_TIMEOUT / 2)).toEqual(nothing);
      await position('s', 'a', 0);
    }
    expect(await view('s')).not.toBeNull();
  });

  it('endStreamSession announces ENDED; the filter picks one session; a new subscriber hears no earlier ending', async () => {
    const all = await endings();
    const client = server.wsClient();
    const before = server.app.coordinator.subscriptionCount;
    const onlyX = wsSubscribe<any>(client, ENDED, { id: 'x' });
    await eventually(() => server.app.coordinator.subscriptionCount > before);

    await create('x');
    await create('y');
    expect((await ok(Q.end, { id: 'y' })).endStreamSession).toBe(true);
    const yEndedAt = iso();
    clock.advance(1);
    expect((await ok(Q.end, { id: 'x' })).endStreamSession).toBe(true);
    expect((await ok(Q.end, { id: 'x' })).endStreamSession).toBe(false);
    await all.waitFor(2);
    expect(all.items()).toEqual([
      { id: 'y', reason: 'ENDED', endedAt: yEndedAt },
      { id: 'x', reason: 'ENDED', endedAt: iso() },
    ]);
    await onlyX.waitFor(1);
    expect(onlyX.events[0].data.streamSessionEnded).toEqual({
      id: 'x',
      reason: 'ENDED',
      endedAt: iso(),
    });

    // Subscribed after x and y ended: its first event is the next ending.
    const late = await endings();
    await create('z');
    expect(await advanceAndSweep(IDLE_TIMEOUT)).toEqual({ ...nothing, sessionsEnded: 1 });
    await late.waitFor(1);
    expect(late.items()[0]).toMatchObject({ id: 'z', reason: 'IDLE' });

    // The filtered subscriber heard neither y nor z: its next event is x again.
    await create('x');
    await ok(Q.end, { id: 'x' });
    await onlyX.waitFor(2);
    expect(onlyX.events.map((e) => e.data.streamSessionEnded.id)).toEqual(['x', 'x']);
    await all.waitFor(4);
    expect(all.items().map((e) => [e.id, e.reason])).toEqual([
      ['y', 'ENDED'],
      ['x', 'ENDED'],
      ['z', 'IDLE'],
      ['x', 'ENDED'],
    ]);
    await late.waitFor(2);
    expect(late.items().map((e) => e.id)).toEqual(['z', 'x']);
  });
});

describe('timers that scale', () => {
  beforeEach(() => {
    clock = new ManualClock();
  });
  const timeouts = { batchTimeout: 30_000, clientTimeout: 30_000, idleTimeout: 30_000 };
  const defaults = { segmentDuration: 6, batchSize: 20, threshold: 5, qualities: QUALITIES };

  function standalone() {
    const events = new LocalEventBus();
    const store = new MemoryStore(timeouts, events);
    const coordinator = new BatchCoordinator({
      store,
      events,
      defaults,
      clock,
    });
    return { store, coordinator };
  }

  it('a sweep over 100,000 clients of which 10 are due acts on those 10 and touches nothing else', async () => {
    const { store, coordinator } = standalone();
    const busy = Array.from({ length: 100 }, (_, i) => `busy-${i}`);
    for (const id of busy) await coordinator.createStreamSession({ id, videoSourcePath: '/v.mp4' });
    // Due at the sweep: 10 clients, 10 claims and 10 empty sessions from t0.
    for (let i = 0; i < 10; i++) {
      await coordinator.updateClientPosition({
        streamSessionId: busy[i]!,
        sessionId: 'old',
        segmentNumber: 1,
        quality: '720p',
      });
      await coordinator.setCurrentBatch({
        streamSessionId: busy[i]!,
        batchNumber: 0,
        startSegment: 0,
        endSegment: 19,
        videoSourcePath: '/v.mp4',
        videoStartOffset: 0,
      });
      await coordinator.createStreamSession({ id: `empty-old-${i}`, videoSourcePath: '/v.mp4' });
    }
    clock.advance(1_000);
    // Not due: 99,990 clients, 90 claims and 990 empty sessions a second younger.
    for (let i = 0; i < 99_990; i++) {
      await coordinator.updateClientPosition({
        streamSessionId: busy[i % busy.length]!,
        sessionId: `c${i}`,
        segmentNumber: i % 50,
        quality: '480p',
      });
    }
    for (let i = 10; i < busy.length; i++) {
      await coordinator.setCurrentBatch({
        streamSessionId: busy[i]!,
        batchNumber: 0,
        startSegment: 0,
        endSegment: 19,
        videoSourcePath: '/v.mp4',
        videoStartOffset: 0,
      });
    }
    for (let i = 0; i < 990; i++) {
      await coordinator.createStreamSession({ id: `empty-new-${i}`, videoSourcePath: '/v.mp4' });
    }
    expect(store.clientCount).toBe(100_000);

    // How many entries of each deadline index the sweep reads (white box: the
    // memory store's indexes, oldest first). Only the due ones and one more.
    const reads = ['clientsByAge', 'claimDeadlines', 'idleSince'].map((name) =>
      countReads(name, (store as any)[name]),
    );
    const dueWork = vi.spyOn(store, 'dueWork');
    const expireClient = vi.spyOn(store, 'expireClient');
    const stallBatch = vi.spyOn(store, 'stallBatch');
    const endIdleSession = vi.spyOn(store, 'endIdleSession');
    clock.advance(timeouts.clientTimeout - 1_000);
    const report = await coordinator.sweep();

    expect(report).toEqual({ clientsExpired: 10, batchesStalled: 10, sessionsEnded: 10 });
    const due = (await dueWork.mock.results[0]!.value) as DueWork[];
    expect(due).toHaveLength(30);
    expect(expireClient).toHaveBeenCalledTimes(10);
    expect(stallBatch).toHaveBeenCalledTimes(10);
    expect(endIdleSession).toHaveBeenCalledTimes(10);
    expect(new Set(expireClient.mock.calls.map(([id, client]) => `${id}/${client}`))).toEqual(
      new Set(busy.slice(0, 10).map((id) => `${id}/old`)),
    );
    expect(store.clientCount).toBe(99_990);
    expect(store.size).toBe(100 + 990);
    for (const read of reads) expect(read.count(), read.name).toBeLessThanOrEqual(11);

    // Nothing is due any more: the next sweep finds nothing and acts on nothing.
    expect(await coordinator.sweep()).toEqual(nothing);
    expect(await dueWork.mock.results[1]!.value).toEqual([]);
    expect(expireClient).toHaveBeenCalledTimes(10);
  });

  it('holds no timer per client, claim or session: one sweeper for everything', async () => {
    // Referenced timers as the process sees them; the sweeper itself is unref'd.
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const base = timers();
    const probe = setTimeout(() => {}, 60_000);
    expect(timers()).toBe(base + 1); // the count does see a timer when there is one
    clearTimeout(probe);

    const { store, coordinator } = standalone();
    const setTimeoutSpy = vi.spyOn(globalThis, 'setTimeout');
    const setIntervalSpy = vi.spyOn(globalThis, 'setInterval');
    try {
      coordinator.startSweeper(1_000);
      coordinator.startSweeper(1_000);
      expect(setIntervalSpy).toHaveBeenCalledTimes(1);
      const before = timers();
      const scheduled = () => setTimeoutSpy.mock.calls.length + setIntervalSpy.mock.calls.length;
      const scheduledBefore = scheduled();

      for (let s = 0; s < 50; s++) {
        const id = `s${s}`;
        await coordinator.createStreamSession({ id, videoSourcePath: '/v.mp4' });
        await coordinator.setCurrentBatch({
          streamSessionId: id,
          batchNumber: 0,
          startSegment: 0,
          endSegment: 19,
          videoSourcePath: '/v.mp4',
          videoStartOffset: 0,
        });
        for (let c = 0; c < 100; c++) {
          await coordinator.updateClientPosition({
            streamSessionId: id,
            sessionId: `c${c}`,
            segmentNumber: c,
            quality: '720p',
          });
        }
      }
      for (let s = 0; s < 1_000; s++) {
        await coordinator.createStreamSession({ id: `idle${s}`, videoSourcePath: '/v.mp4' });
      }
      expect(store.clientCount).toBe(5_000);
      expect(store.size).toBe(1_050);
      // A timer per client, claim or session would add thousands; allow for unrelated noise.
      expect(scheduled() - scheduledBefore).toBeLessThan(5);
      expect(timers() - before).toBeLessThan(5);
    } finally {
      setTimeoutSpy.mockRestore();
      setIntervalSpy.mockRestore();
      await coordinator.close();
    }
  });
});

/** Counts the entries read from a Set or Map by iterating it. */
function countReads(name: string, index: unknown) {
  expect(index, `the store's ${name} index`).toBeInstanceOf(Object);
  const iterable = index as { [Symbol.iterator](): Iterator<unknown> };
  const original = iterable[Symbol.iterator].bind(iterable);
  let count = 0;
  iterable[Symbol.iterator] = function* () {
    for (const entry of { [Symbol.iterator]: original }) {
      count++;
      yield entry;
    }
  };
  return { name, count: () => count };
}

describe('the running sweeper', () => {
  it('acts on real time in the running server: stall, expiry and idle ending', async () => {
    const live = await startTestServer({ batchTimeout: 50, clientTimeout: 50, idleTimeout: 1_000 });
    try {
      const before = live.app.coordinator.subscriptionCount;
      const heard = sseSubscribe<any>(live.url, Q.batchNeeded, { streamSessionId: 'live' });
      const ended = sseSubscribe<any>(live.url, ENDED, { id: 'live' });
      await Promise.all([heard.ready, ended.ready]);
      await eventually(() => live.app.coordinator.subscriptionCount === before + 2);
      const created = await live.gql(Q.create, {
        input: { id: 'live', videoSourcePath: '/live.mp4' },
      });
      expect(created.errors).toBeUndefined();
      const moved = await live.gql(Q.update, {
        input: { streamSessionId: 'live', sessionId: 'a', segmentNumber: 4, quality: 'Q480P' },
      });
      expect(moved.errors).toBeUndefined();
      const claimed = await live.gql(Q.claim, {
        input: {
          streamSessionId: 'live',
          batchNumber: 0,
          startSegment: 0,
          endSegment: 19,
          videoSourcePath: '/live.mp4',
          videoStartOffset: 0,
        },
      });
      expect(claimed.errors).toBeUndefined();

      await heard.waitFor(2);
      expect(heard.events[1].data.batchNeeded).toMatchObject({ reason: 'STALLED', batchNumber: 0 });
      await eventually(async () => {
        const r = await live.gql(Q.session, { id: 'live' });
        return r.data?.streamSession?.clientPositions.length === 0;
      });
      await ended.waitFor(1);
      expect(ended.events[0].data.streamSessionEnded).toMatchObject({ id: 'live', reason: 'IDLE' });
      expect((await live.gql(Q.session, { id: 'live' })).data?.streamSession).toBeNull();
    } finally {
      await live.stop();
    }
  });
});

describe('configuration of the timeouts', () => {
  it('reads durations as seconds with decimals, kept in milliseconds', () => {
    const config = loadConfig({
      BATCH_TIMEOUT: '0.5',
      CLIENT_TIMEOUT: '2.25',
      SESSION_IDLE_TIMEOUT: '600',
      WS_PING_INTERVAL: '0.1',
      WS_CONNECTION_INIT_TIMEOUT: '1.5',
      SHUTDOWN_TIMEOUT: ' 7 ',
    });
    expect(config).toMatchObject({
      batchTimeout: 500,
      clientTimeout: 2_250,
      idleTimeout: 600_000,
      wsPingInterval: 100,
      wsConnectionInitTimeout: 1_500,
      shutdownTimeout: 7_000,
    });
    expect(defaultConfig).toMatchObject({
      batchTimeout: 120_000,
      clientTimeout: 30_000,
      idleTimeout: 300_000,
      snapshotPath: null,
    });
    expect(loadConfig({ SNAPSHOT_PATH: '/tmp/x.json' }).snapshotPath).toBe('/tmp/x.json');
    // The sweeper keeps up with a half-second timeout.
    expect(sweepInterval(config)).toBe(50);
    expect(sweepInterval(defaultConfig)).toBe(1_000);
  });

  it.each([
    ['BATCH_TIMEOUT', 'abc'],
    ['BATCH_TIMEOUT', '-1'],
    ['BATCH_TIMEOUT', '0'],
    ['BATCH_TIMEOUT', '1e3'],
    ['CLIENT_TIMEOUT', '30s'],
    ['CLIENT_TIMEOUT', '.5'],
    ['SESSION_IDLE_TIMEOUT', '1,5'],
    ['SESSION_IDLE_TIMEOUT', '99999999'],
    ['WS_PING_INTERVAL', 'Infinity'],
    ['SHUTDOWN_TIMEOUT', '61'],
  ])('rejects %s=%s naming the variable', (name, value) => {
    let error: unknown;
    try {
      loadConfig({ [name]: value });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toHaveLength(1);
    expect((error as ConfigError).problems[0]).toContain(`${name}='${value}'`);
    expect((error as Error).message).toContain(name);
  });
});
