/**
 * Every query and mutation of the contract over GraphQL over HTTP (POST and
 * GET), with the semantics its comments give, plus the plain HTTP endpoints.
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../src/config.js';
import { CSRF_HEADER } from '../src/server/protection.js';
import {
  eventually,
  type GraphQLResponse,
  Q,
  startTestServer,
  type TestServer,
} from './fixtures.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.stop());

let counter = 0;
/** A stream session id no other test uses. */
const uid = (prefix: string) =>
  `http-${prefix}-${++counter}-${Math.random().toString(36).slice(2, 8)}`;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const UTC_RFC3339 = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$/;

/** The data of a response that must have succeeded (its errors in the message otherwise). */
function ok<T>(response: GraphQLResponse<T>): T {
  expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
  expect(response.data).toBeTruthy();
  return response.data as T;
}

/** The extensions.code of the first error. */
const codeOf = (response: GraphQLResponse<unknown>) => response.errors?.[0]?.extensions?.code;

function create(input: Record<string, unknown>) {
  return server.gql(Q.create, { input: { videoSourcePath: '/videos/movie.mp4', ...input } });
}
async function createOk(input: Record<string, unknown>) {
  return ok(await create(input)).createStreamSession;
}
function update(
  streamSessionId: string,
  sessionId: string,
  segmentNumber: number,
  quality = 'Q720P',
) {
  return server.gql(Q.update, { input: { streamSessionId, sessionId, segmentNumber, quality } });
}
async function updateOk(
  streamSessionId: string,
  sessionId: string,
  segmentNumber: number,
  quality = 'Q720P',
) {
  return ok(await update(streamSessionId, sessionId, segmentNumber, quality)).updateClientPosition;
}
function claim(
  streamSessionId: string,
  batchNumber: number,
  startSegment: number,
  endSegment: number,
  extra: Record<string, unknown> = {},
) {
  return server.gql(Q.claim, {
    input: {
      streamSessionId,
      batchNumber,
      startSegment,
      endSegment,
      videoSourcePath: '/videos/movie.mp4',
      videoStartOffset: startSegment * 6,
      ...extra,
    },
  });
}
function complete(streamSessionId: string, batchNumber: number) {
  return server.gql(Q.complete, { streamSessionId, batchNumber });
}
async function session(id: string) {
  return ok(await server.gql(Q.session, { id })).streamSession;
}

describe('createStreamSession', () => {
  it('fills in the server defaults (6/20/5), startSegment 0, and a generated UUID', async () => {
    expect(defaultConfig).toMatchObject({ segmentDuration: 6, batchSize: 20, threshold: 5 });
    const created = await createOk({});
    expect(created).toMatchObject({
      videoSourcePath: '/videos/movie.mp4',
      segmentDuration: 6,
      batchSize: 20,
      threshold: 5,
      startSegment: 0,
      currentBatch: null,
      furthestSegment: null,
      slowestSegment: null,
      shouldGenerateNextBatch: false,
      clientPositions: [],
    });
    expect(created.id).toMatch(UUID);
    const other = await createOk({});
    expect(other.id).toMatch(UUID);
    expect(other.id).not.toBe(created.id);
    // The generated id is the session's id from then on.
    expect((await session(created.id)).id).toBe(created.id);
  });

  it('keeps every value it is given', async () => {
    const id = uid('given');
    const created = await createOk({
      id,
      videoSourcePath: '/videos/other.mkv',
      segmentDuration: 4,
      batchSize: 10,
      threshold: 2,
      startSegment: 7,
    });
    expect(created).toMatchObject({
      id,
      videoSourcePath: '/videos/other.mkv',
      segmentDuration: 4,
      batchSize: 10,
      threshold: 2,
      startSegment: 7,
    });
    expect(await session(id)).toMatchObject({
      id,
      segmentDuration: 4,
      batchSize: 10,
      threshold: 2,
      startSegment: 7,
    });
  });

  it('accepts threshold equal to batchSize and threshold 0', async () => {
    expect((await createOk({ id: uid('eq'), batchSize: 8, threshold: 8 })).threshold).toBe(8);
    expect((await createOk({ id: uid('zero'), threshold: 0 })).threshold).toBe(0);
  });

  it('is CONFLICT on a duplicate id and leaves the first session as it was', async () => {
    const id = uid('dup');
    await createOk({ id, videoSourcePath: '/videos/first.mp4', batchSize: 12 });
    await updateOk(id, 'player', 3);
    const before = await session(id);
    const again = await create({ id, videoSourcePath: '/videos/second.mp4', batchSize: 30 });
    expect(codeOf(again)).toBe('CONFLICT');
    expect(again.errors?.[0]?.message).toContain(id);
    expect(again.data ?? null).toBeNull();
    expect(await session(id)).toEqual(before);
  });
});

