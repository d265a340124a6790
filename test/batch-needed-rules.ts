/**
 * The batchNeeded rules of the contract, as tests that run over any
 * transport: sse.test.ts and websocket.test.ts register them with their own
 * way to subscribe. Mutations go over HTTP; only the subscription differs.
 *
 * "Nothing fired" is checked by sequence: a later change with a known event
 * is the marker, and the events up to it must be exactly the expected ones.
 */
import { expect, it } from 'vitest';
import {
  type Collected,
  eventually,
  type GraphQLResponse,
  type Need,
  sessionDriver,
  type TestServer,
} from './fixtures.js';

export type NeedEvent = GraphQLResponse<{ batchNeeded: Need }>;

export interface Transport {
  /** Names the ids this transport's tests create. */
  readonly name: string;
  server(): TestServer;
  /** Subscribes to batchNeeded (all sessions, or the one named). */
  subscribe(streamSessionId?: string): Promise<Collected<NeedEvent>>;
}

/** The need of one event; fails on an error payload. */
export function needOf(event: NeedEvent): Need {
  expect(event.errors, JSON.stringify(event.errors)).toBeUndefined();
  return event.data?.batchNeeded as Need;
}

/** "REASON batch@start", to compare sequences at a glance. */
export const brief = (event: NeedEvent) => {
  const need = needOf(event);
  return `${need.reason} ${need.batchNumber}@${need.startSegment}`;
};

