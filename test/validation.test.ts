/**
 * Bad input gets the contract's extensions.code, a message that names the
 * value at fault, and changes nothing; unexpected errors stay masked.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../src/config.js';
import {
  durationSeconds as durationSecondsSchema,
  limits,
  qualities as qualitiesSchema,
} from '../src/schema/validation.js';
import type { Clock } from '../src/state/clock.js';
import { type GraphQLResponse, Q, startTestServer, type TestServer } from './fixtures.js';
import { captureLogs } from './log-capture.js';

let server: TestServer;
beforeAll(async () => {
  server = await startTestServer();
});
afterAll(() => server.stop());

let counter = 0;
const uid = (prefix: string) =>
  `val-${prefix}-${++counter}-${Math.random().toString(36).slice(2, 8)}`;

const codeOf = (response: GraphQLResponse<unknown>) => response.errors?.[0]?.extensions?.code;
const messageOf = (response: GraphQLResponse<unknown>) => response.errors?.[0]?.message ?? '';

function ok<T>(response: GraphQLResponse<T>): T {
  expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
  return response.data as T;
}

async function snapshot(id: string) {
  return ok(await server.gql(Q.session, { id })).streamSession;
}

/**
 * A session with a client and a complete batch 0 (segments 0-9), so that
 * every kind of change has something to change.
 */
async function baseSession() {
  const id = uid('base');
  ok(
    await server.gql(Q.create, {
      input: { id, videoSourcePath: '/v.mp4', batchSize: 10, threshold: 3 },
    }),
  );
  ok(
    await server.gql(Q.update, {
      input: { streamSessionId: id, sessionId: 'player', segmentNumber: 2, quality: 'Q720P' },
    }),
  );
  ok(
    await server.gql(Q.claim, {
      input: {
        streamSessionId: id,
        batchNumber: 0,
        startSegment: 0,
        endSegment: 9,
        videoSourcePath: '/v.mp4',
        videoStartOffset: 0,
      },
    }),
  );
  ok(await server.gql(Q.complete, { streamSessionId: id, batchNumber: 0 }));
  return id;
}

const updateInput = (id: string, overrides: Record<string, unknown> = {}) => ({
  input: {
    streamSessionId: id,
    sessionId: 'player',
    segmentNumber: 5,
    quality: 'Q480P',
    ...overrides,
  },
});
const claimInput = (id: string, overrides: Record<string, unknown> = {}) => ({
  input: {
    streamSessionId: id,
    batchNumber: 1,
    startSegment: 10,
    endSegment: 19,
    videoSourcePath: '/v.mp4',
    videoStartOffset: 60,
    ...overrides,
  },
});

/** v2: an encoder deleted segments (the fixtures' Q predates it). */
const release = `mutation Release($streamSessionId: ID!, $startSegment: Int!, $endSegment: Int!, $qualities: [Quality!]) {
  releaseSegments(streamSessionId: $streamSessionId, startSegment: $startSegment, endSegment: $endSegment, qualities: $qualities)
}`;
const releaseArgs = (id: string, overrides: Record<string, unknown> = {}) => ({
  streamSessionId: id,
  startSegment: 0,
  endSegment: 4,
  ...overrides,
});

/** Runs `query` against a base session; expects `code`, a message containing `quoted`, and no change. */
async function expectRejected(
  build: (id: string) => { query: string; variables: Record<string, unknown> },
  code: string,
  quoted?: string,
) {
  const id = await baseSession();
  const before = await snapshot(id);
  const { query, variables } = build(id);
  const response = await server.gql(query, variables);
  expect(response.errors, JSON.stringify(response)).toHaveLength(1);
  expect(codeOf(response), messageOf(response)).toBe(code);
  if (quoted !== undefined) expect(messageOf(response)).toContain(quoted);
  expect(response.data ?? null).toBeNull();
  expect(await snapshot(id)).toEqual(before);
}

const long = (n: number) => 'x'.repeat(n);

/** Builds one operation (document and variables) against a stream session id. */
type Operation = (id: string) => [string, Record<string, unknown>];

