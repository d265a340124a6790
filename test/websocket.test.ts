/**
 * graphql-ws (sub-protocol graphql-transport-ws) on /graphql: the batchNeeded
 * rules, queries and mutations with the same error codes as over HTTP, and
 * an encoder's whole loop.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { batchNeededRules, brief, type NeedEvent, needOf } from './batch-needed-rules.js';
import {
  createDeferred,
  eventually,
  type GraphQLResponse,
  type Need,
  Q,
  sessionDriver,
  startTestServer,
  type TestServer,
  wsRequest,
  wsSubscribe,
} from './fixtures.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(async () => {
  for (const socket of rawSockets) socket.terminate();
  await server.stop();
});

let counter = 0;
const uid = (prefix: string) =>
  `ws-${prefix}-${++counter}-${Math.random().toString(36).slice(2, 8)}`;
const codeOf = (response: GraphQLResponse<unknown>) => response.errors?.[0]?.extensions?.code;

/**
 * wsRequest, with a readable failure when the server drops the socket
 * instead of answering (wsRequest rejects with the raw CloseEvent then).
 */
async function wsCall(
  client: ReturnType<TestServer['wsClient']>,
  query: string,
  variables?: Record<string, unknown>,
): Promise<GraphQLResponse<any>> {
  try {
    return await wsRequest(client, query, variables);
  } catch (error) {
    const close = error as { code?: number; reason?: string };
    throw new Error(
      `no answer: the socket closed (${close?.code ?? '?'} ${close?.reason ?? String(error)})`,
    );
  }
}

async function subscribe(streamSessionId?: string) {
  return wsSubscribe<NeedEvent>(
    server.wsClient(),
    Q.batchNeeded,
    streamSessionId === undefined ? {} : { streamSessionId },
  );
}

describe('batchNeeded over WebSocket', () => {
  batchNeededRules({ name: 'ws', server: () => server, subscribe });
});