describe('streamSession and streamSessions', () => {
  it('streamSession is null for an unknown id', async () => {
    const response = await server.gql(Q.session, { id: uid('unknown') });
    expect(response.errors).toBeUndefined();
    expect(response.data?.streamSession).toBeNull();
  });

  it('lists sessions oldest first, with limit and offset', async () => {
    const ids = [uid('list-a'), uid('list-b'), uid('list-c'), uid('list-d')];
    for (const id of ids) await createOk({ id });
    const all = ok(await server.gql(Q.sessions, { limit: 1000 })).streamSessions.map(
      (s: { id: string }) => s.id,
    );
    const mine = all.filter((id: string) => ids.includes(id));
    expect(mine).toEqual(ids);
    const first = all.indexOf(ids[0]);
    // Created last, so they are the last four.
    expect(all.slice(first)).toEqual(ids);

    const page = ok(await server.gql(Q.sessions, { limit: 2, offset: first + 1 })).streamSessions;
    expect(page.map((s: { id: string }) => s.id)).toEqual([ids[1], ids[2]]);
    const tail = ok(await server.gql(Q.sessions, { limit: 10, offset: first + 3 })).streamSessions;
    expect(tail.map((s: { id: string }) => s.id)).toEqual([ids[3]]);
    const beyond = ok(await server.gql(Q.sessions, { offset: all.length + 5 })).streamSessions;
    expect(beyond).toEqual([]);
    const none = ok(await server.gql(Q.sessions, { limit: 0 })).streamSessions;
    expect(none).toEqual([]);
  });

  it('orders by creation time: createdAt never decreases along the list', async () => {
    await createOk({ id: uid('order') });
    const listed = ok(
      await server.gql('{ streamSessions(limit: 1000) { id createdAt } }'),
    ).streamSessions;
    const times = listed.map((s: { createdAt: string }) => Date.parse(s.createdAt));
    expect(times.length).toBeGreaterThan(1);
    expect(times).toEqual([...times].sort((a, b) => a - b));
  });

  it('returns at most 100 sessions by default (limit = 100, offset = 0)', async () => {
    // 101 creations (in parallel requests: one request may hold only 30 aliases).
    await Promise.all(
      Array.from({ length: 101 }, (_, i) =>
        server.gql(Q.create, { input: { videoSourcePath: `/v/${i}.mp4` } }).then(ok),
      ),
    );
    const byDefault = ok(await server.gql('{ streamSessions { id } }')).streamSessions;
    expect(byDefault).toHaveLength(100);
    const explicit = ok(await server.gql(Q.sessions, { limit: 100, offset: 0 })).streamSessions;
    expect(byDefault).toEqual(explicit);
  });
});