describe('BAD_USER_INPUT: negative numbers', () => {
  it.each<[string, Operation]>([
    [
      'updateClientPosition segmentNumber',
      (id: string) => [Q.update, updateInput(id, { segmentNumber: -1 })],
    ],
    ['setCurrentBatch batchNumber', (id: string) => [Q.claim, claimInput(id, { batchNumber: -1 })]],
    [
      'setCurrentBatch startSegment',
      (id: string) => [Q.claim, claimInput(id, { startSegment: -1 })],
    ],
    [
      'setCurrentBatch endSegment',
      (id: string) => [Q.claim, claimInput(id, { startSegment: 0, endSegment: -1 })],
    ],
    [
      'setCurrentBatch videoStartOffset',
      (id: string) => [Q.claim, claimInput(id, { videoStartOffset: -1 })],
    ],
    [
      'completeBatch batchNumber',
      (id: string) => [Q.complete, { streamSessionId: id, batchNumber: -1 }],
    ],
    [
      'releaseSegments startSegment',
      (id: string) => [release, releaseArgs(id, { startSegment: -1 })],
    ],
    [
      'releaseSegments endSegment',
      (id: string) => [release, releaseArgs(id, { startSegment: 0, endSegment: -1 })],
    ],
  ])('%s', async (_name, build) => {
    await expectRejected(
      (id) => {
        const [query, variables] = build(id);
        return { query, variables };
      },
      'BAD_USER_INPUT',
      '-1',
    );
  });

  it.each([
    ['startSegment', { startSegment: -1 }],
    ['threshold', { threshold: -1 }],
    ['batchSize', { batchSize: -3 }],
    ['segmentDuration', { segmentDuration: -6 }],
  ])('createStreamSession %s', async (name, fields) => {
    const id = uid('neg');
    const response = await server.gql(Q.create, {
      input: { id, videoSourcePath: '/v.mp4', ...fields },
    });
    expect(codeOf(response)).toBe('BAD_USER_INPUT');
    expect(messageOf(response)).toContain(name);
    expect(messageOf(response)).toContain(String(Object.values(fields)[0]));
    expect(await snapshot(id)).toBeNull();
  });
});

describe('BAD_USER_INPUT: out-of-range values', () => {
  it('endSegment < startSegment in setCurrentBatch', async () => {
    await expectRejected(
      (id) => ({ query: Q.claim, variables: claimInput(id, { startSegment: 10, endSegment: 9 }) }),
      'BAD_USER_INPUT',
      'endSegment',
    );
  });

  it('endSegment < startSegment in releaseSegments', async () => {
    await expectRejected(
      (id) => ({ query: release, variables: releaseArgs(id, { startSegment: 5, endSegment: 4 }) }),
      'BAD_USER_INPUT',
      'endSegment must not be less than startSegment (got 4)',
    );
  });

  it('startSegment = endSegment is a valid one-segment batch', async () => {
    const id = uid('one');
    // Batch 0 at the session's startSegment, its offset startSegment * segmentDuration:
    // v2 holds a claim to both.
    ok(await server.gql(Q.create, { input: { id, videoSourcePath: '/v.mp4', startSegment: 4 } }));
    const response = await server.gql(
      Q.claim,
      claimInput(id, {
        batchNumber: 0,
        startSegment: 4,
        endSegment: 4,
        videoStartOffset: 4 * defaultConfig.segmentDuration,
      }),
    );
    expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
    expect(response.data?.setCurrentBatch).toMatchObject({ startSegment: 4, endSegment: 4 });
  });

  it.each([
    ['threshold > batchSize, both given', { batchSize: 10, threshold: 11 }, ['11', '10']],
    [
      'threshold > the server default batchSize',
      { threshold: defaultConfig.batchSize + 1 },
      [String(defaultConfig.batchSize + 1)],
    ],
    [
      'the server default threshold > a given batchSize',
      { batchSize: defaultConfig.threshold - 1 },
      [String(defaultConfig.threshold - 1)],
    ],
    ['batchSize 0', { batchSize: 0 }, ['batchSize', '0']],
    ['segmentDuration 0', { segmentDuration: 0 }, ['segmentDuration', '0']],
  ])('createStreamSession: %s', async (_name, fields, quoted) => {
    const id = uid('range');
    const response = await server.gql(Q.create, {
      input: { id, videoSourcePath: '/v.mp4', ...fields },
    });
    expect(codeOf(response), messageOf(response)).toBe('BAD_USER_INPUT');
    for (const q of quoted) expect(messageOf(response)).toContain(q);
    expect(await snapshot(id)).toBeNull();
  });

  it.each([
    ['limit over 1000', { limit: 1001 }, '1001'],
    ['negative limit', { limit: -1 }, '-1'],
    ['negative offset', { offset: -1 }, '-1'],
  ])('streamSessions: %s', async (_name, variables, quoted) => {
    const response = await server.gql(Q.sessions, variables);
    expect(codeOf(response)).toBe('BAD_USER_INPUT');
    expect(messageOf(response)).toContain(quoted);
  });

  it('streamSessions accepts limit 1000 and offset 0', async () => {
    const response = await server.gql(Q.sessions, { limit: 1000, offset: 0 });
    expect(response.errors).toBeUndefined();
    expect(Array.isArray(response.data?.streamSessions)).toBe(true);
  });
});

