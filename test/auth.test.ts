/**
 * Access control, operation by operation: every operation of the schema ×
 * every kind of caller × HTTP (SSE for subscriptions) and WebSocket, each row
 * with state of its own, asserting the exact outcome (allowed, or the exact
 * extensions.code) and that a denied operation changed nothing.
 */
import { readFile } from 'node:fs/promises';
import { buildSchema } from 'graphql';
import { type Client, createClient } from 'graphql-ws';
import { decodeJwt, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { defaultConfig } from '../src/config.js';
import { buildApp } from '../src/server/app.js';
import { silentLogger } from '../src/server/logger.js';
import { ManualClock } from '../src/state/clock.js';
import { ERROR_CODES } from '../src/state/errors.js';
import {
  ADMIN_TOKEN,
  authOverrides,
  CLIENT_TOKEN_SECRET,
  ENCODER_TOKEN,
  eventually,
  type GraphQLResponse,
  memoryStoreState,
  Q,
  sseSubscribe,
  startTestServer,
  type TestServer,
} from './fixtures.js';

const OTHER_SECRET = 'x'.repeat(40);
const ISSUER = 'hls-batch-coordinator';
const AUDIENCE = 'player';

const bearer = (token: string) => `Bearer ${token}`;

/** A player token signed by us: with another key, or already expired. */
async function signPlayerToken(
  streamSessionId: string,
  sessionId: string,
  { secret, exp }: { secret: string; exp: number },
): Promise<string> {
  return new SignJWT({ ssid: streamSessionId })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
    .setSubject(sessionId)
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setIssuedAt(exp - 3_600)
    .setExpirationTime(exp)
    .sign(new TextEncoder().encode(secret));
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** Every error carries a contract code and no stack trace. */
function expectWellFormedErrors(response: GraphQLResponse): void {
  for (const error of response.errors ?? []) {
    expect(ERROR_CODES).toContain(error.extensions?.code);
    expect(JSON.stringify(error)).not.toMatch(/"stack"|\n\s+at /);
  }
}

// ---------------------------------------------------------------- WebSocket

/** A graphql-ws client that connects on its first operation, with these credentials. */
function wsConnect(url: string, authorization?: string): { client: Client } {
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    lazy: true,
    // One socket for the client's life, however many operations it runs one after another.
    lazyCloseTimeout: 60_000,
    retryAttempts: 0,
    connectionParams: authorization === undefined ? {} : { authorization },
  });
  return { client };
}

type Outcome = { result: GraphQLResponse } | { closeCode: number };

/**
 * The first thing an operation gets over graphql-ws: its first result (a
 * subscription is then completed), its errors, or the socket's close code.
 */
function wsFirst(client: Client, query: string, variables?: Record<string, unknown>) {
  return new Promise<Outcome>((resolve, reject) => {
    let settled = false;
    const stop = client.subscribe(
      { query, variables },
      {
        next: (value) => {
          if (settled) return;
          settled = true;
          resolve({ result: value as GraphQLResponse });
          stop();
        },
        error: (error) => {
          if (settled) return;
          settled = true;
          if (Array.isArray(error)) resolve({ result: { errors: error } });
          else if (typeof (error as { code?: unknown }).code === 'number') {
            resolve({ closeCode: (error as { code: number }).code });
          } else reject(error);
        },
        complete: () => {
          if (!settled) reject(new Error('completed without a result'));
        },
      },
    );
  });
}

// ------------------------------------------------------------------ the table

const CALLERS = [
  'none',
  'garbage',
  'wrongSignature',
  'expired',
  'otherStreamSession',
  'otherClient',
  'player',
  'encoder',
  'admin',
] as const;
type Caller = (typeof CALLERS)[number];
const UNAUTHENTICATED_CALLERS: readonly Caller[] = ['none', 'garbage', 'wrongSignature', 'expired'];

/** One row's own stream session, its client p1 at segment 3, and a credential per caller. */
interface Row {
  streamSessionId: string;
  authorization: Record<Caller, string | undefined>;
  /** Every token the row made, none of which may show in an error. */
  secrets: string[];
}

interface Operation {
  readonly name: string;
  readonly kind: 'query' | 'mutation' | 'subscription';
  readonly allowed: readonly Caller[];
  readonly document: string;
  variables(row: Row): Record<string, unknown>;
  /** State the operation needs, made as admin before it runs. */
  setup?(row: Row): Promise<void>;
  /** For a subscription with no pending event: makes one happen, as admin. */
  trigger?(row: Row): Promise<void>;
  /** Checks an allowed call's data and what it did. */
  checkAllowed(data: Record<string, any>, row: Row): Promise<void>;
}