describe('endStreamSession', () => {
  it('is true for an existing session, which goes with its clients and batch; false after', async () => {
    const id = uid('end');
    await createOk({ id, batchSize: 10 });
    await updateOk(id, 'p1', 4);
    ok(await claim(id, 0, 0, 9));
    expect(ok(await server.gql(Q.end, { id })).endStreamSession).toBe(true);
    expect(ok(await server.gql(Q.session, { id })).streamSession).toBeNull();
    const listed = ok(await server.gql(Q.sessions, { limit: 1000 })).streamSessions;
    expect(listed.map((s: { id: string }) => s.id)).not.toContain(id);
    expect(ok(await server.gql(Q.end, { id })).endStreamSession).toBe(false);
    expect(codeOf(await update(id, 'p1', 5))).toBe('NOT_FOUND');

    // The id is free again, and nothing of the old session comes back with it.
    const again = await createOk({ id });
    expect(again).toMatchObject({
      id,
      currentBatch: null,
      clientPositions: [],
      furthestSegment: null,
      slowestSegment: null,
    });
  });

  it('is false for an id that never existed', async () => {
    expect(ok(await server.gql(Q.end, { id: uid('never') })).endStreamSession).toBe(false);
  });
});

describe('updateClientPosition', () => {
  it('creates a position, then moves it; quality is the enum name', async () => {
    const id = uid('pos');
    await createOk({ id });
    const first = await updateOk(id, 'player-1', 3, 'Q1080P');
    expect(first).toMatchObject({ sessionId: 'player-1', segmentNumber: 3, quality: 'Q1080P' });
    expect(first.lastUpdated).toMatch(UTC_RFC3339);
    let s = await session(id);
    expect(s.clientPositions).toEqual([first]);
    expect(s.furthestSegment).toBe(3);

    const moved = await updateOk(id, 'player-1', 8, 'Q480P');
    expect(moved).toMatchObject({ sessionId: 'player-1', segmentNumber: 8, quality: 'Q480P' });
    s = await session(id);
    expect(s.clientPositions).toHaveLength(1);
    expect(s.clientPositions[0]).toMatchObject({ segmentNumber: 8, quality: 'Q480P' });
    expect(s.furthestSegment).toBe(8);
    expect(s.slowestSegment).toBe(8);
  });

  it('accepts each Quality value', async () => {
    const id = uid('qualities');
    await createOk({ id });
    for (const quality of ['Q1080P', 'Q720P', 'Q480P']) {
      expect((await updateOk(id, `p-${quality}`, 1, quality)).quality).toBe(quality);
    }
    expect((await session(id)).clientPositions.map((c: { quality: string }) => c.quality)).toEqual(
      // Ordered by sessionId: p-Q1080P < p-Q480P < p-Q720P.
      ['Q1080P', 'Q480P', 'Q720P'],
    );
  });

  it('lists clients ordered by sessionId and tracks furthest and slowest', async () => {
    const id = uid('order');
    await createOk({ id });
    await updateOk(id, 'charlie', 20);
    await updateOk(id, 'alpha', 10);
    await updateOk(id, 'bravo', 30);
    const s = await session(id);
    expect(s.clientPositions.map((c: { sessionId: string }) => c.sessionId)).toEqual([
      'alpha',
      'bravo',
      'charlie',
    ]);
    expect(s.furthestSegment).toBe(30);
    expect(s.slowestSegment).toBe(10);
  });

  it('a client that seeks back lowers furthestSegment', async () => {
    const id = uid('seekback');
    await createOk({ id });
    await updateOk(id, 'a', 10);
    await updateOk(id, 'b', 30);
    await updateOk(id, 'b', 5);
    const s = await session(id);
    expect(s.furthestSegment).toBe(10);
    expect(s.slowestSegment).toBe(5);
  });

  it('is NOT_FOUND for an unknown stream session, and creates nothing', async () => {
    const id = uid('missing');
    const response = await update(id, 'player', 1);
    expect(codeOf(response)).toBe('NOT_FOUND');
    expect(response.errors?.[0]?.message).toContain(`'${id}'`);
    expect(response.data ?? null).toBeNull();
    expect(ok(await server.gql(Q.session, { id })).streamSession).toBeNull();
  });
});