describe('BAD_USER_INPUT: ids', () => {
  const badIds: Array<[string, string]> = [
    ['empty', ''],
    ['129 characters', long(129)],
    ['a NUL', 'abc\u0000def'],
    ['a newline', 'abc\ndef'],
    ['a tab', 'abc\tdef'],
    ['DEL', 'abc\u007f'],
    ['a C1 control', 'abc\u0085'],
  ];

  it.each(badIds)('createStreamSession id with %s', async (_name, badId) => {
    const response = await server.gql(Q.create, {
      input: { id: badId, videoSourcePath: '/v.mp4' },
    });
    expect(codeOf(response), messageOf(response)).toBe('BAD_USER_INPUT');
    expect(messageOf(response)).toContain('id');
    // Nothing was created under any name.
    const listed = ok(await server.gql(Q.sessions, { limit: 1000 })).streamSessions;
    expect(listed.map((s: { id: string }) => s.id)).not.toContain(badId);
  });

  it.each(badIds)('updateClientPosition sessionId with %s', async (_name, badId) => {
    await expectRejected(
      (id) => ({ query: Q.update, variables: updateInput(id, { sessionId: badId }) }),
      'BAD_USER_INPUT',
      'sessionId',
    );
  });

  it.each<[string, Operation]>([
    ['updateClientPosition', (bad: string) => [Q.update, updateInput(bad)]],
    ['setCurrentBatch', (bad: string) => [Q.claim, claimInput(bad)]],
    ['completeBatch', (bad: string) => [Q.complete, { streamSessionId: bad, batchNumber: 0 }]],
    ['releaseSegments', (bad: string) => [release, releaseArgs(bad)]],
    ['removeClient', (bad: string) => [Q.remove, { streamSessionId: bad, sessionId: 'p' }]],
    ['endStreamSession', (bad: string) => [Q.end, { id: bad }]],
    ['streamSession', (bad: string) => [Q.session, { id: bad }]],
  ])('%s with empty, too long and control-character ids', async (_name, build) => {
    for (const [, badId] of badIds) {
      const [query, variables] = build(badId);
      const response = await server.gql(query, variables);
      expect(codeOf(response), `${JSON.stringify(badId)}: ${messageOf(response)}`).toBe(
        'BAD_USER_INPUT',
      );
    }
  });

  it('removeClient with a bad sessionId', async () => {
    await expectRejected(
      (id) => ({ query: Q.remove, variables: { streamSessionId: id, sessionId: '' } }),
      'BAD_USER_INPUT',
      'sessionId',
    );
  });

  it('a 128-character id is accepted', async () => {
    const id = `${uid('max')}-`.padEnd(128, 'y');
    expect(id).toHaveLength(128);
    const response = await server.gql(Q.create, { input: { id, videoSourcePath: '/v.mp4' } });
    expect(response.errors).toBeUndefined();
    expect(response.data?.createStreamSession.id).toBe(id);
  });

  it('a message quotes a short bad id, and describes a long one without echoing it', async () => {
    const shortBad = await server.gql(Q.create, {
      input: { id: 'bad\u0001id', videoSourcePath: '/v.mp4' },
    });
    expect(messageOf(shortBad)).toContain('bad\\u0001id');
    const longBad = await server.gql(Q.create, { input: { id: long(129), videoSourcePath: '/v' } });
    expect(messageOf(longBad)).toContain('129');
    expect(messageOf(longBad)).not.toContain(long(129));
  });
});

