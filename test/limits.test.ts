/**
 * What one request, one player and one token may cost: each limit of the
 * README's Security section just below and just above its bound, over the
 * transports it applies to, and that the server still serves afterwards.
 */
import { request } from 'node:http';
import { Lexer, Source, TokenKind } from 'graphql';
import { type Client, createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { defaultConfig } from '../src/config.js';
import { ManualClock } from '../src/state/clock.js';
import {
  ADMIN_TOKEN,
  authOverrides,
  createDeferred,
  ENCODER_TOKEN,
  eventually,
  type GraphQLResponse,
  Q,
  startTestServer,
  type TestServer,
} from './fixtures.js';

const auth = authOverrides;
const POSITION_LIMIT = 5;
const CONNECTION_CAP = 2;
const SUBSCRIPTION_CAP = 2;

const bearer = (token: string) => `Bearer ${token}`;
const asAdmin = { authorization: bearer(ADMIN_TOKEN) };
const asEncoder = { authorization: bearer(ENCODER_TOKEN) };
const codes = (response: GraphQLResponse | undefined) =>
  response?.errors?.map((e) => e.extensions?.code);

/** Tokens as graphql-js' lexer (and so armor) counts them: comments and commas are none. */
function countTokens(query: string): number {
  const lexer = new Lexer(new Source(query));
  let count = 0;
  while (lexer.advance().kind !== TokenKind.EOF) count += 1;
  return count;
}

/** No answer, however it fails, shows a stack trace or where the code lives. */
function expectNoStackTrace(text: string): void {
  expect(text).not.toMatch(/"stack"\s*:/);
  expect(text).not.toMatch(/\bat .*\(?(file:|node:|\/)[^)]*:\d+:\d+/);
  expect(text).not.toMatch(/node_modules|\/src\/|\.ts:\d+/);
}

let server: TestServer;
let clock: ManualClock;
/** Every answer the file got, for the final look for stack traces. */
const answers: string[] = [];

interface Answer {
  status: number;
  body: any;
}

async function send(init: RequestInit & { url?: string }): Promise<Answer> {
  const response = await fetch(init.url ?? server.url, init);
  const text = await response.text();
  answers.push(text);
  expectNoStackTrace(text);
  return { status: response.status, body: text === '' ? undefined : JSON.parse(text) };
}

function postJson(body: unknown, headers: Record<string, string> = asAdmin): Promise<Answer> {
  return send({
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

async function gql(
  query: string,
  variables?: Record<string, unknown>,
  headers: Record<string, string> = asAdmin,
  target: TestServer = server,
): Promise<GraphQLResponse<Record<string, any>>> {
  const { body } = await send({
    url: target.url,
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json', ...headers },
    body: JSON.stringify({ query, variables }),
  });
  return body as GraphQLResponse;
}

async function expectServing(target: TestServer = server): Promise<void> {
  const health = await fetch(`${target.baseUrl}/healthz`);
  expect(health.status).toBe(200);
  expect(await health.json()).toEqual({ status: 'ok' });
  expect(await gql('{ __typename }', undefined, asAdmin, target)).toEqual({
    data: { __typename: 'Query' },
  });
}

async function issue(target: TestServer, streamSessionId: string, sessionId: string) {
  const response = await gql(
    'mutation($s: ID!, $c: ID!) { issueClientToken(streamSessionId: $s, sessionId: $c) }',
    { s: streamSessionId, c: sessionId },
    asAdmin,
    target,
  );
  expect(response.errors).toBeUndefined();
  return response.data?.issueClientToken as string;
}

async function create(target: TestServer, id: string) {
  const response = await gql(
    Q.create,
    { input: { id, videoSourcePath: `/media/${id}.mp4` } },
    asAdmin,
    target,
  );
  expect(response.errors).toBeUndefined();
}

// ---------------------------------------------------------------- WebSocket

interface Connection {
  client: Client;
  connected: Promise<void>;
  closed: Promise<number>;
}

function connect(target: TestServer, authorization: string): Connection {
  const connected = createDeferred();
  const closed = createDeferred<number>();
  const client = createClient({
    url: target.wsUrl,
    webSocketImpl: WebSocket,
    lazy: false,
    retryAttempts: 0,
    connectionParams: { authorization },
    on: {
      connected: () => connected.resolve(),
      closed: (event) => closed.resolve((event as { code: number }).code),
    },
    onNonLazyError: () => {},
  });
  return { client, connected: connected.promise, closed: closed.promise };
}

/** Resolves 'connected', or the close code of a socket that was refused. */
function accepted(connection: Connection): Promise<'connected' | number> {
  return Promise.race([connection.connected.then(() => 'connected' as const), connection.closed]);
}

type Outcome = { result: GraphQLResponse } | { closeCode: number };

/** Subscribes (or runs an operation) and resolves with its first result; stays subscribed. */
function subscribe(client: Client, query: string, variables?: Record<string, unknown>) {
  let unsubscribe = () => {};
  const first = new Promise<Outcome>((resolve, reject) => {
    let settled = false;
    unsubscribe = client.subscribe(
      { query, variables },
      {
        next: (value) => {
          if (!settled) resolve({ result: value as GraphQLResponse });
          settled = true;
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
  void first.then((outcome) => {
    if ('result' in outcome) answers.push(JSON.stringify(outcome.result));
  });
  return { first, unsubscribe: () => unsubscribe() };
}

beforeAll(async () => {
  clock = new ManualClock();
  server = await startTestServer(
    {
      ...auth,
      positionUpdatesPerSecond: POSITION_LIMIT,
      wsMaxConnectionsPerToken: CONNECTION_CAP,
      wsMaxSubscriptionsPerToken: SUBSCRIPTION_CAP,
    },
    clock,
  );
});
afterAll(() => server.stop());

// ------------------------------------------------------------- query shape

/** `{ __typename }` nested in inline fragments: depth `depth`. */
const nested = (depth: number) =>
  `{ ${'... on Query { '.repeat(depth - 1)}__typename${' }'.repeat(depth - 1)} }`;
/** A real introspection field chain (admin only): __type, then ofType..., then name at `depth`. */
const typeChain = (depth: number) =>
  `{ __type(name: "Query") { ${'ofType { '.repeat(depth - 2)}name${' }'.repeat(depth - 2)} } }`;
/** `count` aliased fields (armor does not count aliases of __typename). */
const aliases = (count: number) =>
  `{ ${Array.from({ length: count }, (_, i) => `a${i}: streamSessions(limit: 0) { id }`).join(' ')} }`;

describe('query depth (at most 10)', () => {
  it('accepts depth 10', async () => {
    expect(await gql(nested(10), undefined, asEncoder)).toEqual({
      data: { __typename: 'Query' },
    });
    const chain = await gql(typeChain(10));
    expect(chain.errors).toBeUndefined();
    expect(chain.data?.__type).toEqual({ ofType: null });
  });

  it('refuses depth 11 with GRAPHQL_VALIDATION_FAILED, over HTTP and WebSocket', async () => {
    for (const query of [nested(11), typeChain(11)]) {
      const response = await gql(query);
      expect(codes(response)).toEqual(['GRAPHQL_VALIDATION_FAILED']);
      expect(response.errors?.[0]?.message).toMatch(/depth limit of 10 exceeded, found 11/i);
      expect(response.data).toBeUndefined();
    }
    // Far deeper: the cost limit objects as well, in the same kind of error.
    const deeper = await gql(nested(40));
    expect(new Set(codes(deeper))).toEqual(new Set(['GRAPHQL_VALIDATION_FAILED']));
    expect(deeper.errors?.some((e) => /depth/i.test(e.message))).toBe(true);
    expect(deeper.data).toBeUndefined();
    const ws = connect(server, bearer(ADMIN_TOKEN));
    try {
      const { first } = subscribe(ws.client, nested(11));
      const outcome = await first;
      expect(outcome).toHaveProperty('result');
      expect(codes((outcome as { result: GraphQLResponse }).result)).toEqual([
        'GRAPHQL_VALIDATION_FAILED',
      ]);
    } finally {
      await ws.client.dispose();
    }
    await expectServing();
  });
});

describe('aliases (at most 30)', () => {
  it('accepts 30', async () => {
    const response = await gql(aliases(30), undefined, asEncoder);
    expect(response.errors).toBeUndefined();
    expect(Object.keys(response.data ?? {})).toHaveLength(30);
  });

  it('refuses 31 with GRAPHQL_VALIDATION_FAILED', async () => {
    const response = await gql(aliases(31), undefined, asEncoder);
    expect(codes(response)).toEqual(['GRAPHQL_VALIDATION_FAILED']);
    expect(response.errors?.[0]?.message).toMatch(/alias/i);
    expect(response.data).toBeUndefined();
  });
});

describe('tokens (at most 2,000) and cost (at most 5,000)', () => {
  /**
   * A valid query of exactly `count` tokens, within every other limit: depth
   * 2, 24 aliases, a cost near 2,700, and its fields spread over many
   * selection sets (graphql-js gives up comparing ~1,000 same-named fields in one).
   */
  const tokens = (count: number) => {
    const leaves = (n: number) => '__typename '.repeat(n);
    const build = (padding: number) =>
      `{ ${leaves(padding)}${Array.from(
        { length: 24 },
        (_, i) => `s${i}: streamSession(id: "x") { ${leaves(70)}} `,
      ).join('')}}`;
    const base = countTokens(build(0));
    expect(count).toBeGreaterThan(base);
    const query = build(count - base);
    expect(countTokens(query)).toBe(count);
    return query;
  };

  it('accepts a query of 2,000 tokens', async () => {
    const response = await gql(tokens(2_000));
    expect(response.errors).toBeUndefined();
    expect(response.data?.__typename).toBe('Query');
    expect(response.data?.s23).toBeNull();
  });

  it('refuses a query of 2,001 tokens', async () => {
    const response = await gql(tokens(2_001));
    expect(response.data ?? undefined).toBeUndefined();
    expect(response.errors?.length).toBeGreaterThan(0);
    for (const code of codes(response) ?? []) {
      expect(['GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED']).toContain(code);
    }
    expect(response.errors?.[0]?.message).toMatch(/token/i);
  });

  /**
   * Depth 9: 8 nested inline fragments around `leaves` × __typename. With
   * armor's weights (object 2, scalar 1, × 1.5 per level) 150 leaves cost
   * about 3,943 and 300 about 7,787.
   */
  const costly = (leaves: number) =>
    `{ ${'... on Query { '.repeat(8)}${'__typename '.repeat(leaves)}${'} '.repeat(8)}}`;

  it('accepts a cost under 5,000 and refuses one over it', async () => {
    expect(await gql(costly(150))).toEqual({ data: { __typename: 'Query' } });
    const response = await gql(costly(300));
    expect(codes(response)).toEqual(['GRAPHQL_VALIDATION_FAILED']);
    expect(response.errors?.[0]?.message).toMatch(/cost/i);
  });
});

describe('request body (at most 64 KiB)', () => {
  const LIMIT = 64 * 1024;
  /** A JSON body of exactly `bytes` bytes, padded in an unused variable. */
  const bodyOf = (bytes: number) => {
    const empty = JSON.stringify({ query: '{ __typename }', variables: { pad: '' } });
    const body = JSON.stringify({
      query: '{ __typename }',
      variables: { pad: 'x'.repeat(bytes - empty.length) },
    });
    expect(Buffer.byteLength(body)).toBe(bytes);
    return body;
  };

  it('is the configured default', () => {
    expect(defaultConfig.maxBodyBytes).toBe(LIMIT);
  });

  it('accepts exactly 64 KiB', async () => {
    const { status, body } = await postJson(bodyOf(LIMIT));
    expect(status).toBe(200);
    expect(body).toEqual({ data: { __typename: 'Query' } });
  });

  it('answers one byte more with 413 and BAD_USER_INPUT, and keeps serving', async () => {
    const { status, body } = await postJson(bodyOf(LIMIT + 1));
    expect(status).toBe(413);
    expect(codes(body)).toEqual(['BAD_USER_INPUT']);
    expect(body.data).toBeUndefined();
    await expectServing();
  });

  it('answers a chunked body (no Content-Length) over the limit with 413 too', async () => {
    const url = new URL(server.url);
    const status = await new Promise<number>((resolve, reject) => {
      const req = request(
        {
          host: url.hostname,
          port: url.port,
          path: url.pathname,
          method: 'POST',
          headers: { 'content-type': 'application/json', ...asAdmin },
        },
        (res) => {
          let text = '';
          res.on('data', (chunk) => {
            text += chunk;
          });
          res.on('end', () => {
            answers.push(text);
            expect(codes(JSON.parse(text))).toEqual(['BAD_USER_INPUT']);
            resolve(res.statusCode ?? 0);
          });
        },
      );
      // The server may stop reading once it has answered.
      req.on('error', (error) => {
        if (!/EPIPE|ECONNRESET/.test(String(error))) reject(error);
      });
      req.write('{"query":"{ __typename }","variables":{"pad":"');
      for (let i = 0; i < 20; i++) req.write('y'.repeat(8 * 1024));
      req.end('"}}');
    });
    expect(status).toBe(413);
    await expectServing();
  });
});

describe('batched requests (at most 10 operations)', () => {
  const batch = (count: number) =>
    Array.from({ length: count }, (_, i) => ({ query: `{ n${i}: __typename }` }));

  it('runs 10 operations', async () => {
    const { status, body } = await postJson(batch(10));
    expect(status).toBe(200);
    expect(body).toEqual(Array.from({ length: 10 }, (_, i) => ({ data: { [`n${i}`]: 'Query' } })));
  });

  it('refuses 11 operations, running none of them', async () => {
    const mutations = Array.from({ length: 11 }, (_, i) => ({
      query: `mutation { createStreamSession(input: { id: "batched-${i}", videoSourcePath: "/b.mp4" }) { id } }`,
    }));
    const { status, body } = await postJson(mutations);
    expect(status).toBeGreaterThanOrEqual(400);
    expect(status).toBeLessThan(500);
    expect(codes(body)).toEqual(['BAD_USER_INPUT']);
    expect(body.errors[0].message).toMatch(/10/);
    const listed = await gql('{ streamSessions(limit: 1000) { id } }');
    expect(listed.data?.streamSessions.map((s: { id: string }) => s.id)).not.toContain('batched-0');
    await expectServing();
  });
});

describe('position updates per player', () => {
  const update = (streamSessionId: string, sessionId: string, segmentNumber: number) => ({
    input: { streamSessionId, sessionId, segmentNumber, quality: 'Q720P' },
  });

  /**
   * Sends updates 1, 2, 3... until the first RATE_LIMITED and returns how
   * many went through. A burst that outlasted the limiter's one-second window
   * says nothing about the limit and is retried with a fresh player.
   */
  async function burst(target: TestServer, streamSessionId: string, limit: number) {
    for (let attempt = 0; attempt < 3; attempt++) {
      const sessionId = `burst-${attempt}-${Math.random().toString(36).slice(2)}`;
      const token = await issue(target, streamSessionId, sessionId);
      const headers = { authorization: bearer(token) };
      const started = Date.now();
      let acceptedCount = 0;
      let refused: GraphQLResponse | undefined;
      let lastAcceptedAt: string | undefined;
      for (let n = 1; n <= limit + 5; n++) {
        // Time moves between updates: a refused update that changed anything would show.
        clock.advance(1_000);
        const response = await gql(
          Q.update,
          update(streamSessionId, sessionId, n),
          headers,
          target,
        );
        if (response.errors === undefined) {
          acceptedCount = n;
          lastAcceptedAt = response.data?.updateClientPosition.lastUpdated;
          continue;
        }
        refused = response;
        break;
      }
      if (Date.now() - started < 900) {
        return { sessionId, acceptedCount, refused, lastAcceptedAt, headers };
      }
    }
    throw new Error('every burst outlasted the rate limiter window');
  }

  it(`refuses the ${POSITION_LIMIT + 1}th update in a second with RATE_LIMITED, changing nothing`, async () => {
    await create(server, 'rate');
    const { sessionId, acceptedCount, refused, lastAcceptedAt } = await burst(
      server,
      'rate',
      POSITION_LIMIT,
    );
    expect(acceptedCount).toBe(POSITION_LIMIT);
    expect(codes(refused)).toEqual(['RATE_LIMITED']);
    expect(refused?.data ?? null).toBeNull();

    const session = await gql(Q.session, { id: 'rate' });
    const position = session.data?.streamSession.clientPositions.find(
      (p: { sessionId: string }) => p.sessionId === sessionId,
    );
    // Still where the last accepted update put it, at the time it was accepted.
    expect(position).toEqual({
      sessionId,
      segmentNumber: POSITION_LIMIT,
      quality: 'Q720P',
      lastUpdated: lastAcceptedAt,
    });
    expect(session.data?.streamSession.furthestSegment).toBe(POSITION_LIMIT);

    // The limit is per player: another client of the session still reports.
    const other = await issue(server, 'rate', 'other-player');
    const moved = await gql(Q.update, update('rate', 'other-player', 1), {
      authorization: bearer(other),
    });
    expect(moved.errors).toBeUndefined();
  });

  it('is 10 a second by default', async () => {
    expect(defaultConfig.positionUpdatesPerSecond).toBe(10);
    const byDefault = await startTestServer(
      { ...auth, positionUpdatesPerSecond: defaultConfig.positionUpdatesPerSecond },
      clock,
    );
    try {
      await create(byDefault, 'rate-default');
      const { acceptedCount, refused } = await burst(byDefault, 'rate-default', 10);
      expect(acceptedCount).toBe(10);
      expect(codes(refused)).toEqual(['RATE_LIMITED']);
    } finally {
      await byDefault.stop();
    }
  });
});

describe(`WebSocket connections per token (cap ${CONNECTION_CAP})`, () => {
  it('closes the one over the cap with 4429; closing one frees its slot', async () => {
    const first = connect(server, bearer(ENCODER_TOKEN));
    const second = connect(server, bearer(ENCODER_TOKEN));
    const opened: Connection[] = [first, second];
    try {
      expect(await accepted(first)).toBe('connected');
      expect(await accepted(second)).toBe('connected');
      const third = connect(server, bearer(ENCODER_TOKEN));
      opened.push(third);
      expect(await accepted(third)).toBe(4429);

      // Other tokens have slots of their own.
      const admin = connect(server, bearer(ADMIN_TOKEN));
      opened.push(admin);
      expect(await accepted(admin)).toBe('connected');
      // The connections within the cap still work.
      expect(await subscribe(first.client, Q.sessions).first).toMatchObject({
        result: { data: { streamSessions: expect.any(Array) } },
      });

      await first.client.dispose();
      // A slot freed on the client is freed on the server a moment later: retry until then.
      const replacement = await eventually(async () => {
        const attempt = connect(server, bearer(ENCODER_TOKEN));
        opened.push(attempt);
        return (await accepted(attempt)) === 'connected' ? attempt : false;
      });
      expect(await subscribe(replacement.client, Q.sessions).first).toMatchObject({
        result: { data: { streamSessions: expect.any(Array) } },
      });
      // And the cap holds again.
      const over = connect(server, bearer(ENCODER_TOKEN));
      opened.push(over);
      expect(await accepted(over)).toBe(4429);
    } finally {
      await Promise.all(opened.map((c) => c.client.dispose()));
    }
  });

  it('counts a player token the same way', async () => {
    await create(server, 'ws-player');
    const token = bearer(await issue(server, 'ws-player', 'p'));
    const opened = Array.from({ length: CONNECTION_CAP + 1 }, () => connect(server, token));
    try {
      const outcomes = await Promise.all(opened.map(accepted));
      expect(outcomes.filter((o) => o === 'connected')).toHaveLength(CONNECTION_CAP);
      expect(outcomes.filter((o) => o === 4429)).toHaveLength(1);
    } finally {
      await Promise.all(opened.map((c) => c.client.dispose()));
    }
  });
});

describe(`subscriptions per token (cap ${SUBSCRIPTION_CAP})`, () => {
  const needed = 'subscription { batchNeeded(streamSessionId: "subs") { reason batchNumber } }';
  const firstNeed = {
    result: { data: { batchNeeded: { reason: 'FIRST_BATCH', batchNumber: 0 } } },
  };

  it('refuses the one over the cap, on any of the token’s connections, with RATE_LIMITED', async () => {
    // A session with no batch: every new batchNeeded subscriber hears FIRST_BATCH at once.
    await create(server, 'subs');
    const a = connect(server, bearer(ENCODER_TOKEN));
    const b = connect(server, bearer(ENCODER_TOKEN));
    const c = connect(server, bearer(ADMIN_TOKEN));
    try {
      const s1 = subscribe(a.client, needed);
      expect(await s1.first).toEqual(firstNeed);
      const s2 = subscribe(a.client, needed);
      expect(await s2.first).toEqual(firstNeed);

      const over = await subscribe(b.client, needed).first;
      expect(over).toHaveProperty('result');
      expect(codes((over as { result: GraphQLResponse }).result)).toEqual(['RATE_LIMITED']);
      // Queries do not count; other tokens have their own.
      expect(await subscribe(b.client, Q.sessions).first).toMatchObject({
        result: { data: { streamSessions: expect.any(Array) } },
      });
      expect(await subscribe(c.client, needed).first).toEqual(firstNeed);

      // Completing one frees its slot...
      s1.unsubscribe();
      const s3 = await eventually(async () => {
        const attempt = subscribe(b.client, needed);
        const outcome = await attempt.first;
        return 'result' in outcome && outcome.result.data ? attempt : false;
      });
      expect(await s3.first).toEqual(firstNeed);
      const full = await subscribe(b.client, needed).first;
      expect(codes((full as { result: GraphQLResponse }).result)).toEqual(['RATE_LIMITED']);

      // ...and so does closing the connection that held it.
      await a.client.dispose();
      const s4 = await eventually(async () => {
        const attempt = subscribe(b.client, needed);
        const outcome = await attempt.first;
        return 'result' in outcome && outcome.result.data ? attempt : false;
      });
      expect(await s4.first).toEqual(firstNeed);
      const fullAgain = await subscribe(b.client, needed).first;
      expect(codes((fullAgain as { result: GraphQLResponse }).result)).toEqual(['RATE_LIMITED']);
    } finally {
      await Promise.all([a, b, c].map((x) => x.client.dispose()));
    }
  });
});

describe('introspection', () => {
  const schemaQuery = '{ __schema { queryType { name } } }';
  const typeQuery = '{ __type(name: "StreamSession") { name } }';
  let development: TestServer;
  let player: Record<string, string>;
  let devPlayer: Record<string, string>;

  beforeAll(async () => {
    development = await startTestServer({ ...auth, development: true }, new ManualClock());
    await create(server, 'intro');
    player = { authorization: bearer(await issue(server, 'intro', 'p')) };
    await create(development, 'intro');
    devPlayer = { authorization: bearer(await issue(development, 'intro', 'p')) };
  });
  afterAll(() => development.stop());

  it('is allowed for admins', async () => {
    expect(await gql(schemaQuery)).toEqual({
      data: { __schema: { queryType: { name: 'Query' } } },
    });
    expect(await gql(typeQuery)).toEqual({ data: { __type: { name: 'StreamSession' } } });
  });

  it('is refused with GRAPHQL_VALIDATION_FAILED for encoders, players and anonymous callers', async () => {
    for (const headers of [asEncoder, player, {}]) {
      for (const query of [schemaQuery, typeQuery]) {
        const response = await gql(query, undefined, headers);
        expect(response.data).toBeUndefined();
        expect(response.errors?.length).toBeGreaterThan(0);
        for (const code of codes(response) ?? []) expect(code).toBe('GRAPHQL_VALIDATION_FAILED');
      }
    }
    // __typename is no introspection.
    expect(await gql('{ __typename }', undefined, asEncoder)).toEqual({
      data: { __typename: 'Query' },
    });
  });

  it('is refused over WebSocket for an encoder and allowed for an admin', async () => {
    const encoder = connect(server, bearer(ENCODER_TOKEN));
    const admin = connect(server, bearer(ADMIN_TOKEN));
    try {
      const refused = await subscribe(encoder.client, schemaQuery).first;
      expect(refused).toHaveProperty('result');
      const refusedCodes = codes((refused as { result: GraphQLResponse }).result);
      expect(refusedCodes?.length).toBeGreaterThan(0);
      for (const code of refusedCodes ?? []) expect(code).toBe('GRAPHQL_VALIDATION_FAILED');
      expect(await subscribe(admin.client, schemaQuery).first).toEqual({
        result: { data: { __schema: { queryType: { name: 'Query' } } } },
      });
    } finally {
      await Promise.all([encoder.client.dispose(), admin.client.dispose()]);
    }
  });

  it('is allowed for everyone in development', async () => {
    for (const headers of [asAdmin, asEncoder, devPlayer, {}]) {
      expect(await gql(schemaQuery, undefined, headers, development)).toEqual({
        data: { __schema: { queryType: { name: 'Query' } } },
      });
    }
  });
});

describe('CSRF prevention', () => {
  const getUrl = () => `${server.url}?query=${encodeURIComponent('{ __typename }')}`;

  it('refuses a GET without x-graphql-yoga-csrf with FORBIDDEN', async () => {
    const { status, body } = await send({ url: getUrl(), headers: asAdmin });
    expect(status).toBe(403);
    expect(codes(body)).toEqual(['FORBIDDEN']);
    expect(body.data ?? undefined).toBeUndefined();
  });

  it('serves a GET with x-graphql-yoga-csrf', async () => {
    const { status, body } = await send({
      url: getUrl(),
      headers: { ...asAdmin, 'x-graphql-yoga-csrf': '1' },
    });
    expect(status).toBe(200);
    expect(body).toEqual({ data: { __typename: 'Query' } });
  });

  it('refuses a form-encoded or text/plain POST without the header, and runs nothing', async () => {
    const mutation =
      'mutation { createStreamSession(input: { id: "csrf", videoSourcePath: "/c.mp4" }) { id } }';
    for (const [contentType, payload] of [
      ['application/x-www-form-urlencoded', new URLSearchParams({ query: mutation }).toString()],
      ['text/plain', JSON.stringify({ query: mutation })],
    ] as const) {
      const { status, body } = await send({
        method: 'POST',
        headers: { ...asAdmin, 'content-type': contentType },
        body: payload,
      });
      expect(status).toBe(403);
      expect(codes(body)).toEqual(['FORBIDDEN']);
    }
    const session = await gql(Q.session, { id: 'csrf' });
    expect(session).toEqual({ data: { streamSession: null } });
  });

  it('does not apply to JSON POSTs', async () => {
    const { status, body } = await postJson({ query: '{ __typename }' });
    expect(status).toBe(200);
    expect(body).toEqual({ data: { __typename: 'Query' } });
  });
});

describe('error responses', () => {
  it('carry no stack trace, whatever went wrong', async () => {
    const own = [
      await postJson('{not json'),
      await postJson('[1, "two", null]'),
      await postJson({ query: '{ streamSession(id: "x") { id', variables: null }),
      await postJson({ query: '{ nope }' }),
      await postJson({ query: '{ __typename }', variables: 'not an object' }),
      await postJson({ query: 'query($x: Int!) { streamSessions(limit: $x) { id } }' }),
      await postJson({ query: '{ streamSessions(limit: -1) { id } }' }),
      await postJson({ query: 'mutation { endStreamSession(id: "") }' }, {}),
      await send({ url: `${server.url}?query=%7B`, headers: { 'x-graphql-yoga-csrf': '1' } }),
    ];
    for (const { body } of own) {
      const results = Array.isArray(body) ? body : [body];
      expect(results.some((r: GraphQLResponse) => (r.errors?.length ?? 0) > 0)).toBe(true);
    }
    // And every answer this file got, whichever test asked.
    const failures = answers.filter((text) => text.includes('"errors"'));
    expect(failures.length).toBeGreaterThanOrEqual(own.length);
    for (const text of failures) expectNoStackTrace(text);
  });
});