let server: TestServer;
const admin = (query: string, variables?: Record<string, unknown>) =>
  server.gql(query, variables, { authorization: bearer(ADMIN_TOKEN) });

/**
 * Everything the server holds, from its store: every stream session with its
 * settings, batch, clients and need bookkeeping (more than streamSessions
 * shows). The clock is a ManualClock, so equal state gives equal data.
 */
function snapshot(): unknown {
  return memoryStoreState(server.app);
}

async function sessionAsAdmin(id: string): Promise<Record<string, any> | null> {
  const response = await admin(Q.session, { id });
  expect(response.errors).toBeUndefined();
  return response.data?.streamSession ?? null;
}

async function issue(streamSessionId: string, sessionId: string, ttlSeconds = 3_600) {
  const response = await admin(
    'mutation($s: ID!, $c: ID!, $t: Int) { issueClientToken(streamSessionId: $s, sessionId: $c, ttlSeconds: $t) }',
    { s: streamSessionId, c: sessionId, t: ttlSeconds },
  );
  expect(response.errors).toBeUndefined();
  return response.data?.issueClientToken as string;
}

const OTHER_STREAM_SESSION = 'other-stream-session';
let rowCount = 0;

async function prepareRow(): Promise<Row> {
  rowCount += 1;
  const streamSessionId = `row-${rowCount}`;
  const created = await admin(Q.create, {
    input: { id: streamSessionId, videoSourcePath: `/media/${streamSessionId}.mp4`, batchSize: 10 },
  });
  expect(created.errors).toBeUndefined();
  const placed = await admin(Q.update, {
    input: { streamSessionId, sessionId: 'p1', segmentNumber: 3, quality: 'Q720P' },
  });
  expect(placed.errors).toBeUndefined();
  const player = await issue(streamSessionId, 'p1');
  const otherClient = await issue(streamSessionId, 'p2');
  const otherStreamSession = await issue(OTHER_STREAM_SESSION, 'p1');
  const wrongSignature = await signPlayerToken(streamSessionId, 'p1', {
    secret: OTHER_SECRET,
    exp: nowSeconds() + 3_600,
  });
  const expired = await signPlayerToken(streamSessionId, 'p1', {
    secret: CLIENT_TOKEN_SECRET,
    exp: nowSeconds() - 60,
  });
  const garbage = `garbage-${rowCount}-not-a-token`;
  const tokens = { player, otherClient, otherStreamSession, wrongSignature, expired, garbage };
  return {
    streamSessionId,
    authorization: {
      none: undefined,
      garbage: bearer(garbage),
      wrongSignature: bearer(wrongSignature),
      expired: bearer(expired),
      otherStreamSession: bearer(otherStreamSession),
      otherClient: bearer(otherClient),
      player: bearer(player),
      encoder: bearer(ENCODER_TOKEN),
      admin: bearer(ADMIN_TOKEN),
    },
    secrets: [ADMIN_TOKEN, ENCODER_TOKEN, CLIENT_TOKEN_SECRET, ...Object.values(tokens)],
  };
}

const readers: readonly Caller[] = ['admin', 'encoder'];