describe('BAD_USER_INPUT: v2 durationSeconds', () => {
  it.each([
    ['0', 0],
    ['negative', -90],
    ['a tiny negative', -1e-9],
    ['over 7 days', limits.durationSeconds + 1],
    ['far too large', 1e300],
  ])('createStreamSession durationSeconds %s', async (_name, value) => {
    const id = uid('duration');
    const response = await server.gql(Q.create, {
      input: { id, videoSourcePath: '/v.mp4', durationSeconds: value },
    });
    expect(codeOf(response), messageOf(response)).toBe('BAD_USER_INPUT');
    expect(messageOf(response)).toContain('durationSeconds');
    expect(messageOf(response)).toContain(`(got ${JSON.stringify(value)})`);
    expect(await snapshot(id)).toBeNull();
  });

  // JSON has no NaN or Infinity: a client sends them as strings, or as a
  // bare word in the document, and graphql-js refuses both as a Float.
  it.each([
    ['the string "NaN"', 'NaN'],
    ['the string "Infinity"', 'Infinity'],
    ['a numeric string', '5400'],
  ])('createStreamSession durationSeconds as %s is refused', async (_name, value) => {
    const id = uid('duration-nan');
    const response = await server.gql(Q.create, {
      input: { id, videoSourcePath: '/v.mp4', durationSeconds: value },
    });
    expect(['GRAPHQL_VALIDATION_FAILED', 'BAD_USER_INPUT']).toContain(codeOf(response));
    expect(messageOf(response)).toContain('durationSeconds');
    expect(await snapshot(id)).toBeNull();
  });

  it('NaN or Infinity in the document is refused', async () => {
    for (const word of ['NaN', 'Infinity']) {
      const id = uid('duration-word');
      const response = await server.gql(
        `mutation { createStreamSession(input: { id: "${id}", videoSourcePath: "/v.mp4", durationSeconds: ${word} }) { id } }`,
      );
      expect(codeOf(response), messageOf(response)).toBe('GRAPHQL_VALIDATION_FAILED');
      expect(await snapshot(id)).toBeNull();
    }
  });

  it('the rule itself refuses NaN and the infinities, and takes what lies between', () => {
    for (const value of [Number.NaN, Infinity, -Infinity, 0, -1, limits.durationSeconds + 0.5]) {
      expect(durationSecondsSchema.safeParse(value).success, String(value)).toBe(false);
    }
    for (const value of [1e-3, 5_400.25, limits.durationSeconds]) {
      expect(durationSecondsSchema.safeParse(value).success, String(value)).toBe(true);
    }
  });

  it('a fractional length and the 7-day bound are accepted', async () => {
    for (const value of [5_400.25, limits.durationSeconds]) {
      const response = await server.gql(Q.create, {
        input: { id: uid('duration-ok'), videoSourcePath: '/v.mp4', durationSeconds: value },
      });
      expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
    }
  });
});