/** Registers the batchNeeded rules for one transport (call inside a describe). */
export function batchNeededRules(t: Transport) {
  const s = sessionDriver(t.server);
  let counter = 0;
  const uid = (prefix: string) =>
    `${t.name}-${prefix}-${++counter}-${Math.random().toString(36).slice(2, 8)}`;

  /** A session (batchSize 10, threshold 3, segmentDuration 6) whose batch 0 (0-9) is complete. */
  async function withCompleteFirstBatch(id: string, sub: Collected<NeedEvent>) {
    await s.create(id, { batchSize: 10, threshold: 3, segmentDuration: 6 });
    await sub.waitFor(1);
    await s.claim(id, 0, 0, 9);
    await s.complete(id, 0);
  }

  it('FIRST_BATCH on create: batch 0 from startSegment, no clients yet', async () => {
    const id = uid('first');
    const sub = await t.subscribe(id);
    await s.create(id, {
      videoSourcePath: '/videos/first.mkv',
      startSegment: 40,
      segmentDuration: 4,
      batchSize: 10,
      threshold: 3,
    });
    const [event] = await sub.waitFor(1);
    expect(needOf(event!)).toEqual({
      streamSession: { id, furthestSegment: null },
      reason: 'FIRST_BATCH',
      batchNumber: 0,
      startSegment: 40,
      endSegment: 49,
      videoSourcePath: '/videos/first.mkv',
      videoStartOffset: 160,
      furthestSegment: null,
      // v2: the session's qualities (the server's default: all three), never none.
      qualities: ['Q1080P', 'Q720P', 'Q480P'],
    });
    sub.stop();
  });

  it('FIRST_BATCH with the server defaults: segments 0-19 at offset 0', async () => {
    const id = uid('first-default');
    const sub = await t.subscribe(id);
    await s.create(id);
    const [event] = await sub.waitFor(1);
    expect(needOf(event!)).toMatchObject({
      reason: 'FIRST_BATCH',
      batchNumber: 0,
      startSegment: 0,
      endSegment: 19,
      videoStartOffset: 0,
    });
    sub.stop();
  });

  it('APPROACHING_END when endSegment - furthest <= threshold, with the next batch after it', async () => {
    const id = uid('approach');
    const sub = await t.subscribe(id);
    await withCompleteFirstBatch(id, sub);
    await s.move(id, 'p1', 5, 'Q480P'); // 9 - 5 = 4 > 3: not yet
    await s.move(id, 'p1', 6, 'Q480P'); // 9 - 6 = 3: needed
    const events = await sub.waitFor(2);
    expect(events.map(brief)).toEqual(['FIRST_BATCH 0@0', 'APPROACHING_END 1@10']);
    expect(needOf(events[1]!)).toEqual({
      streamSession: { id, furthestSegment: 6 },
      reason: 'APPROACHING_END',
      batchNumber: 1,
      startSegment: 10,
      endSegment: 19,
      videoSourcePath: '/videos/film.mp4',
      videoStartOffset: 60,
      furthestSegment: 6,
      qualities: ['Q480P'],
    });

    // The next cycle: batch 1 (10-19), then batch 2 from 20.
    await s.claim(id, 1, 10, 19);
    await s.complete(id, 1); // 19 - 6 = 13: not yet
    await s.move(id, 'p1', 16, 'Q480P');
    const more = await sub.waitFor(3);
    expect(more.map(brief)).toEqual([
      'FIRST_BATCH 0@0',
      'APPROACHING_END 1@10',
      'APPROACHING_END 2@20',
    ]);
    expect(needOf(more[2]!)).toMatchObject({
      endSegment: 29,
      videoStartOffset: 120,
      furthestSegment: 16,
    });
    sub.stop();
  });

  it('fires once per need: more updates of the same need do not fire again', async () => {
    const id = uid('once');
    const sub = await t.subscribe(id);
    await s.create(id, { batchSize: 10, threshold: 3 });
    await sub.waitFor(1);
    // FIRST_BATCH is pending: players joining and moving do not repeat it.
    await s.move(id, 'p1', 1);
    await s.move(id, 'p2', 2, 'Q1080P');
    await s.move(id, 'p1', 3);
    await s.claim(id, 0, 0, 9);
    await s.complete(id, 0); // 9 - 3 = 6 > 3: no need
    await s.move(id, 'p1', 6); // APPROACHING_END 1@10
    await s.move(id, 'p1', 7);
    await s.move(id, 'p2', 8);
    await s.move(id, 'p1', 9);
    await s.move(id, 'p3', 4, 'Q480P');
    await s.remove(id, 'p3');
    // A seek well past the announced batch 1 (10-19): a new need (the marker).
    // v2: p2 (720p at 8) still needs batch 1, so p1's need is another one, batch 2.
    await s.move(id, 'p1', 30);
    const events = await sub.waitFor(3);
    expect(events.map(brief)).toEqual([
      'FIRST_BATCH 0@0',
      'APPROACHING_END 1@10',
      'SEEK_AHEAD 2@30',
    ]);
    sub.stop();
  });

  it('SEEK_AHEAD starts the next batch at the furthest client; a seek that moves the start fires again', async () => {
    const id = uid('seek');
    const sub = await t.subscribe(id);
    await withCompleteFirstBatch(id, sub);
    await s.move(id, 'p1', 2, 'Q1080P'); // far from the end: no need
    await s.move(id, 'p1', 25, 'Q1080P');
    const [, seek] = await sub.waitFor(2);
    expect(needOf(seek!)).toEqual({
      streamSession: { id, furthestSegment: 25 },
      reason: 'SEEK_AHEAD',
      batchNumber: 1,
      startSegment: 25,
      endSegment: 34,
      videoSourcePath: '/videos/film.mp4',
      videoStartOffset: 150,
      furthestSegment: 25,
      qualities: ['Q1080P'],
    });
    await s.move(id, 'p1', 40, 'Q1080P'); // a new start: fires again
    // v2: not the furthest, but served too: a gap before batch 1 (40-49), cut before it.
    await s.move(id, 'p2', 30, 'Q1080P');
    await s.claim(id, 1, 40, 49);
    await s.complete(id, 1); // 49 - 40 = 9 > 3: nothing
    await s.move(id, 'p1', 47, 'Q1080P'); // the marker
    const events = await sub.waitFor(5);
    expect(events.map(brief)).toEqual([
      'FIRST_BATCH 0@0',
      'SEEK_AHEAD 1@25',
      'SEEK_AHEAD 1@40',
      'SEEK_BACK 2@30',
      'APPROACHING_END 3@50',
    ]);
    expect(needOf(events[2]!)).toMatchObject({ endSegment: 49, videoStartOffset: 240 });
    expect(needOf(events[3]!)).toMatchObject({ endSegment: 39, videoStartOffset: 180 });
    sub.stop();
  });

  it('completing a batch while clients are already near its end fires at once', async () => {
    const id = uid('complete-near');
    const sub = await t.subscribe(id);
    await s.create(id, { batchSize: 10, threshold: 3 });
    await sub.waitFor(1);
    await s.claim(id, 0, 0, 9);
    await s.move(id, 'p1', 8); // near the end, but batch 0 is still generating
    await s.move(id, 'p2', 9);
    await s.complete(id, 0);
    const events = await sub.waitFor(2);
    expect(events.map(brief)).toEqual(['FIRST_BATCH 0@0', 'APPROACHING_END 1@10']);
    expect(needOf(events[1]!).furthestSegment).toBe(9);
    sub.stop();
  });

  it('completing a batch while a client is already past its end fires SEEK_AHEAD at once', async () => {
    const id = uid('complete-past');
    const sub = await t.subscribe(id);
    await s.create(id, { batchSize: 10, threshold: 3 });
    await sub.waitFor(1);
    await s.claim(id, 0, 0, 9);
    await s.move(id, 'p1', 14);
    await s.complete(id, 0);
    const events = await sub.waitFor(2);
    expect(events.map(brief)).toEqual(['FIRST_BATCH 0@0', 'SEEK_AHEAD 1@14']);
    sub.stop();
  });

  it('a stream session filter receives only that session; no filter receives all', async () => {
    const a = uid('filter-a');
    const b = uid('filter-b');
    const onlyA = await t.subscribe(a);
    const all = await t.subscribe();
    await s.create(b, { batchSize: 10, threshold: 3 });
    await s.create(a, { batchSize: 10, threshold: 3 });
    const of = (id: string) =>
      all.events.filter((e) => needOf(e).streamSession.id === id).map(brief);
    // Both subscriptions are live once they have the FIRST_BATCH needs (live or replayed).
    await onlyA.waitFor(1);
    await eventually(() => of(a).length === 1 && of(b).length === 1);
    await s.claim(b, 0, 0, 9);
    await s.move(b, 'p', 9);
    await s.complete(b, 0); // APPROACHING_END for b
    await s.claim(a, 0, 0, 9);
    await s.move(a, 'p', 30);
    await s.complete(a, 0); // SEEK_AHEAD for a: the marker
    const mine = await onlyA.waitFor(2);
    expect(mine.map((e) => needOf(e).streamSession.id)).toEqual([a, a]);
    expect(mine.map(brief)).toEqual(['FIRST_BATCH 0@0', 'SEEK_AHEAD 1@30']);

    await eventually(() => of(a).length === 2 && of(b).length === 2);
    expect(of(b)).toEqual(['FIRST_BATCH 0@0', 'APPROACHING_END 1@10']);
    expect(of(a)).toEqual(['FIRST_BATCH 0@0', 'SEEK_AHEAD 1@30']);
    onlyA.stop();
    all.stop();
  });

  it('qualities lists the distinct renditions the clients play now', async () => {
    const id = uid('qualities');
    const sub = await t.subscribe(id);
    await s.create(id, { batchSize: 10, threshold: 3 });
    await sub.waitFor(1);
    // v2: a need lists the renditions of the clients it serves: all four near the end.
    await s.move(id, 'p1', 7, 'Q480P');
    await s.move(id, 'p2', 8, 'Q1080P');
    await s.move(id, 'p3', 6, 'Q480P');
    await s.move(id, 'p4', 9, 'Q720P');
    await s.claim(id, 0, 0, 9);
    await s.complete(id, 0);
    const [, first] = await sub.waitFor(2);
    const qualities = needOf(first!).qualities;
    expect(qualities).toHaveLength(3);
    expect([...qualities].sort()).toEqual(['Q1080P', 'Q480P', 'Q720P']);

    // p2 leaves, p4 switches to 480p: only 480p is left.
    await s.remove(id, 'p2');
    await s.move(id, 'p4', 5, 'Q480P');
    await s.claim(id, 1, 10, 19);
    await s.complete(id, 1);
    await s.move(id, 'p1', 17, 'Q480P');
    const [, , second] = await sub.waitFor(3);
    expect(needOf(second!)).toMatchObject({ reason: 'APPROACHING_END', qualities: ['Q480P'] });
    sub.stop();
  });

  it('replay: a new subscription first receives every need pending at that moment', async () => {
    const pendingFirst = uid('replay-first');
    const pendingApproach = uid('replay-approach');
    const generating = uid('replay-generating');
    const satisfied = uid('replay-satisfied');
    const ended = uid('replay-ended');

    // FIRST_BATCH pending, with clients that joined since it was announced.
    await s.create(pendingFirst, { batchSize: 10, threshold: 3 });
    await s.move(pendingFirst, 'p1', 3, 'Q720P');
    await s.move(pendingFirst, 'p2', 5, 'Q1080P');
    // APPROACHING_END pending.
    await s.create(pendingApproach, { batchSize: 10, threshold: 3 });
    await s.claim(pendingApproach, 0, 0, 9);
    await s.complete(pendingApproach, 0);
    await s.move(pendingApproach, 'p', 8, 'Q480P');
    // No need: a batch is generating.
    await s.create(generating, { batchSize: 10, threshold: 3 });
    await s.claim(generating, 0, 0, 9);
    await s.move(generating, 'p', 9);
    // No need: the clients are far from the end.
    await s.create(satisfied, { batchSize: 10, threshold: 3 });
    await s.claim(satisfied, 0, 0, 9);
    await s.complete(satisfied, 0);
    await s.move(satisfied, 'p', 1);
    // Ended with a need pending: gone.
    await s.create(ended);
    await s.end(ended);

    const ours = new Set([pendingFirst, pendingApproach, generating, satisfied, ended]);
    const all = await t.subscribe();
    const mine = () => all.events.filter((e) => ours.has(needOf(e).streamSession.id));
    await eventually(() => mine().length >= 2);
    // A live need after the replay: the marker.
    await s.complete(generating, 0);
    await eventually(() => mine().length >= 3);

    const seen = mine().map((e) => `${needOf(e).streamSession.id} ${brief(e)}`);
    expect(seen.slice(0, 2).sort()).toEqual(
      [`${pendingFirst} FIRST_BATCH 0@0`, `${pendingApproach} APPROACHING_END 1@10`].sort(),
    );
    expect(seen.slice(2)).toEqual([`${generating} APPROACHING_END 1@10`]);

    // A replayed need describes the session now.
    const first = mine()
      .map(needOf)
      .find((n) => n.streamSession.id === pendingFirst)!;
    expect(first.furthestSegment).toBe(5);
    expect(first.streamSession.furthestSegment).toBe(5);
    // v2: FIRST_BATCH is made in the session's qualities, and a need does not change.
    expect([...first.qualities].sort()).toEqual(['Q1080P', 'Q480P', 'Q720P']);
    const approach = mine()
      .map(needOf)
      .find((n) => n.streamSession.id === pendingApproach)!;
    expect(approach).toMatchObject({ furthestSegment: 8, qualities: ['Q480P'], endSegment: 19 });
    all.stop();
  });

  it('replay with a filter, then live needs; another subscriber joining repeats nothing', async () => {
    const id = uid('replay-filter');
    await s.create(id, { batchSize: 10, threshold: 3 });
    await s.claim(id, 0, 0, 9);
    await s.complete(id, 0);
    await s.move(id, 'p', 7);

    const early = await t.subscribe(id);
    const [replayed] = await early.waitFor(1);
    expect(brief(replayed!)).toBe('APPROACHING_END 1@10');
    expect(needOf(replayed!).furthestSegment).toBe(7);

    const late = await t.subscribe(id);
    const [alsoReplayed] = await late.waitFor(1);
    expect(brief(alsoReplayed!)).toBe('APPROACHING_END 1@10');

    await s.move(id, 'p', 8); // the same need: nothing
    await s.claim(id, 1, 10, 19);
    await s.complete(id, 1);
    await s.move(id, 'p', 17); // the marker
    for (const sub of [early, late]) {
      const events = await sub.waitFor(2);
      expect(events.map(brief)).toEqual(['APPROACHING_END 1@10', 'APPROACHING_END 2@20']);
      sub.stop();
    }
  });

  it('a session ended and created again starts over with FIRST_BATCH; nothing of it is replayed', async () => {
    const id = uid('again');
    const sub = await t.subscribe(id);
    await s.create(id, { batchSize: 10, threshold: 3 });
    await sub.waitFor(1);
    await s.claim(id, 0, 0, 9);
    await s.complete(id, 0);
    await s.move(id, 'p', 9); // APPROACHING_END pending
    await sub.waitFor(2);
    await s.end(id);

    const late = await t.subscribe(id);
    await s.create(id, { batchSize: 5, threshold: 1 }); // the marker
    const [only] = await late.waitFor(1);
    expect(needOf(only!)).toMatchObject({
      reason: 'FIRST_BATCH',
      batchNumber: 0,
      endSegment: 4,
      furthestSegment: null,
    });
    const events = await sub.waitFor(3);
    expect(events.map(brief)).toEqual([
      'FIRST_BATCH 0@0',
      'APPROACHING_END 1@10',
      'FIRST_BATCH 0@0',
    ]);
    sub.stop();
    late.stop();
  });
}