const OPERATIONS: readonly Operation[] = [
  {
    name: 'streamSession',
    kind: 'query',
    // A player reads its own stream session, whichever client it is.
    allowed: ['admin', 'encoder', 'player', 'otherClient'],
    document: 'query($id: ID!) { streamSession(id: $id) { id clientPositions { sessionId } } }',
    variables: (row) => ({ id: row.streamSessionId }),
    async checkAllowed(data, row) {
      expect(data.streamSession).toEqual({
        id: row.streamSessionId,
        clientPositions: [{ sessionId: 'p1' }],
      });
    },
  },
  {
    name: 'streamSessions',
    kind: 'query',
    allowed: readers,
    document: 'query { streamSessions(limit: 1000) { id } }',
    variables: () => ({}),
    async checkAllowed(data, row) {
      expect(data.streamSessions.map((s: { id: string }) => s.id)).toContain(row.streamSessionId);
    },
  },
  {
    name: 'createStreamSession',
    kind: 'mutation',
    allowed: ['admin'],
    document:
      'mutation($input: CreateStreamSessionInput!) { createStreamSession(input: $input) { id videoSourcePath } }',
    variables: (row) => ({
      input: { id: `created-by-${row.streamSessionId}`, videoSourcePath: '/media/new.mp4' },
    }),
    async checkAllowed(data, row) {
      const id = `created-by-${row.streamSessionId}`;
      expect(data.createStreamSession).toEqual({ id, videoSourcePath: '/media/new.mp4' });
      expect((await sessionAsAdmin(id))?.id).toBe(id);
    },
  },
  {
    name: 'endStreamSession',
    kind: 'mutation',
    allowed: ['admin'],
    document: 'mutation($id: ID!) { endStreamSession(id: $id) }',
    variables: (row) => ({ id: row.streamSessionId }),
    async checkAllowed(data, row) {
      expect(data.endStreamSession).toBe(true);
      expect(await sessionAsAdmin(row.streamSessionId)).toBeNull();
    },
  },
  {
    name: 'updateClientPosition',
    kind: 'mutation',
    allowed: ['admin', 'player'],
    document: Q.update,
    variables: (row) => ({
      input: {
        streamSessionId: row.streamSessionId,
        sessionId: 'p1',
        segmentNumber: 7,
        quality: 'Q480P',
      },
    }),
    async checkAllowed(data, row) {
      expect(data.updateClientPosition).toMatchObject({
        sessionId: 'p1',
        segmentNumber: 7,
        quality: 'Q480P',
      });
      const session = await sessionAsAdmin(row.streamSessionId);
      expect(session?.clientPositions).toMatchObject([{ sessionId: 'p1', segmentNumber: 7 }]);
    },
  },
  {
    name: 'removeClient',
    kind: 'mutation',
    allowed: ['admin', 'player'],
    document: Q.remove,
    variables: (row) => ({ streamSessionId: row.streamSessionId, sessionId: 'p1' }),
    async checkAllowed(data, row) {
      expect(data.removeClient).toBe(true);
      expect((await sessionAsAdmin(row.streamSessionId))?.clientPositions).toEqual([]);
    },
  },
  {
    name: 'setCurrentBatch',
    kind: 'mutation',
    allowed: readers,
    document: Q.claim,
    variables: (row) => ({
      input: {
        streamSessionId: row.streamSessionId,
        batchNumber: 0,
        startSegment: 0,
        endSegment: 9,
        videoSourcePath: `/media/${row.streamSessionId}.mp4`,
        videoStartOffset: 0,
      },
    }),
    async checkAllowed(data, row) {
      expect(data.setCurrentBatch).toMatchObject({
        batchNumber: 0,
        startSegment: 0,
        endSegment: 9,
        isComplete: false,
      });
      const session = await sessionAsAdmin(row.streamSessionId);
      expect(session?.currentBatch).toMatchObject({ batchNumber: 0, isComplete: false });
    },
  },
  {
    name: 'completeBatch',
    kind: 'mutation',
    allowed: readers,
    document: Q.complete,
    variables: (row) => ({ streamSessionId: row.streamSessionId, batchNumber: 0 }),
    async setup(row) {
      const claimed = await admin(Q.claim, {
        input: {
          streamSessionId: row.streamSessionId,
          batchNumber: 0,
          startSegment: 0,
          endSegment: 9,
          videoSourcePath: `/media/${row.streamSessionId}.mp4`,
          videoStartOffset: 0,
        },
      });
      expect(claimed.errors).toBeUndefined();
    },
    async checkAllowed(data, row) {
      expect(data.completeBatch).toMatchObject({ batchNumber: 0, isComplete: true });
      const session = await sessionAsAdmin(row.streamSessionId);
      expect(session?.currentBatch).toMatchObject({ batchNumber: 0, isComplete: true });
    },
  },
  {
    name: 'renewBatchClaim',
    kind: 'mutation',
    allowed: readers,
    document:
      'mutation($s: ID!) { renewBatchClaim(streamSessionId: $s, batchNumber: 0) { batchNumber isComplete } }',
    variables: (row) => ({ s: row.streamSessionId }),
    async setup(row) {
      const claimed = await admin(Q.claim, {
        input: {
          streamSessionId: row.streamSessionId,
          batchNumber: 0,
          startSegment: 0,
          endSegment: 9,
          videoSourcePath: `/media/${row.streamSessionId}.mp4`,
          videoStartOffset: 0,
        },
      });
      expect(claimed.errors).toBeUndefined();
    },
    async checkAllowed(data) {
      expect(data.renewBatchClaim).toEqual({ batchNumber: 0, isComplete: false });
    },
  },
  {
    name: 'releaseSegments',
    kind: 'mutation',
    allowed: readers,
    document:
      'mutation($s: ID!) { releaseSegments(streamSessionId: $s, startSegment: 0, endSegment: 4) }',
    variables: (row) => ({ s: row.streamSessionId }),
    async setup(row) {
      const claimed = await admin(Q.claim, {
        input: {
          streamSessionId: row.streamSessionId,
          batchNumber: 0,
          startSegment: 0,
          endSegment: 9,
          videoSourcePath: `/media/${row.streamSessionId}.mp4`,
          videoStartOffset: 0,
        },
      });
      expect(claimed.errors).toBeUndefined();
      const completed = await admin(Q.complete, {
        streamSessionId: row.streamSessionId,
        batchNumber: 0,
      });
      expect(completed.errors).toBeUndefined();
    },
    async checkAllowed(data, row) {
      expect(data.releaseSegments).toBe(true);
      const { data: after } = await admin(
        'query($id: ID!) { streamSession(id: $id) { coverage { quality startSegment endSegment } } }',
        { id: row.streamSessionId },
      );
      expect(after?.streamSession.coverage).toEqual(
        ['Q1080P', 'Q720P', 'Q480P'].map((quality) => ({
          quality,
          startSegment: 5,
          endSegment: 9,
        })),
      );
    },
  },
  {
    name: 'issueClientToken',
    kind: 'mutation',
    allowed: ['admin'],
    document:
      'mutation($s: ID!, $c: ID!) { issueClientToken(streamSessionId: $s, sessionId: $c, ttlSeconds: 600) }',
    variables: (row) => ({ s: row.streamSessionId, c: 'p9' }),
    async checkAllowed(data, row) {
      const token = data.issueClientToken as string;
      expect(decodeJwt(token)).toMatchObject({ sub: 'p9', ssid: row.streamSessionId });
      // The new token is a working player token for p9 of this session.
      const moved = await server.gql(
        Q.update,
        {
          input: {
            streamSessionId: row.streamSessionId,
            sessionId: 'p9',
            segmentNumber: 1,
            quality: 'Q1080P',
          },
        },
        { authorization: bearer(token) },
      );
      expect(moved.errors).toBeUndefined();
      expect(moved.data?.updateClientPosition.sessionId).toBe('p9');
    },
  },
  {
    name: 'batchNeeded',
    kind: 'subscription',
    allowed: readers,
    document:
      'subscription($s: ID) { batchNeeded(streamSessionId: $s) { streamSession { id } reason batchNumber } }',
    variables: (row) => ({ s: row.streamSessionId }),
    async checkAllowed(data, row) {
      // A fresh session with no batch has a pending FIRST_BATCH need, sent at once.
      expect(data.batchNeeded).toEqual({
        streamSession: { id: row.streamSessionId },
        reason: 'FIRST_BATCH',
        batchNumber: 0,
      });
    },
  },
  {
    name: 'streamSessionEnded',
    kind: 'subscription',
    allowed: readers,
    document: 'subscription($s: ID) { streamSessionEnded(streamSessionId: $s) { id reason } }',
    variables: (row) => ({ s: row.streamSessionId }),
    async trigger(row) {
      // The subscriber may not listen yet: bring the session back and end it again.
      await admin(Q.create, {
        input: { id: row.streamSessionId, videoSourcePath: '/media/again.mp4' },
      });
      await admin(Q.end, { id: row.streamSessionId });
    },
    async checkAllowed(data, row) {
      expect(data.streamSessionEnded).toEqual({ id: row.streamSessionId, reason: 'ENDED' });
    },
  },
  {
    name: 'streamSessionUpdated',
    kind: 'subscription',
    allowed: readers,
    document:
      'subscription($id: ID) { streamSessionUpdated(id: $id) { id clientPositions { sessionId segmentNumber } } }',
    variables: (row) => ({ id: row.streamSessionId }),
    async checkAllowed(data, row) {
      // A new subscriber gets the session's state at once.
      expect(data.streamSessionUpdated).toEqual({
        id: row.streamSessionId,
        clientPositions: [{ sessionId: 'p1', segmentNumber: 3 }],
      });
    },
  },
];