describe('BAD_USER_INPUT: v2 qualities lists', () => {
  it('createStreamSession with an empty qualities list', async () => {
    const id = uid('qualities');
    const response = await server.gql(Q.create, {
      input: { id, videoSourcePath: '/v.mp4', qualities: [] },
    });
    expect(codeOf(response), messageOf(response)).toBe('BAD_USER_INPUT');
    expect(messageOf(response)).toContain('qualities must name at least one quality (got [])');
    expect(await snapshot(id)).toBeNull();
  });

  it('setCurrentBatch with an empty qualities list', async () => {
    await expectRejected(
      (id) => ({ query: Q.claim, variables: claimInput(id, { qualities: [] }) }),
      'BAD_USER_INPUT',
      'qualities must name at least one quality',
    );
  });

  it('releaseSegments with an empty qualities list', async () => {
    await expectRejected(
      (id) => ({ query: release, variables: releaseArgs(id, { qualities: [] }) }),
      'BAD_USER_INPUT',
      'qualities must name at least one quality',
    );
  });

  it('an unknown rendition in a list is refused by graphql-js', async () => {
    const id = uid('qualities-bad');
    const response = await server.gql(Q.create, {
      input: { id, videoSourcePath: '/v.mp4', qualities: ['Q720P', 'Q4K'] },
    });
    expect(['GRAPHQL_VALIDATION_FAILED', 'BAD_USER_INPUT']).toContain(codeOf(response));
    expect(await snapshot(id)).toBeNull();
  });

  it('a rendition named twice is taken once, and a list comes out best first', async () => {
    expect(qualitiesSchema.parse(['480p', '1080p', '480p'])).toEqual(['1080p', '480p']);
    expect(qualitiesSchema.parse(['720p', '720p'])).toEqual(['720p']);
    const response = await server.gql(Q.create, {
      input: {
        id: uid('qualities-twice'),
        videoSourcePath: '/v.mp4',
        qualities: ['Q720P', 'Q720P'],
      },
    });
    expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
  });
});

describe('BAD_USER_INPUT: paths', () => {
  it.each([
    ['empty', ''],
    ['over 4096 characters', `/${long(4096)}`],
    ['a control character', '/videos/\u0000a.mp4'],
  ])('createStreamSession videoSourcePath %s', async (_name, path) => {
    const id = uid('path');
    const response = await server.gql(Q.create, { input: { id, videoSourcePath: path } });
    expect(codeOf(response)).toBe('BAD_USER_INPUT');
    expect(messageOf(response)).toContain('videoSourcePath');
    expect(await snapshot(id)).toBeNull();
  });

  it.each([
    ['empty', ''],
    ['over 4096 characters', `/${long(4096)}`],
  ])('setCurrentBatch videoSourcePath %s', async (_name, path) => {
    await expectRejected(
      (id) => ({ query: Q.claim, variables: claimInput(id, { videoSourcePath: path }) }),
      'BAD_USER_INPUT',
      'videoSourcePath',
    );
  });

  it('a 4096-character path is accepted', async () => {
    const path = `/${long(4095)}`;
    const response = await server.gql(Q.create, {
      input: { id: uid('longpath'), videoSourcePath: path },
    });
    expect(response.errors).toBeUndefined();
    expect(response.data?.createStreamSession.videoSourcePath).toBe(path);
  });
});

describe('NOT_FOUND and CONFLICT', () => {
  it('an unknown session is NOT_FOUND, quoting its id, for every mutation on one', async () => {
    const id = uid('ghost');
    const cases: Array<[string, Record<string, unknown>]> = [
      [Q.update, updateInput(id)],
      [Q.claim, claimInput(id, { batchNumber: 0 })],
      [Q.complete, { streamSessionId: id, batchNumber: 0 }],
      [Q.remove, { streamSessionId: id, sessionId: 'p' }],
    ];
    for (const [query, variables] of cases) {
      const response = await server.gql(query, variables);
      expect(codeOf(response), messageOf(response)).toBe('NOT_FOUND');
      expect(messageOf(response)).toContain(`'${id}'`);
    }
    expect(await snapshot(id)).toBeNull();
  });

  it('a duplicate id is CONFLICT, quoting it', async () => {
    const id = uid('dup');
    ok(await server.gql(Q.create, { input: { id, videoSourcePath: '/a.mp4' } }));
    const response = await server.gql(Q.create, { input: { id, videoSourcePath: '/b.mp4' } });
    expect(codeOf(response)).toBe('CONFLICT');
    expect(messageOf(response)).toContain(`'${id}'`);
    expect((await snapshot(id)).videoSourcePath).toBe('/a.mp4');
  });

  it('a claim of the wrong batch is CONFLICT, naming the numbers', async () => {
    const id = uid('wrongclaim');
    ok(await server.gql(Q.create, { input: { id, videoSourcePath: '/a.mp4' } }));
    const response = await server.gql(
      Q.claim,
      claimInput(id, { batchNumber: 3, videoSourcePath: '/a.mp4' }),
    );
    expect(codeOf(response)).toBe('CONFLICT');
    expect(messageOf(response)).toContain('3');
    expect(messageOf(response)).toContain(`'${id}'`);
  });
});