describe('removeClient', () => {
  it('is true for a client in the session, false otherwise; furthest and slowest follow', async () => {
    const id = uid('remove');
    await createOk({ id });
    await updateOk(id, 'a', 10);
    await updateOk(id, 'b', 30);
    await updateOk(id, 'c', 20);
    expect(await session(id)).toMatchObject({ furthestSegment: 30, slowestSegment: 10 });

    expect(
      ok(await server.gql(Q.remove, { streamSessionId: id, sessionId: 'b' })).removeClient,
    ).toBe(true);
    expect(await session(id)).toMatchObject({ furthestSegment: 20, slowestSegment: 10 });
    expect(
      ok(await server.gql(Q.remove, { streamSessionId: id, sessionId: 'b' })).removeClient,
    ).toBe(false);
    expect(
      ok(await server.gql(Q.remove, { streamSessionId: id, sessionId: 'nobody' })).removeClient,
    ).toBe(false);

    ok(await server.gql(Q.remove, { streamSessionId: id, sessionId: 'a' }));
    expect(await session(id)).toMatchObject({ furthestSegment: 20, slowestSegment: 20 });
    ok(await server.gql(Q.remove, { streamSessionId: id, sessionId: 'c' }));
    const empty = await session(id);
    expect(empty).toMatchObject({
      furthestSegment: null,
      slowestSegment: null,
      clientPositions: [],
    });
  });

  it('keeps the others when two clients share a segment', async () => {
    const id = uid('shared');
    await createOk({ id });
    await updateOk(id, 'a', 15);
    await updateOk(id, 'b', 15);
    await updateOk(id, 'c', 2);
    ok(await server.gql(Q.remove, { streamSessionId: id, sessionId: 'a' }));
    expect(await session(id)).toMatchObject({ furthestSegment: 15, slowestSegment: 2 });
  });

  it('is NOT_FOUND for an unknown stream session', async () => {
    const response = await server.gql(Q.remove, { streamSessionId: uid('none'), sessionId: 'x' });
    expect(codeOf(response)).toBe('NOT_FOUND');
  });
});

describe('setCurrentBatch', () => {
  it('claims batch 0 first, then current + 1 once the current batch is complete', async () => {
    const id = uid('claim');
    await createOk({ id, batchSize: 10 });
    const zero = ok(await claim(id, 0, 0, 9, { videoStartOffset: 0 })).setCurrentBatch;
    expect(zero).toMatchObject({
      batchNumber: 0,
      startSegment: 0,
      endSegment: 9,
      videoSourcePath: '/videos/movie.mp4',
      videoStartOffset: 0,
      isComplete: false,
      generationEnded: null,
    });
    expect(zero.generationStarted).toMatch(UTC_RFC3339);
    expect((await session(id)).currentBatch).toEqual(zero);

    ok(await complete(id, 0));
    const one = ok(await claim(id, 1, 10, 19, { videoStartOffset: 60 })).setCurrentBatch;
    expect(one).toMatchObject({
      batchNumber: 1,
      startSegment: 10,
      endSegment: 19,
      videoSourcePath: '/videos/movie.mp4',
      videoStartOffset: 60,
      isComplete: false,
      generationEnded: null,
    });
    expect((await session(id)).currentBatch).toEqual(one);
  });

  it('is CONFLICT for any number but 0 on a session without a batch', async () => {
    const id = uid('first');
    await createOk({ id });
    const before = await session(id);
    for (const n of [1, 2, 7]) {
      const response = await claim(id, n, 0, 19);
      expect(codeOf(response)).toBe('CONFLICT');
      expect(response.errors?.[0]?.message).toContain(String(n));
    }
    expect(await session(id)).toEqual(before);
  });

  it('is CONFLICT while the current batch is generating, for its number and the next', async () => {
    const id = uid('busy');
    await createOk({ id });
    ok(await claim(id, 0, 0, 19));
    const before = await session(id);
    expect(codeOf(await claim(id, 0, 0, 19))).toBe('CONFLICT');
    // v2: the next number may be claimed ahead of need while batch 0 is generating,
    // but not for a range that overlaps it in a shared rendition.
    expect(codeOf(await claim(id, 1, 10, 29))).toBe('CONFLICT');
    expect(await session(id)).toEqual(before);
  });

  it('is CONFLICT for a number other than current + 1 after completion', async () => {
    const id = uid('skip');
    await createOk({ id });
    ok(await claim(id, 0, 0, 19));
    ok(await complete(id, 0));
    const before = await session(id);
    expect(codeOf(await claim(id, 0, 0, 19))).toBe('CONFLICT');
    expect(codeOf(await claim(id, 2, 40, 59))).toBe('CONFLICT');
    expect(await session(id)).toEqual(before);
    expect(ok(await claim(id, 1, 20, 39)).setCurrentBatch.batchNumber).toBe(1);
  });

  it('lets exactly one of two racing encoders claim a batch', async () => {
    const id = uid('race');
    await createOk({ id });
    const results = await Promise.all([claim(id, 0, 0, 19), claim(id, 0, 0, 19)]);
    const codes = results.map((r) => (r.errors ? codeOf(r) : 'OK')).sort();
    expect(codes).toEqual(['CONFLICT', 'OK']);
  });

  it('is NOT_FOUND for an unknown stream session', async () => {
    const id = uid('none');
    expect(codeOf(await claim(id, 0, 0, 19))).toBe('NOT_FOUND');
    expect(ok(await server.gql(Q.session, { id })).streamSession).toBeNull();
  });
});