/** Runs the operation over HTTP: POST for queries and mutations, SSE for subscriptions. */
async function overHttp(
  operation: Operation,
  row: Row,
  caller: Caller,
  allowed: boolean,
): Promise<Outcome> {
  const authorization = row.authorization[caller];
  const headers: Record<string, string> = authorization === undefined ? {} : { authorization };
  if (operation.kind !== 'subscription') {
    return { result: await server.gql(operation.document, operation.variables(row), headers) };
  }
  const sse = sseSubscribe<GraphQLResponse>(
    server.url,
    operation.document,
    operation.variables(row),
    headers,
  );
  try {
    await sse.ready;
    const first = sse.waitFor(1);
    if (allowed) await triggerUntil(operation, row, first);
    const [result] = await first;
    return { result: result as GraphQLResponse };
  } finally {
    sse.stop();
  }
}

async function overWebSocket(
  operation: Operation,
  row: Row,
  caller: Caller,
  allowed: boolean,
): Promise<Outcome> {
  const { client } = wsConnect(server.wsUrl, row.authorization[caller]);
  try {
    const first = wsFirst(client, operation.document, operation.variables(row));
    if (allowed) await triggerUntil(operation, row, first);
    return await first;
  } finally {
    await client.dispose();
  }
}

/**
 * Fires the operation's trigger until its first result is in (only a
 * subscription with no pending event has one; denied callers never get it).
 */
