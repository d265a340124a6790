/**
 * Issue 7, logs: one JSON line per domain event (session created and
 * ended, batch needed, claimed, completed and stalled, client expired),
 * none per position update, and failed operations with their contract
 * code. Runs once per store: with Redis the activity comes back from its
 * scripts. (test/main-logs.test.ts checks the program's own output.)
 */
import { afterEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/state/clock.js';
import { Q, sessionDriver, startTestServer, type TestServer } from './fixtures.js';
import { captureLogs, LEVEL, type LogLine } from './log-capture.js';

let server: TestServer;
let lines: LogLine[];
let clock: ManualClock;

afterEach(() => server.stop());

async function serve(level: 'info' | 'debug' = 'info', overrides = {}) {
  const captured = captureLogs(level);
  lines = captured.lines;
  clock = new ManualClock();
  server = await startTestServer(overrides, clock, 0, captured.logger);
}

async function ok(query: string, variables: Record<string, unknown> = {}): Promise<any> {
  const response = await server.gql(query, variables);
  expect(response.errors).toBeUndefined();
  return response.data;
}

const session = sessionDriver(() => server, { videoSourcePath: (id) => `/v/${id}.mp4` });
const create = (id: string) =>
  session.create(id, { batchSize: 20, threshold: 5, segmentDuration: 6 });
const position = (streamSessionId: string, sessionId: string, segmentNumber: number) =>
  session.move(streamSessionId, sessionId, segmentNumber);
const claim = (streamSessionId: string, batchNumber: number, startSegment: number) =>
  session.claim(streamSessionId, batchNumber, startSegment, startSegment + 19);

/** The lines about domain events, without pino's own fields. */
const events = () =>
  lines
    .filter((line) => 'event' in line)
    .map(({ time: _t, pid: _p, hostname: _h, name: _n, ...rest }) => rest);

describe('domain events', () => {
  it('are one line each, with the fields that say what happened', async () => {
    await serve();
    await create('l');
    await position('l', 'a', 2);
    await claim('l', 0, 0);
    clock.advance(12_000);
    await ok(Q.complete, { streamSessionId: 'l', batchNumber: 0 });
    await ok(Q.complete, { streamSessionId: 'l', batchNumber: 0 }); // again: nothing new
    await position('l', 'a', 15); // within the threshold: batch 1 is needed
    await ok(Q.end, { id: 'l' });

    const info = LEVEL.info;
    expect(events()).toEqual([
      {
        level: info,
        msg: 'stream session created',
        event: 'streamSessionCreated',
        streamSessionId: 'l',
        videoSourcePath: '/v/l.mp4',
        batchSize: 20,
        threshold: 5,
        segmentDuration: 6,
      },
      {
        level: info,
        msg: 'batch needed',
        event: 'batchNeeded',
        streamSessionId: 'l',
        reason: 'FIRST_BATCH',
        batchNumber: 0,
        startSegment: 0,
        endSegment: 19,
        furthestSegment: null,
      },
      {
        level: info,
        msg: 'batch claimed',
        event: 'batchClaimed',
        streamSessionId: 'l',
        batchNumber: 0,
        startSegment: 0,
        endSegment: 19,
      },
      {
        level: info,
        msg: 'batch completed',
        event: 'batchCompleted',
        streamSessionId: 'l',
        batchNumber: 0,
        generationMs: 12_000,
      },
      {
        level: info,
        msg: 'batch needed',
        event: 'batchNeeded',
        streamSessionId: 'l',
        reason: 'APPROACHING_END',
        batchNumber: 1,
        startSegment: 20,
        endSegment: 39,
        furthestSegment: 15,
      },
      {
        level: info,
        msg: 'stream session ended',
        event: 'streamSessionEnded',
        streamSessionId: 'l',
        reason: 'ENDED',
      },
    ]);
  });

  it('are not logged per position update', async () => {
    await serve('debug');
    await create('quiet');
    const before = lines.length;
    for (let segment = 0; segment < 10; segment++) await position('quiet', 'a', segment);
    await ok(Q.remove, { streamSessionId: 'quiet', sessionId: 'a' });
    expect(lines.slice(before)).toEqual([]);
  });

  it('include what the sweeper does: a client expired, a batch stalled (a warning), a session ended idle', async () => {
    await serve('info', { batchTimeout: 60_000, clientTimeout: 30_000, idleTimeout: 40_000 });
    await create('sw');
    await position('sw', 'silent', 4);
    await claim('sw', 0, 0);
    const before = events().length;
    clock.advance(30_000); // the client has been silent for CLIENT_TIMEOUT
    await server.app.coordinator.sweep();
    clock.advance(30_000); // the claim is BATCH_TIMEOUT old
    await server.app.coordinator.sweep();
    clock.advance(10_000); // no client for SESSION_IDLE_TIMEOUT
    await server.app.coordinator.sweep();

    expect(events().slice(before)).toEqual([
      {
        level: LEVEL.info,
        msg: 'client expired',
        event: 'clientExpired',
        streamSessionId: 'sw',
        sessionId: 'silent',
      },
      {
        level: LEVEL.warn,
        msg: 'batch stalled',
        event: 'batchStalled',
        streamSessionId: 'sw',
        batchNumber: 0,
      },
      expect.objectContaining({ event: 'batchNeeded', reason: 'STALLED', batchNumber: 0 }),
      {
        level: LEVEL.info,
        msg: 'stream session ended',
        event: 'streamSessionEnded',
        streamSessionId: 'sw',
        reason: 'IDLE',
      },
    ]);
  });
});

describe('errors', () => {
  it('of a request are logged at debug with their contract code, and not at info', async () => {
    await serve('debug');
    const missing = await server.gql(Q.update, {
      input: { streamSessionId: 'nope', sessionId: 'a', segmentNumber: 1, quality: 'Q720P' },
    });
    expect(missing.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    expect(lines.filter((line) => line.msg === 'operation failed')).toEqual([
      expect.objectContaining({
        level: LEVEL.debug,
        operation: 'updateClientPosition',
        code: 'NOT_FOUND',
        message: "Stream session 'nope' not found.",
      }),
    ]);
    await server.stop();

    await serve('info');
    await server.gql(Q.update, {
      input: { streamSessionId: 'nope', sessionId: 'a', segmentNumber: 1, quality: 'Q720P' },
    });
    expect(lines.filter((line) => line.level < LEVEL.warn && line.msg !== 'sweep')).toEqual([]);
  });

  it('that are unexpected are logged at error, with INTERNAL_SERVER_ERROR and the cause; the client sees them masked', async () => {
    await serve('info');
    await create('boom');
    const store = server.app.store;
    store.updateClientPosition = () => Promise.reject(new Error('the disk is on fire'));
    const response = await server.gql(Q.update, {
      input: { streamSessionId: 'boom', sessionId: 'a', segmentNumber: 1, quality: 'Q720P' },
    });
    expect(response.errors?.[0]).toMatchObject({
      message: 'Unexpected error.',
      extensions: { code: 'INTERNAL_SERVER_ERROR' },
    });
    const errors = lines.filter((line) => line.level >= LEVEL.error);
    expect(errors).toEqual([
      expect.objectContaining({
        msg: 'unexpected error',
        code: 'INTERNAL_SERVER_ERROR',
        err: expect.objectContaining({ message: 'the disk is on fire' }),
      }),
    ]);
    expect((errors[0]?.err as { stack?: string } | undefined)?.stack).toMatch(/\n\s+at /);
  });
});