describe('completeBatch', () => {
  it('marks the current batch complete, idempotently, with a stable generationEnded', async () => {
    const id = uid('complete');
    await createOk({ id });
    const claimed = ok(await claim(id, 0, 0, 19)).setCurrentBatch;
    const done = ok(await complete(id, 0)).completeBatch;
    expect(done).toMatchObject({ batchNumber: 0, isComplete: true });
    expect(done.generationStarted).toBe(claimed.generationStarted);
    expect(done.generationEnded).toMatch(UTC_RFC3339);
    expect(Date.parse(done.generationEnded)).toBeGreaterThanOrEqual(
      Date.parse(done.generationStarted),
    );
    const stored = (await session(id)).currentBatch;
    expect(stored).toMatchObject({ isComplete: true, generationEnded: done.generationEnded });

    // Once the clock is past the first completion's millisecond, a second completion
    // that set generationEnded again would show.
    await eventually(() => Date.now() > Date.parse(done.generationEnded));
    const again = ok(await complete(id, 0)).completeBatch;
    expect(again).toEqual(done);
    expect((await session(id)).currentBatch).toEqual(stored);
  });

  it('is CONFLICT for a number that is not the current batch, and changes nothing', async () => {
    const id = uid('wrong');
    await createOk({ id });
    const none = await complete(id, 0);
    expect(codeOf(none)).toBe('CONFLICT');

    ok(await claim(id, 0, 0, 19));
    const before = await session(id);
    const wrong = await complete(id, 1);
    expect(codeOf(wrong)).toBe('CONFLICT');
    expect(wrong.errors?.[0]?.message).toContain('1');
    expect(await session(id)).toEqual(before);
    expect(before.currentBatch.isComplete).toBe(false);

    ok(await complete(id, 0));
    const zero = (await session(id)).currentBatch;
    ok(await claim(id, 1, 20, 39));
    // v2: the previous batch is no longer current but still a batch of the session:
    // completing it again returns it unchanged; a number that is no batch is CONFLICT.
    expect(ok(await complete(id, 0)).completeBatch).toEqual({
      batchNumber: 0,
      isComplete: true,
      generationStarted: zero.generationStarted,
      generationEnded: zero.generationEnded,
    });
    expect(codeOf(await complete(id, 2))).toBe('CONFLICT');
    expect((await session(id)).currentBatch).toMatchObject({ batchNumber: 1, isComplete: false });
  });

  it('is NOT_FOUND for an unknown stream session', async () => {
    expect(codeOf(await complete(uid('none'), 0))).toBe('NOT_FOUND');
  });
});