async function triggerUntil(operation: Operation, row: Row, first: Promise<unknown>) {
  if (operation.trigger === undefined) return;
  let done = false;
  void first.then(
    () => {
      done = true;
    },
    () => {
      done = true;
    },
  );
  await eventually(async () => {
    if (done) return true;
    await operation.trigger?.(row);
    return false;
  });
}

function expectedOutcome(operation: Operation, caller: Caller, transport: 'HTTP' | 'WebSocket') {
  if (operation.allowed.includes(caller)) return 'allowed';
  if (UNAUTHENTICATED_CALLERS.includes(caller)) {
    return transport === 'WebSocket' ? 'close 4403' : 'UNAUTHENTICATED';
  }
  return 'FORBIDDEN';
}

beforeAll(async () => {
  server = await startTestServer(authOverrides, new ManualClock());
  const other = await admin(Q.create, {
    input: { id: OTHER_STREAM_SESSION, videoSourcePath: '/media/other.mp4' },
  });
  expect(other.errors).toBeUndefined();
});
afterAll(() => server.stop());

describe('the matrix', () => {
  it('has a row for every query, mutation and subscription of the schema', async () => {
    const sdl = await readFile(new URL('../schema.graphql', import.meta.url), 'utf8');
    const schema = buildSchema(sdl);
    const roots = [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()];
    const fields = roots.flatMap((root) => Object.keys(root?.getFields() ?? {}));
    expect(OPERATIONS.map((o) => o.name).sort()).toEqual(fields.sort());
  });
});

describe('every operation × every caller × every transport', () => {
  for (const operation of OPERATIONS) {
    for (const transport of ['HTTP', 'WebSocket'] as const) {
      for (const caller of CALLERS) {
        const expected = expectedOutcome(operation, caller, transport);
        it(`${operation.name} over ${transport} as ${caller}: ${expected}`, async () => {
          const row = await prepareRow();
          try {
            await checkRow(operation, row, caller, transport, expected);
          } finally {
            // The row's sessions go when it is done: the next rows start from a small state.
            await admin(Q.end, { id: row.streamSessionId });
            await admin(Q.end, { id: `created-by-${row.streamSessionId}` });
          }
        });
      }
    }
  }
});

async function checkRow(
  operation: Operation,
  row: Row,
  caller: Caller,
  transport: 'HTTP' | 'WebSocket',
  expected: ReturnType<typeof expectedOutcome>,
) {
  await operation.setup?.(row);
  const before = snapshot();
  const allowed = expected === 'allowed';
  const outcome =
    transport === 'HTTP'
      ? await overHttp(operation, row, caller, allowed)
      : await overWebSocket(operation, row, caller, allowed);

  if (allowed) {
    expect(outcome).toHaveProperty('result');
    const { result } = outcome as { result: GraphQLResponse };
    expect(result.errors).toBeUndefined();
    expect(result.data).toBeTruthy();
    await operation.checkAllowed(result.data as Record<string, any>, row);
    return;
  }

  if (expected === 'close 4403') {
    expect(outcome).toEqual({ closeCode: 4403 });
  } else {
    expect(outcome).toHaveProperty('result');
    const { result } = outcome as { result: GraphQLResponse };
    expect(result.errors?.map((e) => e.extensions?.code)).toEqual([expected]);
    expect(result.data?.[operation.name] ?? null).toBeNull();
    expectWellFormedErrors(result);
    // No token, the caller's own or any other, shows in what the caller is told.
    const told = JSON.stringify(result.errors);
    for (const secret of row.secrets) expect(told).not.toContain(secret);
  }
  // Denied: nothing changed, anywhere.
  expect(snapshot()).toEqual(before);
}

