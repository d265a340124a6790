/**
 * Hostile input, property-based: random and malicious values in every input
 * of every query and mutation, random request bodies and Authorization
 * headers over HTTP, and random frames over WebSocket. Whatever comes in,
 * the server answers with the contract's error codes (or succeeds), never
 * crashes, and a rejected mutation changes nothing.
 */
import fc from 'fast-check';
import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { ManualClock } from '../src/state/clock.js';
import { ERROR_CODES } from '../src/state/errors.js';
import {
  ADMIN_TOKEN,
  authOverrides,
  ENCODER_TOKEN,
  type GraphQLResponse,
  memoryStoreState,
  Q,
  sleep,
  startTestServer,
  type TestServer,
} from './fixtures.js';

const RUNS = 100;

const bearer = (token: string) => `Bearer ${token}`;

let server: TestServer;
let playerToken: string;

// ------------------------------------------------------------------ values

/** A number written into the JSON text as is: 1e999, -0, 9007199254740993... */
class RawJson {
  constructor(readonly text: string) {}
}

/** JSON text of a value that may hold RawJson numbers. */
function toJson(value: unknown): string {
  if (value instanceof RawJson) return value.text;
  if (Array.isArray(value)) return `[${value.map(toJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    return `{${Object.entries(value)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${JSON.stringify(k)}:${toJson(v)}`)
      .join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

const rawNumbers = fc
  .constantFrom(
    '1e999',
    '-1e999',
    '-0',
    '1e-400',
    '9007199254740993',
    '1.0',
    '2147483647.0',
    '0.5',
    '-2147483649',
    '2147483648',
    '1E3',
    '123456789012345678901234567890',
  )
  .map((text) => new RawJson(text));

const controlChars = fc.string({
  unit: fc.constantFrom(
    '\u0000',
    '\u0007',
    '\n',
    '\r',
    '\t',
    '\u001b',
    '\u007f',
    '\u0085',
    '\u2028',
    '\u202e',
    '\ufeff',
    'a',
  ),
  minLength: 1,
});

const nastyStrings = fc.constantFrom(
  '',
  ' ',
  'x'.repeat(128),
  'x'.repeat(129),
  'y'.repeat(4_096),
  'y'.repeat(4_097),
  'z'.repeat(20_000),
  'Q720P',
  'q720p',
  '__proto__',
  'constructor',
  'toString',
  '{"$gt":""}',
  '<script>alert(1)</script>',
  "' OR 1=1 --",
  '../../../etc/passwd',
  '%00',
  '\u0024{jndi:ldap://x}',
  '\ud800',
  '👩‍👩‍👧‍👦',
  'h-1',
  'h-2',
);

const scalar = fc.oneof(
  fc.integer(),
  fc.constantFrom(
    0,
    -1,
    1,
    2_147_483_647,
    -2_147_483_648,
    2_147_483_648,
    -2_147_483_649,
    Number.MAX_SAFE_INTEGER,
    -Number.MAX_SAFE_INTEGER,
    Number.MAX_VALUE,
    Number.MIN_VALUE,
  ),
  // NaN and ±Infinity become null in JSON.
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.string(),
  fc.string({ unit: 'grapheme' }),
  fc.string({ unit: 'binary' }),
  controlChars,
  nastyStrings,
  rawNumbers,
);

/** Anything: scalars, and arrays and objects of anything, where any value may go. */
const hostile: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalar,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(fc.string({ maxLength: 8 }), tie('value'), { maxKeys: 4 }),
  ),
})).value;

const OMIT = Symbol('omit');

/** Mostly valid (so that deeper checks are reached), often hostile, sometimes left out. */
const field = (valid: fc.Arbitrary<unknown>) =>
  fc.oneof(
    { arbitrary: valid, weight: 3 },
    { arbitrary: hostile, weight: 3 },
    { arbitrary: fc.constant(OMIT), weight: 1 },
  );

function fields(
  shape: Record<string, fc.Arbitrary<unknown>>,
): fc.Arbitrary<Record<string, unknown>> {
  return fc
    .record(Object.fromEntries(Object.entries(shape).map(([k, v]) => [k, field(v)])))
    .map((record) => Object.fromEntries(Object.entries(record).filter(([, v]) => v !== OMIT)));
}

/** An input object: its fields, or something hostile in its place. */
const inputObject = (shape: Record<string, fc.Arbitrary<unknown>>) =>
  fc.oneof({ arbitrary: fields(shape), weight: 5 }, { arbitrary: hostile, weight: 1 });

const streamSessionIds = fc.constantFrom('h-1', 'h-2', 'missing');
const sessionIds = fc.constantFrom('p1', 'p2', 'viewer-ü');
const smallInt = fc.integer({ min: 0, max: 300 });
const paths = fc.constantFrom('/media/a.mp4', '/m/ü ñ.mkv');
const qualities = fc.constantFrom('Q1080P', 'Q720P', 'Q480P');

interface Operation {
  readonly name: string;
  readonly mutation: boolean;
  readonly document: string;
  readonly variables: fc.Arbitrary<Record<string, unknown>>;
}

const OPERATIONS: readonly Operation[] = [
  {
    name: 'streamSession',
    mutation: false,
    document: 'query($id: ID!) { streamSession(id: $id) { id clientPositions { sessionId } } }',
    variables: fields({ id: streamSessionIds }),
  },
  {
    name: 'streamSessions',
    mutation: false,
    document:
      'query($limit: Int, $offset: Int) { streamSessions(limit: $limit, offset: $offset) { id } }',
    variables: fields({ limit: smallInt, offset: smallInt }),
  },
  {
    name: 'createStreamSession',
    mutation: true,
    document: Q.create,
    variables: fc.record({
      input: inputObject({
        id: fc.constantFrom('h-2', 'new-1', 'new-2'),
        videoSourcePath: paths,
        segmentDuration: fc.integer({ min: 1, max: 10 }),
        batchSize: fc.integer({ min: 1, max: 50 }),
        threshold: fc.integer({ min: 0, max: 10 }),
        startSegment: smallInt,
      }),
    }),
  },
  {
    name: 'endStreamSession',
    mutation: true,
    document: Q.end,
    // Valid ids that leave the two shared sessions alone.
    variables: fields({ id: fc.constantFrom('new-1', 'new-2', 'missing') }),
  },
  {
    name: 'updateClientPosition',
    mutation: true,
    document: Q.update,
    variables: fc.record({
      input: inputObject({
        streamSessionId: streamSessionIds,
        sessionId: sessionIds,
        segmentNumber: smallInt,
        quality: qualities,
      }),
    }),
  },
  {
    name: 'removeClient',
    mutation: true,
    document: Q.remove,
    variables: fields({ streamSessionId: streamSessionIds, sessionId: sessionIds }),
  },
  {
    name: 'setCurrentBatch',
    mutation: true,
    document: Q.claim,
    variables: fc.record({
      input: inputObject({
        streamSessionId: streamSessionIds,
        batchNumber: fc.integer({ min: 0, max: 3 }),
        startSegment: smallInt,
        endSegment: smallInt,
        videoSourcePath: paths,
        videoStartOffset: smallInt,
      }),
    }),
  },
  {
    name: 'completeBatch',
    mutation: true,
    document: Q.complete,
    variables: fields({
      streamSessionId: streamSessionIds,
      batchNumber: fc.integer({ min: 0, max: 3 }),
    }),
  },
  {
    name: 'issueClientToken',
    mutation: true,
    document:
      'mutation($streamSessionId: ID!, $sessionId: ID!, $ttlSeconds: Int) { issueClientToken(streamSessionId: $streamSessionId, sessionId: $sessionId, ttlSeconds: $ttlSeconds) }',
    variables: fields({
      streamSessionId: streamSessionIds,
      sessionId: sessionIds,
      ttlSeconds: fc.integer({ min: 1, max: 604_800 }),
    }),
  },
];

/** Mostly the admin, who gets furthest; sometimes another caller. */
const callers = fc.constantFrom<() => Record<string, string>>(
  () => ({ authorization: bearer(ADMIN_TOKEN) }),
  () => ({ authorization: bearer(ADMIN_TOKEN) }),
  () => ({ authorization: bearer(ADMIN_TOKEN) }),
  () => ({ authorization: bearer(ENCODER_TOKEN) }),
  () => ({ authorization: bearer(playerToken) }),
  () => ({}),
);

// ------------------------------------------------------------------ checks

interface Answer {
  status: number;
  text: string;
  body: any;
}

async function post(body: string, headers: Record<string, string>): Promise<Answer> {
  const response = await fetch(server.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', ...headers },
    body,
  });
  const text = await response.text();
  return { status: response.status, text, body: JSON.parse(text) };
}

/** Every error of an answer (one result, or a batch of them) has a contract code and no stack. */
function expectContractErrors(answer: Answer): void {
  expect(answer.status).toBeLessThan(500);
  expect(answer.text).not.toMatch(/"stack"\s*:|\n\s+at |node_modules/);
  const results: GraphQLResponse[] = Array.isArray(answer.body) ? answer.body : [answer.body];
  for (const result of results) {
    for (const error of result.errors ?? []) {
      expect(ERROR_CODES, `${error.extensions?.code}: ${error.message}`).toContain(
        error.extensions?.code,
      );
    }
  }
}

/**
 * Everything the server holds, from its store: every stream session with its
 * settings, batch, clients and need bookkeeping (more than streamSessions
 * shows). The clock is a ManualClock, so equal state gives equal text.
 */
function snapshot(): string {
  return JSON.stringify(memoryStoreState(server.app));
}

async function expectServing(): Promise<void> {
  const health = await fetch(`${server.baseUrl}/healthz`);
  expect(health.status).toBe(200);
  expect(await health.json()).toEqual({ status: 'ok' });
  // A new graphql-ws client connects and is served.
  const client = createClient({
    url: server.wsUrl,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    connectionParams: { authorization: bearer(ENCODER_TOKEN) },
  });
  try {
    const result = await new Promise<unknown>((resolve, reject) => {
      let value: unknown;
      client.subscribe(
        { query: 'query { streamSession(id: "h-1") { id } }' },
        {
          next: (v) => {
            value = v;
          },
          error: reject,
          complete: () => resolve(value),
        },
      );
    });
    expect(result).toEqual({ data: { streamSession: { id: 'h-1' } } });
  } finally {
    await client.dispose();
  }
}

beforeAll(async () => {
  server = await startTestServer(authOverrides, new ManualClock());
  const admin = { authorization: bearer(ADMIN_TOKEN) };
  for (const id of ['h-1', 'h-2']) {
    const created = await server.gql(
      Q.create,
      { input: { id, videoSourcePath: '/media/h.mp4', batchSize: 20, threshold: 5 } },
      admin,
    );
    expect(created.errors).toBeUndefined();
  }
  await server.gql(
    Q.update,
    { input: { streamSessionId: 'h-1', sessionId: 'p1', segmentNumber: 3, quality: 'Q720P' } },
    admin,
  );
  const issued = await server.gql(
    'mutation { issueClientToken(streamSessionId: "h-1", sessionId: "p1") }',
    {},
    admin,
  );
  playerToken = issued.data?.issueClientToken;
  expect(playerToken).toBeTypeOf('string');
});
afterAll(() => server.stop());

// ------------------------------------------------------------------ HTTP

describe('hostile variables in every input of every operation', () => {
  for (const operation of OPERATIONS) {
    it(`${operation.name}: contract codes only, and a rejected mutation changes nothing`, async () => {
      let rejected = 0;
      await fc.assert(
        fc.asyncProperty(operation.variables, callers, async (variables, caller) => {
          const before = snapshot();
          const answer = await post(
            `{"query":${JSON.stringify(operation.document)},"variables":${toJson(variables)}}`,
            caller(),
          );
          expectContractErrors(answer);
          const failed = (answer.body.errors?.length ?? 0) > 0;
          if (failed) {
            rejected += 1;
            expect(answer.body.data?.[operation.name] ?? null).toBeNull();
            expect(snapshot()).toBe(before);
          } else {
            expect(answer.body.data?.[operation.name]).not.toBeUndefined();
          }
        }),
        { numRuns: RUNS },
      );
      // The generators did reach the server's checks.
      expect(rejected).toBeGreaterThan(0);
      await expectServing();
    });
  }
});

describe('operations the server cannot pick', () => {
  const cases: Array<[string, Record<string, unknown>]> = [
    [
      'two operations and no operationName',
      { query: 'query A { __typename } query B { __typename }' },
    ],
    [
      'an operationName the document does not have',
      { query: 'query A { __typename } query B { __typename }', operationName: 'C' },
    ],
    [
      'an operationName for an anonymous operation',
      { query: '{ __typename }', operationName: 'C' },
    ],
  ];
  for (const [name, body] of cases) {
    it(`${name}: a contract error code`, async () => {
      const answer = await post(JSON.stringify(body), { authorization: bearer(ADMIN_TOKEN) });
      expect(answer.body.errors?.length).toBeGreaterThan(0);
      expectContractErrors(answer);
    });
  }
});

describe('hostile requests', () => {
  const documents = fc.constantFrom(
    ...OPERATIONS.map((o) => o.document),
    '{ __typename }',
    '{ streamSessions { id',
    'mutation { endStreamSession(id: "h-1") }',
    '{ streamSession(id: "h-1") { ...F } } fragment F on StreamSession { ...F }',
    '',
  );

  it('arbitrary bodies get contract codes, never a crash', async () => {
    const body = fc.oneof(
      fc.string(),
      fc.string({ unit: 'binary' }),
      fc.json(),
      hostile.map(toJson),
      fc
        .record(
          {
            query: fc.oneof(documents, fc.string(), hostile),
            variables: hostile,
            extensions: hostile,
          },
          { requiredKeys: [] },
        )
        .map(toJson),
      // An operationName that names no operation of the document is answered with
      // OPERATION_RESOLUTION_FAILURE, outside the contract: a bug pinned by
      // 'operations the server cannot pick' above. Here it always names one.
      fc
        .record({
          query: fc.constant('query A { __typename } mutation B { endStreamSession(id: "h-1") }'),
          operationName: fc.constantFrom('A', 'B'),
          variables: hostile,
        })
        .map(toJson),
      fc.array(fc.record({ query: documents, variables: hostile }), { maxLength: 3 }).map(toJson),
    );
    await fc.assert(
      fc.asyncProperty(body, async (text) => {
        const before = snapshot();
        // As an encoder: whatever the body says, it may not end a session.
        const answer = await post(text, { authorization: bearer(ENCODER_TOKEN) });
        expectContractErrors(answer);
        expect(snapshot()).toBe(before);
      }),
      { numRuns: 200 },
    );
    await expectServing();
  });

  it('arbitrary Authorization headers are UNAUTHENTICATED, never more', async () => {
    const encode = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
    const claims = {
      ssid: 'h-1',
      sub: 'p1',
      iss: 'hls-batch-coordinator',
      aud: 'player',
      exp: 4_102_444_800,
    };
    const forged = fc.constantFrom(
      // alg none, no signature.
      `${encode({ alg: 'none', typ: 'JWT' })}.${encode(claims)}.`,
      // HS256 with an empty or made-up signature.
      `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode(claims)}.`,
      `${encode({ alg: 'HS256', typ: 'JWT' })}.${encode(claims)}.${'A'.repeat(43)}`,
      // Another algorithm.
      `${encode({ alg: 'RS256', typ: 'JWT' })}.${encode(claims)}.${'A'.repeat(342)}`,
      // The real player token with its claims swapped for another session's.
      `${playerToken.split('.')[0]}.${encode({ ...claims, ssid: 'h-2' })}.${playerToken.split('.')[2]}`,
      ADMIN_TOKEN.toUpperCase(),
      ADMIN_TOKEN.slice(1),
      `${ADMIN_TOKEN}\t${ADMIN_TOKEN}`,
    );
    const headerChars = fc.string({
      unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)),
      maxLength: 300,
    });
    const header = fc.oneof(
      headerChars,
      headerChars.map((t) => `Bearer ${t}`),
      forged.map((t) => `Bearer ${t}`),
      forged,
    );
    await fc.assert(
      fc.asyncProperty(header, async (authorization) => {
        const answer = await post(JSON.stringify({ query: Q.sessions }), { authorization });
        expectContractErrors(answer);
        expect(answer.body.errors?.map((e: any) => e.extensions?.code)).toEqual([
          'UNAUTHENTICATED',
        ]);
        expect(answer.text).not.toContain(ADMIN_TOKEN);
      }),
      { numRuns: RUNS },
    );
    await expectServing();
  });
});

// ------------------------------------------------------------------ WebSocket

interface Seen {
  messages: string[];
  /** The close code when the server closed the socket; null when we did. */
  serverClose: number | null;
}

/**
 * Opens a raw graphql-transport-ws socket, optionally sends connection_init,
 * then the frames, then a ping; collects what the server says until it
 * closes the socket or has answered the ping (and a moment more), then
 * closes it.
 */
async function exchange(init: string | null, frames: readonly string[]): Promise<Seen> {
  const socket = new WebSocket(server.wsUrl, 'graphql-transport-ws');
  const seen: Seen = { messages: [], serverClose: null };
  let closedByUs = false;
  let pong: () => void = () => {};
  const ponged = new Promise<void>((resolve) => {
    pong = resolve;
  });
  const closed = new Promise<void>((resolve) => {
    socket.on('close', (code) => {
      if (!closedByUs) seen.serverClose = code;
      resolve();
    });
  });
  let firstMessage: () => void = () => {};
  const answered = new Promise<void>((resolve) => {
    firstMessage = resolve;
  });
  socket.on('message', (data) => {
    const text = String(data);
    seen.messages.push(text);
    firstMessage();
    if (text.includes('"pong"')) pong();
  });
  socket.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    socket.once('open', () => resolve());
    socket.once('error', reject);
  });
  const open = () => socket.readyState === WebSocket.OPEN;
  if (init !== null) {
    socket.send(init);
    await Promise.race([answered, closed]);
  }
  for (const frame of frames) if (open()) socket.send(frame);
  if (open()) socket.send('{"type":"ping"}');
  // A moment more after the pong: graphql-ws handles messages concurrently, so what the
  // frames cause may come after it. None is required; whatever comes is checked.
  await Promise.race([ponged.then(() => sleep(20)), closed]);
  if (open()) {
    closedByUs = true;
    socket.close(1000);
  }
  await closed;
  return seen;
}

const MESSAGE_TYPES = new Set(['connection_ack', 'next', 'error', 'complete', 'ping', 'pong']);

/** The server closed with a 4xxx code or not at all, and said only well-formed things. */
function expectWellBehaved(seen: Seen): void {
  // 4xxx: graphql-ws' own; 1009: a message over the size cap (ws' Message Too Big).
  if (seen.serverClose !== null && seen.serverClose !== 1009) {
    expect(seen.serverClose).toBeGreaterThanOrEqual(4000);
    expect(seen.serverClose).toBeLessThan(5000);
  }
  for (const text of seen.messages) {
    expect(text).not.toMatch(/"stack"\s*:|\n\s+at |node_modules/);
    const message = JSON.parse(text);
    expect(MESSAGE_TYPES).toContain(message.type);
    const errors =
      message.type === 'error'
        ? message.payload
        : message.type === 'next'
          ? message.payload.errors
          : [];
    if (message.type === 'error') expect(Array.isArray(errors)).toBe(true);
    for (const error of errors ?? []) {
      expect(ERROR_CODES, `${error.extensions?.code}: ${error.message}`).toContain(
        error.extensions?.code,
      );
    }
  }
}

const init = (authorization?: unknown) =>
  JSON.stringify({
    type: 'connection_init',
    ...(authorization === undefined ? {} : { payload: { authorization } }),
  });
const subscribeFrame = (id: string, query: string, variables?: unknown) =>
  toJson({
    type: 'subscribe',
    id,
    payload: { query, ...(variables === undefined ? {} : { variables }) },
  });
const LONG_LIVED = 'subscription { streamSessionEnded(streamSessionId: "h-1") { id } }';

describe('WebSocket frames', () => {
  const cases: Array<[string, string | null, string[], (seen: Seen) => void]> = [
    [
      'text that is not JSON',
      init(bearer(ENCODER_TOKEN)),
      ['hello?'],
      (s) => expect(s.serverClose).toBe(4400),
    ],
    [
      'JSON of an unknown type',
      init(bearer(ENCODER_TOKEN)),
      ['{"type":"bogus"}'],
      (s) => expect(s.serverClose).toBe(4400),
    ],
    [
      'a subscribe before connection_init',
      null,
      [subscribeFrame('1', '{ __typename }')],
      (s) => expect(s.serverClose).toBe(4401),
    ],
    [
      'a second connection_init',
      init(bearer(ENCODER_TOKEN)),
      [init(bearer(ENCODER_TOKEN))],
      (s) => expect(s.serverClose).toBe(4429),
    ],
    [
      'connection_init with a payload that is no object',
      null,
      ['{"type":"connection_init","payload":"x"}'],
      (s) => expect(s.serverClose).toBe(4400),
    ],
    [
      'connection_init with a non-string authorization',
      null,
      [init({ token: ADMIN_TOKEN })],
      (s) => expect(s.serverClose).toBe(4403),
    ],
    [
      'a duplicate id while the first subscription runs',
      init(bearer(ENCODER_TOKEN)),
      [subscribeFrame('dup', LONG_LIVED), subscribeFrame('dup', LONG_LIVED)],
      (s) => expect(s.serverClose).toBe(4409),
    ],
    [
      'a next message from the client',
      init(bearer(ENCODER_TOKEN)),
      ['{"type":"next","id":"1","payload":{"data":{}}}'],
      (s) => expect(s.serverClose).toBe(4400),
    ],
    [
      'an error message from the client',
      init(bearer(ENCODER_TOKEN)),
      ['{"type":"error","id":"1","payload":[{"message":"x"}]}'],
      (s) => expect(s.serverClose).toBe(4400),
    ],
    [
      'a connection_ack from the client',
      init(bearer(ENCODER_TOKEN)),
      ['{"type":"connection_ack"}'],
      (s) => expect(s.serverClose).toBe(4400),
    ],
    [
      'a complete for an unknown id',
      init(bearer(ENCODER_TOKEN)),
      ['{"type":"complete","id":"nope"}'],
      (s) => expect(s.serverClose).toBeNull(),
    ],
    [
      'a syntax error',
      init(bearer(ENCODER_TOKEN)),
      // A text of its own: yoga caches parse results, and HTTP may have parsed the same text.
      [subscribeFrame('1', `{ streamSessions { id # ${Math.random()}`)],
      (s) => {
        const error = s.messages.map((m) => JSON.parse(m)).find((m) => m.type === 'error');
        expect(error?.payload?.[0]?.extensions?.code).toBe('GRAPHQL_PARSE_FAILED');
      },
    ],
    [
      'two operations and no operationName',
      init(bearer(ENCODER_TOKEN)),
      [subscribeFrame('1', 'query A { __typename } query B { __typename }')],
      (s) =>
        expect(s.messages.some((m) => m.includes('"errors"') || m.includes('"error"'))).toBe(true),
    ],
    [
      'a 1 MB payload',
      init(bearer(ENCODER_TOKEN)),
      [subscribeFrame('big', '{ __typename }', { pad: 'x'.repeat(1_000_000) })],
      // Over the 64 KiB cap on one message, as on one HTTP body.
      (s) => expect(s.serverClose).toBe(1009),
    ],
    [
      'a 100 KB query',
      init(bearer(ENCODER_TOKEN)),
      [subscribeFrame('big', `{ ${'__typename '.repeat(9_000)}}`)],
      (s) => expect(s.serverClose).toBe(1009),
    ],
    [
      'a 60 KB query of 5,000 tokens',
      init(bearer(ENCODER_TOKEN)),
      [subscribeFrame('big', `{ ${'__typename '.repeat(5_000)}}`)],
      // Under the size cap, over the token limit: refused before any work.
      (s) => expect(s.messages.some((m) => m.includes('"error"'))).toBe(true),
    ],
  ];

  for (const [name, first, frames, check] of cases) {
    it(`${name}: closed with a 4xxx (or 1009) code or answered with an error`, async () => {
      // A client's bad frame is the client's fault: nothing is logged as a server error.
      const logged = vi.spyOn(console, 'error').mockImplementation(() => {});
      const seen = await exchange(first, frames).finally(() => logged.mockRestore());
      expect(logged).not.toHaveBeenCalled();
      check(seen);
      expectWellBehaved(seen);
      await expectServing();
    });
  }

  it('random frames, whatever the connection state, never crash the server', async () => {
    const ids = fc.constantFrom('1', '2', 'dup');
    const validSubscribe = fc
      .record({
        id: ids,
        query: fc.constantFrom(
          LONG_LIVED,
          Q.sessions,
          Q.update,
          Q.end,
          '{ __schema { queryType { name } } }',
          'subscription { batchNeeded { reason } }',
        ),
        variables: fc.option(hostile, { nil: undefined }),
      })
      .map(({ id, query, variables }) => subscribeFrame(id, query, variables));
    const frame = fc.oneof(
      fc.string(),
      fc.string({ unit: 'binary' }),
      fc.json(),
      hostile.map(toJson),
      fc
        .record(
          {
            type: fc.oneof(
              // Client-sent server messages (next, error, connection_ack) are tested on their own above.
              fc.constantFrom('connection_init', 'ping', 'pong', 'subscribe', 'complete'),
              fc.string(),
            ),
            id: fc.oneof(ids, hostile),
            payload: hostile,
          },
          { requiredKeys: ['type'] },
        )
        .map(toJson),
      validSubscribe,
      validSubscribe,
    );
    const first = fc.constantFrom(
      init(bearer(ENCODER_TOKEN)),
      init(bearer(ADMIN_TOKEN)),
      init(bearer(playerToken)),
      init(),
      init('Bearer nope'),
      null,
    );
    await fc.assert(
      fc.asyncProperty(
        first,
        fc.array(frame, { minLength: 1, maxLength: 6 }),
        async (f, frames) => {
          expectWellBehaved(await exchange(f === null ? null : f, frames));
        },
      ),
      { numRuns: RUNS },
    );
    await expectServing();
  });
});