describe('queries and mutations over WebSocket', () => {
  it('runs every operation of the contract', async () => {
    const client = server.wsClient();
    const id = uid('ops');
    const ok = async (query: string, variables?: Record<string, unknown>) => {
      const response = await wsCall(client, query, variables);
      expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
      return response.data as Record<string, any>;
    };
    const created = await ok(Q.create, {
      input: { id, videoSourcePath: '/v.mp4', batchSize: 10, threshold: 3 },
    });
    expect(created.createStreamSession).toMatchObject({ id, batchSize: 10, threshold: 3 });
    const moved = await ok(Q.update, {
      input: { streamSessionId: id, sessionId: 'p', segmentNumber: 4, quality: 'Q1080P' },
    });
    expect(moved.updateClientPosition).toMatchObject({ segmentNumber: 4, quality: 'Q1080P' });
    const claimed = await ok(Q.claim, {
      input: {
        streamSessionId: id,
        batchNumber: 0,
        startSegment: 0,
        endSegment: 9,
        videoSourcePath: '/v.mp4',
        videoStartOffset: 0,
      },
    });
    expect(claimed.setCurrentBatch).toMatchObject({ batchNumber: 0, isComplete: false });
    const completed = await ok(Q.complete, { streamSessionId: id, batchNumber: 0 });
    expect(completed.completeBatch).toMatchObject({ batchNumber: 0, isComplete: true });
    const read = await ok(Q.session, { id });
    expect(read.streamSession).toMatchObject({
      id,
      furthestSegment: 4,
      slowestSegment: 4,
      shouldGenerateNextBatch: false,
      currentBatch: { batchNumber: 0, isComplete: true },
    });
    const listed = await ok(Q.sessions, { limit: 1000 });
    expect(listed.streamSessions.map((s: { id: string }) => s.id)).toContain(id);
    expect((await ok(Q.remove, { streamSessionId: id, sessionId: 'p' })).removeClient).toBe(true);
    expect((await ok(Q.end, { id })).endStreamSession).toBe(true);
    expect((await ok(Q.end, { id })).endStreamSession).toBe(false);
    expect((await ok(Q.session, { id })).streamSession).toBeNull();
  });

  it('answers NOT_FOUND, CONFLICT and BAD_USER_INPUT as over HTTP, changing nothing', async () => {
    const client = server.wsClient();
    const id = uid('errors');
    const ghost = uid('ghost');
    await wsCall(client, Q.create, { input: { id, videoSourcePath: '/v.mp4' } });
    const before = (await server.gql(Q.session, { id })).data?.streamSession;

    const cases: Array<[string, string, Record<string, unknown>]> = [
      [
        'NOT_FOUND',
        Q.update,
        { input: { streamSessionId: ghost, sessionId: 'p', segmentNumber: 1, quality: 'Q480P' } },
      ],
      ['CONFLICT', Q.create, { input: { id, videoSourcePath: '/other.mp4' } }],
      ['CONFLICT', Q.complete, { streamSessionId: id, batchNumber: 0 }],
      [
        'BAD_USER_INPUT',
        Q.update,
        { input: { streamSessionId: id, sessionId: 'p', segmentNumber: -1, quality: 'Q480P' } },
      ],
      ['BAD_USER_INPUT', Q.remove, { streamSessionId: id, sessionId: '' }],
      ['BAD_USER_INPUT', Q.sessions, { limit: 5000 }],
    ];
    for (const [code, query, variables] of cases) {
      const overWs = await wsCall(client, query, variables);
      const overHttp = await server.gql(query, variables);
      expect(codeOf(overWs), JSON.stringify(overWs)).toBe(code);
      expect(codeOf(overHttp)).toBe(code);
      expect(overWs.errors?.[0]?.message).toBe(overHttp.errors?.[0]?.message);
    }
    expect((await server.gql(Q.session, { id })).data?.streamSession).toEqual(before);
    expect((await server.gql(Q.session, { id: ghost })).data?.streamSession).toBeNull();
  });

  it('a claim that loses a race is CONFLICT', async () => {
    const id = uid('race');
    await server.gql(Q.create, { input: { id, videoSourcePath: '/v.mp4' } });
    const claim = {
      input: {
        streamSessionId: id,
        batchNumber: 0,
        startSegment: 0,
        endSegment: 19,
        videoSourcePath: '/v.mp4',
        videoStartOffset: 0,
      },
    };
    const results = await Promise.all([
      wsCall(server.wsClient(), Q.claim, claim),
      wsCall(server.wsClient(), Q.claim, claim),
    ]);
    expect(results.map((r) => (r.errors ? codeOf(r) : 'OK')).sort()).toEqual(['CONFLICT', 'OK']);
  });

  it('a document error carries the same code as over HTTP', async () => {
    const client = server.wsClient();
    // Documents of their own: the server caches parse results by document text.
    const documents: Array<[string, string, string]> = [
      [
        'unknown field',
        `{ streamSessions(limit: ${++counter}) { id colour } }`,
        'GRAPHQL_VALIDATION_FAILED',
      ],
      ['syntax error', `{ streamSessions(limit: ${++counter}) { id `, 'GRAPHQL_PARSE_FAILED'],
    ];
    for (const [name, query, code] of documents) {
      const overHttp = await server.gql(query);
      const overWs = await wsCall(client, query);
      expect(codeOf(overHttp), name).toBe(code);
      expect(codeOf(overWs), `${name}: ${JSON.stringify(overWs.errors)}`).toBe(code);
    }
  });

  it('a syntax error keeps GRAPHQL_PARSE_FAILED over HTTP after the same document failed over WebSocket', async () => {
    const query = `{ streamSession(id: "${uid('cache')}") { id `;
    const overWs = await wsCall(server.wsClient(), query);
    expect(codeOf(overWs), JSON.stringify(overWs.errors)).toBe('GRAPHQL_PARSE_FAILED');
    const overHttp = await server.gql(query);
    expect(overHttp.errors?.[0]?.message).toMatch(/Syntax Error/);
    expect(codeOf(overHttp), JSON.stringify(overHttp.errors)).toBe('GRAPHQL_PARSE_FAILED');
  });

  it('a wrong enum value in variables is rejected with a graphql-js code', async () => {
    const id = uid('enum');
    await server.gql(Q.create, { input: { id, videoSourcePath: '/v.mp4' } });
    const response = await wsCall(server.wsClient(), Q.update, {
      input: { streamSessionId: id, sessionId: 'p', segmentNumber: 1, quality: 'Q4K' },
    });
    expect(response.errors?.length).toBeGreaterThan(0);
    expect((await server.gql(Q.session, { id })).data?.streamSession.clientPositions).toEqual([]);
    expect(['GRAPHQL_VALIDATION_FAILED', 'BAD_USER_INPUT']).toContain(codeOf(response));
  });
});