describe('player tokens', () => {
  it('a player token works until its ttl, then is UNAUTHENTICATED on HTTP and WebSocket', async () => {
    const row = await prepareRow();
    const token = await issue(row.streamSessionId, 'p1', 2);
    const { exp } = decodeJwt(token);
    expect(exp).toBeTypeOf('number');
    const update = (segmentNumber: number) => ({
      input: {
        streamSessionId: row.streamSessionId,
        sessionId: 'p1',
        segmentNumber,
        quality: 'Q720P',
      },
    });
    const headers = { authorization: bearer(token) };

    const before = await server.gql(Q.update, update(4), headers);
    expect(before.errors).toBeUndefined();
    expect(before.data?.updateClientPosition.segmentNumber).toBe(4);
    const open = wsConnect(server.wsUrl, bearer(token));
    const overWs = await wsFirst(open.client, Q.update, update(5));
    expect(overWs).toMatchObject({
      result: { data: { updateClientPosition: { segmentNumber: 5 } } },
    });

    // The expiry is on the real clock (jose's check and the verified-token cache read it);
    // a little past it, so that the cache's own rounding is past it too.
    await eventually(() => Date.now() > (exp as number) * 1000 + 50);

    const after = await server.gql(Q.update, update(6), headers);
    expect(after.errors?.map((e) => e.extensions?.code)).toEqual(['UNAUTHENTICATED']);
    // A connection opened while the token was valid loses it too.
    const stale = await wsFirst(open.client, Q.update, update(7));
    expect(stale).toHaveProperty('result');
    expect(
      (stale as { result: GraphQLResponse }).result.errors?.map((e) => e.extensions?.code),
    ).toEqual(['UNAUTHENTICATED']);
    await open.client.dispose();
    // And a new connection is refused at connection_init.
    const fresh = wsConnect(server.wsUrl, bearer(token));
    expect(await wsFirst(fresh.client, Q.update, update(8))).toEqual({ closeCode: 4403 });
    await fresh.client.dispose();

    const session = await sessionAsAdmin(row.streamSessionId);
    expect(session?.clientPositions).toMatchObject([{ sessionId: 'p1', segmentNumber: 5 }]);
  });

  it('issueClientToken for an unknown stream session is NOT_FOUND', async () => {
    const response = await admin(
      'mutation { issueClientToken(streamSessionId: "no-such-session", sessionId: "p1") }',
    );
    expect(response.errors?.map((e) => e.extensions?.code)).toEqual(['NOT_FOUND']);
    expect(response.data).toBeNull();
  });

  it('issueClientToken refuses a ttl outside 1 s .. 7 days (BAD_USER_INPUT)', async () => {
    const row = await prepareRow();
    for (const ttl of [0, -1, 7 * 24 * 3_600 + 1]) {
      const response = await admin(
        'mutation($s: ID!, $t: Int) { issueClientToken(streamSessionId: $s, sessionId: "p1", ttlSeconds: $t) }',
        { s: row.streamSessionId, t: ttl },
      );
      expect(response.errors?.map((e) => e.extensions?.code)).toEqual(['BAD_USER_INPUT']);
    }
    const longest = await admin(
      'mutation($s: ID!) { issueClientToken(streamSessionId: $s, sessionId: "p1", ttlSeconds: 604800) }',
      { s: row.streamSessionId },
    );
    expect(longest.errors).toBeUndefined();
  });

  it('a token for one client is bound to it: two players of one session cannot touch each other', async () => {
    const row = await prepareRow();
    const p2 = await issue(row.streamSessionId, 'p2');
    const own = await server.gql(
      Q.update,
      {
        input: {
          streamSessionId: row.streamSessionId,
          sessionId: 'p2',
          segmentNumber: 1,
          quality: 'Q480P',
        },
      },
      { authorization: bearer(p2) },
    );
    expect(own.errors).toBeUndefined();
    const before = snapshot();
    const theirs = await server.gql(
      Q.remove,
      { streamSessionId: row.streamSessionId, sessionId: 'p1' },
      { authorization: bearer(p2) },
    );
    expect(theirs.errors?.map((e) => e.extensions?.code)).toEqual(['FORBIDDEN']);
    expect(snapshot()).toEqual(before);
  });
});