describe('graphql-js errors: wrong enum values and types', () => {
  const graphqlCodes = ['GRAPHQL_VALIDATION_FAILED', 'BAD_USER_INPUT'];

  const variableCases: Array<[string, (id: string) => Record<string, unknown>]> = [
    ['an unknown Quality', (id) => updateInput(id, { quality: 'Q4K' })],
    ['a lowercase Quality', (id) => updateInput(id, { quality: '1080p' })],
    ['a string for an Int', (id) => updateInput(id, { segmentNumber: '5' })],
    ['a float for an Int', (id) => updateInput(id, { segmentNumber: 1.5 })],
    ['an Int beyond 32 bits', (id) => updateInput(id, { segmentNumber: 2 ** 31 })],
    ['null for a non-null field', (id) => updateInput(id, { sessionId: null })],
    ['an object for an ID', (id) => updateInput(id, { sessionId: { a: 1 } })],
    [
      'a missing required field',
      (id) => ({ input: { streamSessionId: id, sessionId: 'p', quality: 'Q720P' } }),
    ],
  ];

  it('in variables: rejected, nothing changes, and each error carries a graphql-js code', async () => {
    const id = await baseSession();
    const before = await snapshot(id);
    const withoutCode: string[] = [];
    for (const [name, variables] of variableCases) {
      const response = await server.gql(Q.update, variables(id));
      expect(response.errors?.length, `${name}: ${JSON.stringify(response)}`).toBeGreaterThan(0);
      expect(response.data ?? null).toBeNull();
      if (!graphqlCodes.includes(codeOf(response) as string)) {
        withoutCode.push(`${name} -> code ${codeOf(response)} (${messageOf(response)})`);
      }
    }
    expect(await snapshot(id)).toEqual(before);
    expect(
      withoutCode,
      `variable coercion errors without GRAPHQL_VALIDATION_FAILED/BAD_USER_INPUT:\n${withoutCode.join('\n')}`,
    ).toEqual([]);
  });

  it.each([
    ['an unknown Quality', 'segmentNumber: 5, quality: Q4K'],
    ['a string for Quality', 'segmentNumber: 5, quality: "Q720P"'],
    ['a string for an Int', 'segmentNumber: "5", quality: Q720P'],
    ['a float for an Int', 'segmentNumber: 5.5, quality: Q720P'],
    ['a missing required field', 'quality: Q720P'],
  ])('in the document: %s', async (_name, fields) => {
    await expectRejectedByGraphql(
      (id) => ({
        query: `mutation { updateClientPosition(input: { streamSessionId: "${id}", sessionId: "p", ${fields} }) { sessionId } }`,
        variables: {},
      }),
      graphqlCodes,
    );
  });

  it('an unknown field or argument is GRAPHQL_VALIDATION_FAILED', async () => {
    const unknownField = await server.gql('{ streamSessions { id colour } }');
    expect(codeOf(unknownField)).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(messageOf(unknownField)).toContain('colour');
    const unknownArg = await server.gql('{ streamSessions(page: 2) { id } }');
    expect(codeOf(unknownArg)).toBe('GRAPHQL_VALIDATION_FAILED');
  });

  async function expectRejectedByGraphql(
    build: (id: string) => { query: string; variables: Record<string, unknown> },
    codes: string[],
  ) {
    const id = await baseSession();
    const before = await snapshot(id);
    const { query, variables } = build(id);
    const response = await server.gql(query, variables);
    expect(response.errors?.length, JSON.stringify(response)).toBeGreaterThan(0);
    expect(response.data ?? null).toBeNull();
    expect(codes, `extensions.code of ${JSON.stringify(response.errors)}`).toContain(
      codeOf(response),
    );
    expect(await snapshot(id)).toEqual(before);
  }
});