describe('shouldGenerateNextBatch', () => {
  it('is true only when the current batch is complete and endSegment - furthest <= threshold', async () => {
    const id = uid('should');
    await createOk({ id, batchSize: 10, threshold: 3 });
    const should = async () => (await session(id)).shouldGenerateNextBatch;

    // No batch, with or without clients.
    expect(await should()).toBe(false);
    await updateOk(id, 'p', 8);
    expect(await should()).toBe(false);

    // A batch that is still generating, the client near its end.
    ok(await claim(id, 0, 0, 9));
    expect(await should()).toBe(false);

    ok(await complete(id, 0));
    expect(await should()).toBe(true); // 9 - 8 = 1 <= 3

    await updateOk(id, 'p', 5);
    expect(await should()).toBe(false); // 9 - 5 = 4 > 3
    await updateOk(id, 'p', 6);
    expect(await should()).toBe(true); // 9 - 6 = 3 <= 3
    await updateOk(id, 'p', 25);
    expect(await should()).toBe(true); // past the end

    // No client.
    ok(await server.gql(Q.remove, { streamSessionId: id, sessionId: 'p' }));
    expect(await should()).toBe(false);

    // The furthest client decides, not the slowest.
    await updateOk(id, 'slow', 0);
    expect(await should()).toBe(false);
    await updateOk(id, 'fast', 7);
    expect(await should()).toBe(true);

    // Claiming the next batch makes it false again.
    ok(await claim(id, 1, 10, 19));
    expect(await should()).toBe(false);
  });

  it('with threshold 0 it becomes true only at the last segment', async () => {
    const id = uid('zero');
    await createOk({ id, batchSize: 5, threshold: 0 });
    ok(await claim(id, 0, 0, 4));
    ok(await complete(id, 0));
    await updateOk(id, 'p', 3);
    expect((await session(id)).shouldGenerateNextBatch).toBe(false);
    await updateOk(id, 'p', 4);
    expect((await session(id)).shouldGenerateNextBatch).toBe(true);
  });
});

describe('DateTime fields', () => {
  it('are RFC 3339 strings in UTC', async () => {
    const id = uid('dates');
    const started = Date.now();
    const created = await createOk({ id });
    await updateOk(id, 'p', 1);
    ok(await claim(id, 0, 0, 19));
    ok(await complete(id, 0));
    const s = await session(id);
    const values = [
      created.createdAt,
      created.updatedAt,
      s.createdAt,
      s.updatedAt,
      s.clientPositions[0].lastUpdated,
      s.currentBatch.generationStarted,
      s.currentBatch.generationEnded,
    ];
    for (const value of values) {
      expect(value).toMatch(UTC_RFC3339);
      // Round-trips exactly: a real instant, not a local time.
      expect(new Date(value).toISOString()).toBe(value);
      expect(Date.parse(value)).toBeGreaterThanOrEqual(started - 1_000);
    }
    expect(s.createdAt).toBe(created.createdAt);
    expect(Date.parse(s.updatedAt)).toBeGreaterThanOrEqual(Date.parse(s.createdAt));
  });

  it('updatedAt moves with a change', async () => {
    const id = uid('updated');
    const created = await createOk({ id });
    await eventually(() => Date.now() > Date.parse(created.updatedAt));
    await updateOk(id, 'p', 1);
    const s = await session(id);
    expect(Date.parse(s.updatedAt)).toBeGreaterThan(Date.parse(created.updatedAt));
    expect(s.createdAt).toBe(created.createdAt);
  });
});