describe('credentials never leak', () => {
  it('no token, correct or not, shows in an error message', async () => {
    const row = await prepareRow();
    const player = row.authorization.player as string;
    const sent = [
      `Token ${ADMIN_TOKEN}`,
      `Bearer ${ADMIN_TOKEN}x`,
      `Bearer ${ADMIN_TOKEN} ${ENCODER_TOKEN}`,
      `Bearer ${ENCODER_TOKEN.slice(1)}`,
      `Basic ${Buffer.from(`admin:${ADMIN_TOKEN}`).toString('base64')}`,
      `${player}tampered`,
      player.replace(/\.[^.]+$/, `.${'A'.repeat(43)}`),
      `Bearer ${CLIENT_TOKEN_SECRET}`,
    ];
    for (const authorization of sent) {
      const response = await server.gql(Q.sessions, {}, { authorization });
      expect(response.errors?.map((e) => e.extensions?.code)).toEqual(['UNAUTHENTICATED']);
      const told = JSON.stringify(response);
      for (const secret of [ADMIN_TOKEN, ENCODER_TOKEN, CLIENT_TOKEN_SECRET, player.slice(7)]) {
        expect(told).not.toContain(secret);
      }
      expect(told).not.toContain(authorization);
    }
    // Refused by a valid token's role: the message names the role, not the token.
    const forbidden = await server.gql(Q.sessions, {}, { authorization: player });
    expect(forbidden.errors?.map((e) => e.extensions?.code)).toEqual(['FORBIDDEN']);
    expect(JSON.stringify(forbidden)).not.toContain(player.slice(7));
  });
});

describe('subscriptions over SSE', () => {
  it('work with the Authorization header and are UNAUTHENTICATED without it', async () => {
    const row = await prepareRow();
    const query =
      'subscription($s: ID) { batchNeeded(streamSessionId: $s) { reason batchNumber } }';
    const withToken = sseSubscribe<GraphQLResponse>(
      server.url,
      query,
      { s: row.streamSessionId },
      { authorization: bearer(ENCODER_TOKEN) },
    );
    const withoutToken = sseSubscribe<GraphQLResponse>(server.url, query, {
      s: row.streamSessionId,
    });
    try {
      const [allowed] = await withToken.waitFor(1);
      expect(allowed).toEqual({ data: { batchNeeded: { reason: 'FIRST_BATCH', batchNumber: 0 } } });
      const [denied] = await withoutToken.waitFor(1);
      expect(denied?.errors?.map((e) => e.extensions?.code)).toEqual(['UNAUTHENTICATED']);
      expect(denied?.data ?? null).toBeNull();
    } finally {
      withToken.stop();
      withoutToken.stop();
    }
  });
});

describe('AUTH=off', () => {
  let open: TestServer;
  beforeAll(async () => {
    open = await startTestServer({ ...authOverrides, authEnabled: false }, new ManualClock());
  });
  afterAll(() => open.stop());

  const callers: Record<string, Record<string, string>> = {
    'no token': {},
    'a garbage token': { authorization: 'Bearer garbage' },
    'the encoder token': { authorization: bearer(ENCODER_TOKEN) },
    'a malformed header': { authorization: 'nonsense' },
  };
  for (const [name, headers] of Object.entries(callers)) {
    it(`makes ${name} an admin over HTTP`, async () => {
      const id = `open-${name.replaceAll(' ', '-')}`;
      const created = await open.gql(
        Q.create,
        { input: { id, videoSourcePath: '/a.mp4' } },
        headers,
      );
      expect(created.errors).toBeUndefined();
      expect(created.data?.createStreamSession.id).toBe(id);
      const token = await open.gql(
        'mutation($s: ID!) { issueClientToken(streamSessionId: $s, sessionId: "p") }',
        { s: id },
        headers,
      );
      expect(token.errors).toBeUndefined();
      const introspection = await open.gql('{ __schema { queryType { name } } }', {}, headers);
      expect(introspection).toEqual({ data: { __schema: { queryType: { name: 'Query' } } } });
      const ended = await open.gql(Q.end, { id }, headers);
      expect(ended.data?.endStreamSession).toBe(true);
    });
  }

  it('makes a WebSocket without connectionParams an admin', async () => {
    const { client } = wsConnect(open.wsUrl);
    try {
      const created = await wsFirst(client, Q.create, {
        input: { id: 'open-ws', videoSourcePath: '/a.mp4' },
      });
      expect(created).toMatchObject({
        result: { data: { createStreamSession: { id: 'open-ws' } } },
      });
      const needed = await wsFirst(
        client,
        'subscription { batchNeeded(streamSessionId: "open-ws") { reason } }',
      );
      expect(needed).toEqual({ result: { data: { batchNeeded: { reason: 'FIRST_BATCH' } } } });
    } finally {
      await client.dispose();
    }
  });
});