describe('malformed requests', () => {
  it('malformed JSON gets an error response, and the server keeps serving', async () => {
    for (const body of ['{"query": ', 'not json', '{"query": "{ streamSessions { id } }",}']) {
      const response = await fetch(server.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body,
      });
      expect(response.status).toBe(400);
      const parsed = (await response.json()) as GraphQLResponse;
      expect(parsed.errors?.length, body).toBeGreaterThan(0);
      expect(JSON.stringify(parsed)).not.toMatch(/\n\s+at /);
    }
    const health = await fetch(`${server.baseUrl}/healthz`);
    expect(health.status).toBe(200);
    expect(ok(await server.gql(Q.sessions, { limit: 1 })).streamSessions).toBeDefined();
  });

  it('a body without a query gets an error response', async () => {
    const response = await fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ variables: {} }),
    });
    const parsed = (await response.json()) as GraphQLResponse;
    expect(parsed.errors?.length).toBeGreaterThan(0);
    expect(parsed.errors?.[0]?.message).toMatch(/query/i);
  });

  it.each([
    ['an unclosed selection', '{ streamSessions { id '],
    ['a stray token', 'mutation { endStreamSession(id: "a") } }'],
    ['garbage', '%%%'],
    ['an unterminated string', '{ streamSession(id: "abc) { id } }'],
  ])('a syntax error (%s) is GRAPHQL_PARSE_FAILED', async (_name, query) => {
    const response = await server.gql(query);
    expect(codeOf(response)).toBe('GRAPHQL_PARSE_FAILED');
    expect(messageOf(response)).toMatch(/Syntax Error/);
    expect(response.data ?? null).toBeNull();
  });

  it('a syntax error in a mutation document changes nothing', async () => {
    const id = uid('syntax');
    const response = await server.gql(
      `mutation { createStreamSession(input: { id: "${id}", videoSourcePath: "/v.mp4" }) { id }`,
    );
    expect(codeOf(response)).toBe('GRAPHQL_PARSE_FAILED');
    expect(await snapshot(id)).toBeNull();
  });
});

describe('error masking', () => {
  it('no response to bad input carries a stack trace', async () => {
    const id = await baseSession();
    const responses = [
      await server.gql(Q.update, updateInput(id, { segmentNumber: -1 })),
      await server.gql(Q.update, updateInput(uid('ghost'))),
      await server.gql(Q.create, { input: { id, videoSourcePath: '/v.mp4' } }),
      await server.gql(Q.update, updateInput(id, { quality: 'NOPE' })),
      await server.gql('{ nope }'),
      await server.gql('{'),
    ];
    for (const response of responses) {
      expect(response.errors?.length).toBeGreaterThan(0);
      const text = JSON.stringify(response);
      expect(text).not.toMatch(/\bat .+\.(ts|js):\d+/);
      expect(text).not.toContain('"stack"');
      expect(text).not.toContain('node_modules');
    }
  });

  it('an unexpected error is masked: generic message, no stack, no internals', async () => {
    let fail = false;
    const clock: Clock = {
      now() {
        if (fail) throw new Error('clock exploded at /secret/internal/path');
        return Date.now();
      },
    };
    const { logger, lines: logged } = captureLogs('error');
    const faulty = await startTestServer({}, clock, 0, logger);
    try {
      fail = true;
      const id = uid('masked');
      const response = await faulty.gql(Q.create, { input: { id, videoSourcePath: '/v.mp4' } });
      fail = false;
      expect(response.errors).toHaveLength(1);
      const error = response.errors?.[0];
      expect(error?.message).toBe('Unexpected error.');
      const text = JSON.stringify(response);
      expect(text).not.toContain('exploded');
      expect(text).not.toContain('/secret/internal/path');
      expect(text).not.toMatch(/\bat .+\.(ts|js):\d+/);
      expect(error?.extensions?.code).not.toBe('BAD_USER_INPUT');
      // The server keeps serving.
      const after = await faulty.gql(Q.create, { input: { id, videoSourcePath: '/v.mp4' } });
      expect(after.errors).toBeUndefined();
      // The fault is logged for operators, not shown to the client.
      expect(logged).toEqual([
        expect.objectContaining({
          msg: 'unexpected error',
          code: 'INTERNAL_SERVER_ERROR',
          err: expect.objectContaining({ message: 'clock exploded at /secret/internal/path' }),
        }),
      ]);
    } finally {
      fail = false;
      await faulty.stop();
    }
  });
});