describe('a failed mutation changes nothing', () => {
  it('leaves the session exactly as it was, whatever the failure', async () => {
    const id = uid('atomic');
    await createOk({ id, batchSize: 10, threshold: 3 });
    await updateOk(id, 'a', 4, 'Q480P');
    await updateOk(id, 'b', 2, 'Q1080P');
    ok(await claim(id, 0, 0, 9));
    const before = await session(id);
    // Past the last change's millisecond: a failure that touched a timestamp would show.
    await eventually(() => Date.now() > Date.parse(before.updatedAt));

    const failures = [
      await claim(id, 1, 5, 14), // CONFLICT: overlaps batch 0, generating
      await claim(id, 0, 0, 9), // CONFLICT: racing claim
      await complete(id, 3), // CONFLICT: not current
      await create({ id, batchSize: 50 }), // CONFLICT: taken
      await update(id, 'a', -1), // BAD_USER_INPUT
      await update(id, 'new-player', -5), // BAD_USER_INPUT, for a client not there yet
      await server.gql(Q.claim, {
        input: {
          streamSessionId: id,
          batchNumber: 0,
          startSegment: 5,
          endSegment: 1,
          videoSourcePath: '/v.mp4',
          videoStartOffset: 0,
        },
      }), // BAD_USER_INPUT: end < start
    ];
    for (const failure of failures) {
      expect(failure.errors, JSON.stringify(failure)).toBeDefined();
      expect(['CONFLICT', 'BAD_USER_INPUT']).toContain(codeOf(failure));
    }
    expect(await session(id)).toEqual(before);
  });
});

describe('GraphQL over HTTP', () => {
  it('answers application/graphql-response+json requests', async () => {
    const id = uid('gqlresp');
    await createOk({ id });
    const response = await fetch(server.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/graphql-response+json',
      },
      body: JSON.stringify({ query: Q.session, variables: { id } }),
    });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('application/graphql-response+json');
    const body = (await response.json()) as GraphQLResponse<any>;
    expect(body.data?.streamSession.id).toBe(id);
  });

  it('runs queries over GET', async () => {
    const id = uid('get');
    await createOk({ id, batchSize: 9, threshold: 1 });
    const params = new URLSearchParams({
      query: Q.session,
      variables: JSON.stringify({ id }),
    });
    const response = await fetch(`${server.url}?${params}`, {
      // GET needs yoga's CSRF header (a browser cannot send it cross-site without a preflight).
      headers: { accept: 'application/json', [CSRF_HEADER]: '1' },
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as GraphQLResponse<any>;
    expect(body.errors).toBeUndefined();
    expect(body.data?.streamSession).toMatchObject({ id, batchSize: 9, threshold: 1 });
  });

  it('refuses a mutation over GET, and it changes nothing', async () => {
    const id = uid('getmut');
    const params = new URLSearchParams({
      query: `mutation { createStreamSession(input: { id: "${id}", videoSourcePath: "/v.mp4" }) { id } }`,
    });
    const response = await fetch(`${server.url}?${params}`, {
      // GET needs yoga's CSRF header (a browser cannot send it cross-site without a preflight).
      headers: { accept: 'application/json', [CSRF_HEADER]: '1' },
    });
    expect(response.status).toBe(405);
    const body = (await response.json()) as GraphQLResponse;
    expect(body.errors?.length).toBeGreaterThan(0);
    expect(ok(await server.gql(Q.session, { id })).streamSession).toBeNull();
  });
});

describe('HTTP endpoints', () => {
  it('GET /healthz is 200 {"status":"ok"}', async () => {
    const response = await fetch(`${server.baseUrl}/healthz`);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('application/json');
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it('GET /readyz is 200 while the store answers', async () => {
    const response = await fetch(`${server.baseUrl}/readyz`);
    expect(response.status).toBe(200);
    await response.body?.cancel();
  });

  it('an unknown path is 404', async () => {
    for (const path of ['/nope', '/graphql/extra', '/healthz/x']) {
      const response = await fetch(`${server.baseUrl}${path}`);
      expect(response.status, path).toBe(404);
      await response.body?.cancel();
    }
  });

  it('serves GraphiQL on GET /graphql for a browser (Accept: text/html)', async () => {
    const response = await fetch(server.url, { headers: { accept: 'text/html' } });
    expect(response.status).toBe(200);
    expect(response.headers.get('content-type')).toContain('text/html');
    const html = await response.text();
    expect(html.toLowerCase()).toContain('<html');
    expect(html).toMatch(/graphiql/i);
  });
});