describe('generated secrets', () => {
  let generated: TestServer;
  beforeAll(async () => {
    generated = await startTestServer(
      { ...authOverrides, adminToken: null, encoderToken: null, clientTokenSecret: null },
      new ManualClock(),
    );
  });
  afterAll(() => generated.stop());

  it('are made when unset, and work as admin and encoder tokens', async () => {
    const { adminToken, encoderToken } = generated.app.generatedTokens;
    expect(adminToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(encoderToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(adminToken).not.toBe(encoderToken);

    const asAdmin = { authorization: bearer(adminToken as string) };
    const asEncoder = { authorization: bearer(encoderToken as string) };
    const created = await generated.gql(
      Q.create,
      { input: { id: 'gen', videoSourcePath: '/a.mp4' } },
      asAdmin,
    );
    expect(created.errors).toBeUndefined();
    const listed = await generated.gql(Q.sessions, {}, asEncoder);
    expect(listed).toEqual({ data: { streamSessions: [{ id: 'gen' }] } });
    const notAdmin = await generated.gql(
      Q.create,
      { input: { id: 'gen2', videoSourcePath: '/a.mp4' } },
      asEncoder,
    );
    expect(notAdmin.errors?.map((e) => e.extensions?.code)).toEqual(['FORBIDDEN']);

    // The generated signing key makes player tokens that work...
    const issued = await generated.gql(
      'mutation { issueClientToken(streamSessionId: "gen", sessionId: "p") }',
      {},
      asAdmin,
    );
    const player = { authorization: bearer(issued.data?.issueClientToken as string) };
    const moved = await generated.gql(
      Q.update,
      { input: { streamSessionId: 'gen', sessionId: 'p', segmentNumber: 1, quality: 'Q720P' } },
      player,
    );
    expect(moved.errors).toBeUndefined();
    // ...and the configured tokens of other servers mean nothing here.
    const stranger = await generated.gql(Q.sessions, {}, { authorization: bearer(ADMIN_TOKEN) });
    expect(stranger.errors?.map((e) => e.extensions?.code)).toEqual(['UNAUTHENTICATED']);

    // Over WebSocket as well.
    const { client } = wsConnect(generated.wsUrl, bearer(encoderToken as string));
    try {
      expect(await wsFirst(client, Q.sessions)).toEqual({
        result: { data: { streamSessions: [{ id: 'gen' }] } },
      });
    } finally {
      await client.dispose();
    }
  });

  it('differ from one start to the next, and are not made when configured', async () => {
    const quiet = silentLogger();
    const unset = {
      ...defaultConfig,
      ...authOverrides,
      adminToken: null,
      encoderToken: null,
      clientTokenSecret: null,
    };
    const again = buildApp({ config: unset, logger: quiet });
    const configured = buildApp({
      config: { ...defaultConfig, ...authOverrides },
      logger: quiet,
    });
    try {
      expect(again.generatedTokens.adminToken).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(again.generatedTokens.adminToken).not.toBe(generated.app.generatedTokens.adminToken);
      expect(again.generatedTokens.encoderToken).not.toBe(
        generated.app.generatedTokens.encoderToken,
      );
      expect(configured.generatedTokens).toEqual({});
      expect(await configured.authenticator.authenticate(bearer(ADMIN_TOKEN))).toEqual({
        role: 'admin',
      });
    } finally {
      await Promise.all([again.stop(), configured.stop()]);
    }
  });
});