/** A raw graphql-transport-ws socket, to see the protocol's own messages. */
const rawSockets: WebSocket[] = [];
async function rawConnection() {
  const socket = new WebSocket(server.wsUrl, 'graphql-transport-ws');
  rawSockets.push(socket);
  const messages: Array<{ id?: string; type: string; payload?: any }> = [];
  socket.on('message', (data) => {
    messages.push(JSON.parse(String(data)));
  });
  const closed = createDeferred<number>();
  let closedWith: string | undefined;
  socket.on('close', (code, reason) => {
    closedWith = `${code} ${String(reason)}`;
    closed.resolve(code);
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  expect(socket.protocol).toBe('graphql-transport-ws');
  /** The first message `predicate` accepts, once it has come. */
  const next = (predicate: (m: (typeof messages)[number]) => boolean) =>
    eventually(() => {
      const found = messages.find(predicate);
      if (found) return found;
      throw new Error(
        closedWith === undefined
          ? `no such message in ${JSON.stringify(messages)}`
          : `the server closed the socket (${closedWith}); got ${JSON.stringify(messages)}`,
      );
    });
  const send = (message: unknown) => socket.send(JSON.stringify(message));
  send({ type: 'connection_init' });
  await next((m) => m.type === 'connection_ack');
  return { socket, messages, next, send, closed: closed.promise };
}

describe('the socket survives a bad operation', () => {
  it('a syntax error is an error message for that operation; the socket stays open and usable', async () => {
    const id = uid('raw');
    await server.gql(Q.create, { input: { id, videoSourcePath: '/v.mp4' } });
    const raw = await rawConnection();
    raw.send({ id: 'bad', type: 'subscribe', payload: { query: '{ streamSessions { id ' } });
    const error = await raw.next((m) => m.id === 'bad');
    expect(error.type).toBe('error');
    expect(Array.isArray(error.payload)).toBe(true);
    expect(error.payload[0].message).toMatch(/Syntax Error/);

    raw.send({ id: 'good', type: 'subscribe', payload: { query: Q.session, variables: { id } } });
    const next = await raw.next((m) => m.id === 'good' && m.type === 'next');
    expect(next.payload.data.streamSession.id).toBe(id);
    await raw.next((m) => m.id === 'good' && m.type === 'complete');
    expect(raw.socket.readyState).toBe(WebSocket.OPEN);

    // A validation error and a domain error do not close it either.
    raw.send({ id: 'invalid', type: 'subscribe', payload: { query: '{ nope }' } });
    expect((await raw.next((m) => m.id === 'invalid')).type).toBe('error');
    raw.send({
      id: 'missing',
      type: 'subscribe',
      payload: {
        query: Q.update,
        variables: {
          input: {
            streamSessionId: uid('ghost'),
            sessionId: 'p',
            segmentNumber: 1,
            quality: 'Q480P',
          },
        },
      },
    });
    const missing = await raw.next((m) => m.id === 'missing' && m.type === 'next');
    expect(missing.payload.errors[0].extensions.code).toBe('NOT_FOUND');
    raw.send({ id: 'again', type: 'subscribe', payload: { query: Q.session, variables: { id } } });
    await raw.next((m) => m.id === 'again' && m.type === 'complete');
    expect(raw.socket.readyState).toBe(WebSocket.OPEN);
    raw.socket.close(1000);
    expect(await raw.closed).toBe(1000);
  });

  it('a graphql-ws client keeps its one connection through a syntax error', async () => {
    const client = server.wsClient({ lazy: false });
    let connected = 0;
    let closed = 0;
    client.on('connected', () => connected++);
    client.on('closed', () => closed++);
    const id = uid('client');
    await server.gql(Q.create, { input: { id, videoSourcePath: '/v.mp4' } });
    const bad = await wsCall(client, '{ streamSession(id: "x") { id ');
    expect(bad.errors?.[0]?.message).toMatch(/Syntax Error/);
    const good = await wsCall(client, Q.session, { id });
    expect(good.data?.streamSession.id).toBe(id);
    expect(connected).toBe(1);
    expect(closed).toBe(0);
  });
});

describe("an encoder's loop over WebSocket", () => {
  it('FIRST_BATCH, claim 0, complete 0, players advance, APPROACHING_END, claim 1, complete', async () => {
    const encoder = server.wsClient();
    const id = uid('encoder');
    const call = async (query: string, variables: Record<string, unknown>) => {
      const response = await wsCall(encoder, query, variables);
      expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
      return response.data as Record<string, any>;
    };
    /** What an encoder does with a need: claim exactly what it says. */
    const claimFrom = (need: Need) =>
      call(Q.claim, {
        input: {
          streamSessionId: need.streamSession.id,
          batchNumber: need.batchNumber,
          startSegment: need.startSegment,
          endSegment: need.endSegment,
          videoSourcePath: need.videoSourcePath,
          videoStartOffset: need.videoStartOffset,
        },
      });

    const needs = wsSubscribe<NeedEvent>(encoder, Q.batchNeeded, { streamSessionId: id });
    await call(Q.create, {
      input: {
        id,
        videoSourcePath: '/movies/loop.mp4',
        batchSize: 10,
        threshold: 3,
        segmentDuration: 4,
      },
    });
    const [first] = await needs.waitFor(1);
    const firstNeed = needOf(first!);
    expect(firstNeed).toMatchObject({
      reason: 'FIRST_BATCH',
      batchNumber: 0,
      startSegment: 0,
      endSegment: 9,
    });

    const claimed0 = (await claimFrom(firstNeed)).setCurrentBatch;
    expect(claimed0).toMatchObject({
      batchNumber: 0,
      startSegment: 0,
      endSegment: 9,
      isComplete: false,
    });
    // Players start watching while batch 0 is generated.
    await server.gql(Q.update, {
      input: { streamSessionId: id, sessionId: 'viewer-1', segmentNumber: 0, quality: 'Q720P' },
    });
    await server.gql(Q.update, {
      input: { streamSessionId: id, sessionId: 'viewer-2', segmentNumber: 1, quality: 'Q1080P' },
    });
    const done0 = (await call(Q.complete, { streamSessionId: id, batchNumber: 0 })).completeBatch;
    expect(done0).toMatchObject({ batchNumber: 0, isComplete: true });

    // Players advance toward the end of batch 0.
    for (const segment of [2, 4, 6]) {
      await server.gql(Q.update, {
        input: {
          streamSessionId: id,
          sessionId: 'viewer-1',
          segmentNumber: segment,
          quality: 'Q720P',
        },
      });
    }
    const [, approaching] = await needs.waitFor(2);
    const nextNeed = needOf(approaching!);
    expect(nextNeed).toMatchObject({
      reason: 'APPROACHING_END',
      batchNumber: 1,
      startSegment: 10,
      endSegment: 19,
      videoSourcePath: '/movies/loop.mp4',
      videoStartOffset: 40,
      furthestSegment: 6,
    });
    // v2: only the renditions of the clients it serves: viewer-2 (1080p at 1) is served.
    expect([...nextNeed.qualities].sort()).toEqual(['Q720P']);

    const claimed1 = (await claimFrom(nextNeed)).setCurrentBatch;
    expect(claimed1).toMatchObject({ batchNumber: 1, startSegment: 10, endSegment: 19 });
    // A second encoder that heard the same need loses.
    const rival = await wsCall(server.wsClient(), Q.claim, {
      input: {
        streamSessionId: id,
        batchNumber: 1,
        startSegment: 10,
        endSegment: 19,
        videoSourcePath: '/movies/loop.mp4',
        videoStartOffset: 40,
      },
    });
    expect(codeOf(rival)).toBe('CONFLICT');
    await call(Q.complete, { streamSessionId: id, batchNumber: 1 });

    const state = (await call(Q.session, { id })).streamSession;
    expect(state).toMatchObject({
      currentBatch: { batchNumber: 1, startSegment: 10, endSegment: 19, isComplete: true },
      furthestSegment: 6,
      slowestSegment: 1,
      shouldGenerateNextBatch: false,
    });
    // Nothing else was announced in between: the next need is the marker.
    // v2: batch 1 was made in 720p only, so viewer-2 at 16 in 1080p needs its rendition there.
    await server.gql(Q.update, {
      input: { streamSessionId: id, sessionId: 'viewer-2', segmentNumber: 16, quality: 'Q1080P' },
    });
    const events = await needs.waitFor(3);
    expect(events.map(brief)).toEqual([
      'FIRST_BATCH 0@0',
      'APPROACHING_END 1@10',
      'QUALITY_CHANGE 2@16',
    ]);
    needs.stop();
  });
});

describe('a reconnecting subscriber', () => {
  it('gets the needs that became pending while it was away', async () => {
    const id = uid('reconnect');
    const s = sessionDriver(() => server);
    const firstClient = server.wsClient();
    const before = wsSubscribe<NeedEvent>(firstClient, Q.batchNeeded, { streamSessionId: id });
    await s.create(id, { batchSize: 10, threshold: 3 });
    await before.waitFor(1);
    await s.claim(id, 0, 0, 9);
    await s.complete(id, 0);

    // The encoder drops off; a need arises while it is gone.
    await firstClient.dispose();
    await s.move(id, 'p', 7);
    expect(before.events.map(brief)).toEqual(['FIRST_BATCH 0@0']);

    const after = wsSubscribe<NeedEvent>(server.wsClient(), Q.batchNeeded, { streamSessionId: id });
    const [replayed] = await after.waitFor(1);
    expect(needOf(replayed!)).toMatchObject({
      reason: 'APPROACHING_END',
      batchNumber: 1,
      startSegment: 10,
      furthestSegment: 7,
    });
    // Then the live ones, with nothing repeated.
    await s.claim(id, 1, 10, 19);
    await s.complete(id, 1);
    await s.move(id, 'p', 25);
    const events = await after.waitFor(2);
    expect(events.map(brief)).toEqual(['APPROACHING_END 1@10', 'SEEK_AHEAD 2@25']);
    after.stop();
  });

  it('an unfiltered subscriber reconnecting gets every pending need, not only one session', async () => {
    const a = uid('reconnect-a');
    const b = uid('reconnect-b');
    const s = sessionDriver(() => server);
    const client = server.wsClient();
    const first = wsSubscribe<NeedEvent>(client, Q.batchNeeded);
    await s.create(a);
    await s.create(b);
    const ids = (events: NeedEvent[]) => events.map((e) => needOf(e).streamSession.id);
    await expect.poll(() => ids(first.events).filter((x) => x === a || x === b).length).toBe(2);
    await client.dispose();

    const again = wsSubscribe<NeedEvent>(server.wsClient(), Q.batchNeeded);
    await expect
      .poll(() =>
        ids(again.events)
          .filter((x) => x === a || x === b)
          .sort(),
      )
      .toEqual([a, b].sort());
    again.stop();
  });
});
