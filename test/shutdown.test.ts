/**
 * Issue 3, graceful shutdown and the snapshot: in process through
 * buildApp().stop(), and as a real process (`node --import tsx src/main.ts`)
 * that gets SIGTERM with work in flight and is started again over its
 * snapshot.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { defaultConfig } from '../src/config.js';
import { buildApp } from '../src/server/app.js';
import { silentLogger } from '../src/server/logger.js';
import { ManualClock } from '../src/state/clock.js';
import { SnapshotError } from '../src/state/snapshot-file.js';
import {
  eventually,
  type GraphQLResponse,
  Q,
  serviceEnv,
  startTestServer,
  type TestServer,
} from './fixtures.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

const ENDED = `subscription Ended($id: ID) {
  streamSessionEnded(streamSessionId: $id) { id reason endedAt }
}`;

/** Every field of every session: what a snapshot must bring back. */
const ALL_SESSIONS = `query All {
  streamSessions(limit: 1000) {
    id videoSourcePath segmentDuration batchSize threshold startSegment
    currentBatch {
      batchNumber startSegment endSegment videoSourcePath videoStartOffset
      generationStarted generationEnded isComplete
    }
    clientPositions { sessionId segmentNumber quality lastUpdated }
    furthestSegment slowestSegment shouldGenerateNextBatch createdAt updatedAt
  }
}`;

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'hls-shutdown-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function post(url: string, query: string, variables?: Record<string, unknown>) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as GraphQLResponse<any>;
}

async function ok(url: string, query: string, variables?: Record<string, unknown>) {
  const response = await post(url, query, variables);
  expect(response.errors).toBeUndefined();
  return response.data;
}

const claimInput = (
  streamSessionId: string,
  batchNumber: number,
  start: number,
  end: number,
  // v2: the offset must be startSegment * the session's segmentDuration.
  segmentDuration = 6,
) => ({
  input: {
    streamSessionId,
    batchNumber,
    startSegment: start,
    endSegment: end,
    videoSourcePath: `/v/${streamSessionId}.mp4`,
    videoStartOffset: start * segmentDuration,
  },
});

/** An SSE subscription read as raw text, to see its `complete` event and its end. */
async function openSse(url: string, query: string, variables: Record<string, unknown> = {}) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
    body: JSON.stringify({ query, variables }),
  });
  expect(response.status).toBe(200);
  const stream = { text: '', ended: false };
  const decoder = new TextDecoder();
  const done = (async () => {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      stream.text += decoder.decode(chunk, { stream: true });
    }
    stream.ended = true;
  })();
  done.catch(() => {});
  return { stream, done };
}

/** A raw graphql-ws connection: every message it receives, and how it closed. */
async function openWs(
  url: string,
  subscriptions: Array<{ id: string; query: string; variables?: Record<string, unknown> }>,
) {
  const ws = new WebSocket(url, 'graphql-transport-ws');
  const messages: any[] = [];
  ws.on('error', () => {});
  ws.on('message', (data) => messages.push(JSON.parse(String(data))));
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code, reason) => resolve({ code, reason: String(reason) })),
  );
  await once(ws, 'open');
  ws.send(JSON.stringify({ type: 'connection_init' }));
  await eventually(() => messages.some((m) => m.type === 'connection_ack'));
  for (const { id, query, variables } of subscriptions) {
    ws.send(JSON.stringify({ id, type: 'subscribe', payload: { query, variables } }));
  }
  return { ws, messages, closed };
}

describe('stop() in process', () => {
  let server: TestServer | undefined;
  afterEach(async () => {
    await server?.stop();
    server = undefined;
  });

  it('completes open SSE and WebSocket subscriptions, closes sockets with 1001, and resolves', async () => {
    server = await startTestServer();
    const coordinator = server.app.coordinator;
    const sse = await openSse(server.url, Q.batchNeeded);
    const raw = await openWs(server.wsUrl, [{ id: '1', query: Q.batchNeeded }]);
    const client = server.wsClient();
    const sink = { nexts: 0, completed: false, error: undefined as unknown };
    let clientClosed: number | undefined;
    client.on('closed', (event) => {
      clientClosed = (event as { code: number }).code;
    });
    client.subscribe(
      { query: ENDED },
      {
        next: () => sink.nexts++,
        error: (e) => {
          sink.error = e;
        },
        complete: () => {
          sink.completed = true;
        },
      },
    );
    await eventually(() => coordinator.subscriptionCount === 3);
    // All three are live: each hears what happens now.
    await ok(server.url, Q.create, { input: { id: 'live', videoSourcePath: '/v.mp4' } });
    await ok(server.url, Q.end, { id: 'live' });
    await eventually(
      () =>
        sse.stream.text.includes('event: next') &&
        raw.messages.some((m) => m.type === 'next') &&
        sink.nexts === 1,
    );

    const stopping = server.app.stop();
    expect(server.app.stop()).toBe(stopping);
    await stopping;

    await sse.done;
    expect(sse.stream.ended).toBe(true);
    expect(sse.stream.text).toContain('event: complete');
    expect(await raw.closed).toMatchObject({ code: 1001 });
    expect(raw.messages).toContainEqual({ id: '1', type: 'complete' });
    await eventually(() => sink.completed || sink.error !== undefined);
    expect(sink.error).toBeUndefined();
    expect(sink.completed).toBe(true);
    await eventually(() => clientClosed !== undefined);
    expect(clientClosed).toBe(1001);
    expect(coordinator.subscriptionCount).toBe(0);
    // No longer listening.
    await expect(fetch(`${server.baseUrl}/healthz`)).rejects.toThrow();
  });

  it('saves the snapshot on stop and loads it on start, deadlines and stalls included', async () => {
    const snapshotPath = join(dir, 'state.json');
    const clock = new ManualClock();
    const config = {
      snapshotPath,
      batchTimeout: 60_000,
      clientTimeout: 100_000,
      idleTimeout: 200_000,
    };
    server = await startTestServer(config, clock);
    const t0 = clock.now();
    await ok(server.url, Q.create, { input: { id: 'a', videoSourcePath: '/v/a.mp4' } });
    await ok(server.url, Q.create, {
      input: {
        id: 'b',
        videoSourcePath: '/v/b.mp4',
        segmentDuration: 4,
        batchSize: 10,
        threshold: 2,
        startSegment: 100,
      },
    });
    await ok(server.url, Q.create, { input: { id: 'c', videoSourcePath: '/v/c.mp4' } });
    await ok(server.url, Q.update, {
      input: { streamSessionId: 'a', sessionId: 'x', segmentNumber: 5, quality: 'Q1080P' },
    });
    await ok(server.url, Q.update, {
      input: { streamSessionId: 'b', sessionId: 'y', segmentNumber: 101, quality: 'Q480P' },
    });
    await ok(server.url, Q.claim, claimInput('b', 0, 100, 109, 4));
    // c's batch is claimed too, and renewed before its deadline (issue 13).
    await ok(server.url, Q.claim, claimInput('c', 0, 0, 9));
    clock.advance(10_000);
    await ok(server.url, Q.update, {
      input: { streamSessionId: 'a', sessionId: 'z', segmentNumber: 8, quality: 'Q720P' },
    });
    clock.advance(50_000);
    await ok(
      server.url,
      'mutation { renewBatchClaim(streamSessionId: "c", batchNumber: 0) { batchNumber } }',
    );
    expect(await server.app.coordinator.sweep()).toMatchObject({ batchesStalled: 1 });
    const saved = (await ok(server.url, ALL_SESSIONS)).streamSessions;
    expect(saved.map((s: any) => s.id)).toEqual(['a', 'b', 'c']);
    await server.stop();
    expect(await readdir(dir)).toEqual(['state.json']);
    const file = JSON.parse(await readFile(snapshotPath, 'utf8'));
    expect(file).toMatchObject({ version: 2, savedAt: clock.now() });
    expect(file.sessions).toHaveLength(3);

    const restored = await startTestServer(config, clock);
    server = restored;
    expect((await ok(restored.url, ALL_SESSIONS)).streamSessions).toEqual(saved);
    // The stall survived: an encoder that connects now is told, and may re-claim.
    const need = await new Promise<any>((resolve, reject) => {
      const client = restored.wsClient();
      const stop = client.subscribe(
        { query: Q.batchNeeded, variables: { streamSessionId: 'b' } },
        {
          next: (value) => {
            stop();
            resolve(value.data?.batchNeeded);
          },
          error: reject,
          complete: () => {},
        },
      );
    });
    expect(need).toMatchObject({
      reason: 'STALLED',
      batchNumber: 0,
      startSegment: 100,
      endSegment: 109,
    });

    // Deadlines go on from where they were: x and y (t0) expire at t0 + 100 s, z at 110 s,
    // b, stalled once, stalls again one more timeout after its first stall, and c
    // one timeout after its renewal (t0 + 60 s), not after its claim.
    const sweepAt = (ms: number) => {
      clock.set(t0 + ms);
      return restored.app.coordinator.sweep();
    };
    expect(await sweepAt(100_000 - 1)).toEqual({
      clientsExpired: 0,
      batchesStalled: 0,
      sessionsEnded: 0,
    });
    expect(await sweepAt(100_000)).toMatchObject({ clientsExpired: 2, batchesStalled: 0 });
    expect(await sweepAt(110_000)).toMatchObject({ clientsExpired: 1, batchesStalled: 0 });
    expect(await sweepAt(120_000)).toMatchObject({ clientsExpired: 0, batchesStalled: 2 });
    // c, empty since t0, ends at t0 + 200 s.
    expect(await sweepAt(200_000)).toMatchObject({ sessionsEnded: 1 });
    expect((await ok(server.url, ALL_SESSIONS)).streamSessions.map((s: any) => s.id)).toEqual([
      'a',
      'b',
    ]);
    expect(
      (await post(server.url, Q.claim, claimInput('b', 0, 100, 109, 4))).errors,
    ).toBeUndefined();
  });

  it('restored idle sessions end at their own deadlines, whatever their order in the snapshot', async () => {
    const snapshotPath = join(dir, 'state.json');
    const clock = new ManualClock();
    const config = {
      snapshotPath,
      batchTimeout: 600_000,
      clientTimeout: 600_000,
      idleTimeout: 90_000,
    };
    server = await startTestServer(config, clock);
    const t0 = clock.now();
    // 'first' is older but idle since later; 'second' is younger but idle since it began.
    await ok(server.url, Q.create, { input: { id: 'first', videoSourcePath: '/v.mp4' } });
    await ok(server.url, Q.update, {
      input: { streamSessionId: 'first', sessionId: 'p', segmentNumber: 0, quality: 'Q720P' },
    });
    clock.advance(1);
    await ok(server.url, Q.create, { input: { id: 'second', videoSourcePath: '/v.mp4' } });
    clock.advance(20_000);
    await ok(server.url, Q.remove, { streamSessionId: 'first', sessionId: 'p' });
    await server.stop();

    server = await startTestServer(config, clock);
    clock.set(t0 + 1 + 90_000);
    // 'second' has been idle for SESSION_IDLE_TIMEOUT: it must end now, not when 'first' does.
    expect(await server.app.coordinator.sweep()).toMatchObject({ sessionsEnded: 1 });
    expect((await ok(server.url, Q.session, { id: 'second' })).streamSession).toBeNull();
    expect((await ok(server.url, Q.session, { id: 'first' })).streamSession).not.toBeNull();
    clock.set(t0 + 1 + 20_000 + 90_000);
    expect(await server.app.coordinator.sweep()).toMatchObject({ sessionsEnded: 1 });
  });

  it.each([
    ['an empty id', '{"version":1,"savedAt":0,"sessions":[{"settings":{"id":""}}]}'],
    ['another version', '{"version":3,"savedAt":0,"sessions":[]}'],
    ['a negative segment', JSON.stringify(snapshotWithClientAt(-1))],
    ['not an object', '[1,2,3]'],
    ['an empty file', ''],
  ])('start() rejects a snapshot with %s and leaves it as it was', async (_, text) => {
    const snapshotPath = join(dir, 'state.json');
    const bytes = Buffer.from(text);
    await writeFile(snapshotPath, bytes);
    const app = buildApp({
      config: { ...defaultConfig, snapshotPath },
      logger: silentLogger(),
    });
    const started = app.start(0, '127.0.0.1');
    await expect(started).rejects.toBeInstanceOf(SnapshotError);
    await expect(started).rejects.toThrow(snapshotPath);
    expect(await readFile(snapshotPath)).toEqual(bytes);
    expect(await readdir(dir)).toEqual(['state.json']);
    // The same file with a valid client loads: the check is about the content.
    await writeFile(snapshotPath, JSON.stringify(snapshotWithClientAt(3)));
    const good = buildApp({
      config: { ...defaultConfig, snapshotPath },
      logger: silentLogger(),
    });
    await good.start(0, '127.0.0.1');
    expect(await good.store.countClients()).toBe(1);
    await good.stop();
  });
});

/** A one-session snapshot file's content, its one client at `segmentNumber`. */
function snapshotWithClientAt(segmentNumber: number) {
  return {
    version: 1,
    savedAt: 0,
    sessions: [
      {
        settings: {
          id: 's',
          videoSourcePath: '/v.mp4',
          segmentDuration: 6,
          batchSize: 20,
          threshold: 5,
          startSegment: 0,
        },
        createdAt: 0,
        updatedAt: 0,
        currentBatch: null,
        stalls: 0,
        stallSerial: 0,
        announced: null,
        announcements: 0,
        clients: [{ sessionId: 'c', segmentNumber, quality: '720p', lastUpdated: 0 }],
      },
    ],
  };
}

interface Running {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
  /** The GraphQL URL it prints once listening. */
  url: Promise<string>;
}

const children: ChildProcess[] = [];
afterAll(() => {
  for (const child of children) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});

/** Starts the real service as a process, on a free port. */
function startProcess(env: Record<string, string>): Running {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: ROOT,
    // Shutdown behaviour, not access control (test/auth.test.ts covers that): no tokens needed.
    env: serviceEnv({
      NODE_ENV: 'production',
      PORT: '0',
      HOST: '127.0.0.1',
      AUTH: 'off',
      ...env,
    }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
  });
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
    err += chunk;
  });
  const exited = new Promise<number | null>((resolve) =>
    child.once('exit', (code) => resolve(code)),
  );
  const url = new Promise<string>((resolve, reject) => {
    const check = () => {
      const match = /listening on (http:\/\/\S+\/graphql)/.exec(out);
      if (match) {
        child.stdout?.off('data', check);
        resolve(match[1]!);
      }
    };
    child.stdout?.on('data', check);
    void exited.then((code) => reject(new Error(`exited with ${code} before listening: ${err}`)));
  });
  url.catch(() => {});
  return { child, stdout: () => out, stderr: () => err, exited, url };
}

/**
 * A hang guard for a process that refuses to start, counted from its spawn:
 * the time covers loading the whole service through tsx (compiling it cold
 * in a fresh clone), three such starts at once beside the rest of the suite
 * on two cores. What the test asserts is the exit and why, not its speed.
 */
const REFUSED_START_LIMIT = 30_000;

/** Its exit code; the test fails if it has not exited within `ms`. */
async function exitWithin(running: Running, ms: number): Promise<number | null> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      running.child.kill('SIGKILL');
      reject(new Error(`did not exit within ${ms} ms; stdout: ${running.stdout()}`));
    }, ms);
  });
  try {
    return await Promise.race([running.exited, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * A mutation whose request the server has begun (its headers are parsed: it
 * answered `Expect: 100-continue`) but whose body is not yet all there: in
 * flight until `finish()` sends the rest.
 */
function inFlight(url: string, query: string, variables: Record<string, unknown>) {
  const body = JSON.stringify({ query, variables });
  const { hostname, port, pathname } = new URL(url);
  const req = request({
    hostname,
    port,
    path: pathname,
    method: 'POST',
    agent: false,
    headers: {
      'content-type': 'application/json',
      accept: 'application/json',
      'content-length': Buffer.byteLength(body),
      expect: '100-continue',
    },
  });
  const half = Math.floor(body.length / 2);
  const started = new Promise<void>((resolve, reject) => {
    req.once('continue', () => {
      req.write(body.slice(0, half));
      resolve();
    });
    req.once('error', reject);
  });
  const answer = new Promise<{ status: number | undefined; body: GraphQLResponse<any> }>(
    (resolve, reject) => {
      req.on('error', reject);
      req.on('response', (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode, body: JSON.parse(text) }));
        res.on('error', reject);
      });
    },
  );
  answer.catch(() => {});
  req.flushHeaders();
  return { started, answer, finish: () => req.end(body.slice(half)) };
}

describe('the process', () => {
  it('on SIGTERM answers mutations in flight, completes SSE and WebSocket subscriptions, exits 0, and a restart restores everything', async () => {
    const snapshotPath = join(dir, 'state.json');
    const first = startProcess({ SNAPSHOT_PATH: snapshotPath, BATCH_TIMEOUT: '600.5' });
    const url = await first.url;
    const wsUrl = url.replace(/^http/, 'ws');

    await ok(url, Q.create, { input: { id: 's1', videoSourcePath: '/v/s1.mp4' } });
    await ok(url, Q.create, {
      input: {
        id: 's2',
        videoSourcePath: '/v/s2.mp4',
        segmentDuration: 4,
        batchSize: 10,
        threshold: 2,
        startSegment: 100,
      },
    });
    await ok(url, Q.create, { input: { id: 's3', videoSourcePath: '/v/s3.mp4' } });
    await ok(url, Q.claim, claimInput('s1', 0, 0, 19));
    await ok(url, Q.complete, { streamSessionId: 's1', batchNumber: 0 });
    await ok(url, Q.claim, claimInput('s1', 1, 20, 39));
    await ok(url, Q.claim, claimInput('s2', 0, 100, 109, 4));
    await ok(url, Q.update, {
      input: { streamSessionId: 's1', sessionId: 'a', segmentNumber: 16, quality: 'Q720P' },
    });
    await ok(url, Q.update, {
      input: { streamSessionId: 's1', sessionId: 'b', segmentNumber: 3, quality: 'Q480P' },
    });
    await ok(url, Q.update, {
      input: { streamSessionId: 's2', sessionId: 'c', segmentNumber: 104, quality: 'Q1080P' },
    });

    // Subscribers on both transports, each live (it got s3's pending FIRST_BATCH).
    const sse = await openSse(url, Q.batchNeeded);
    const raw = await openWs(wsUrl, [
      { id: '1', query: Q.batchNeeded, variables: { streamSessionId: 's3' } },
      { id: '2', query: ENDED },
    ]);
    await eventually(
      () =>
        sse.stream.text.includes('event: next') &&
        raw.messages.some((m) => m.type === 'next' && m.id === '1'),
    );
    const before = (await ok(url, ALL_SESSIONS)).streamSessions;

    // Mutations in flight on s3: the server has their headers, not yet their bodies.
    const pending = [
      ...[0, 1, 2].map((i) =>
        inFlight(url, Q.update, {
          input: {
            streamSessionId: 's3',
            sessionId: `p${i}`,
            segmentNumber: 10 + i,
            quality: 'Q480P',
          },
        }),
      ),
      inFlight(url, Q.claim, claimInput('s3', 0, 0, 19)),
    ];
    await Promise.all(pending.map((m) => m.started));

    first.child.kill('SIGTERM');
    await eventually(() => first.stdout().includes('SIGTERM received'));
    for (const mutation of pending) mutation.finish();
    const answers = await Promise.all(pending.map((m) => m.answer));
    for (const { status, body } of answers) {
      expect(status).toBe(200);
      expect(body.errors).toBeUndefined();
    }

    expect(await exitWithin(first, 10_000)).toBe(0);
    expect(first.stdout()).toContain('saved 3 stream sessions');
    await sse.done;
    expect(sse.stream.text).toContain('event: complete');
    expect(await raw.closed).toMatchObject({ code: 1001 });
    expect(raw.messages).toContainEqual({ id: '1', type: 'complete' });
    expect(raw.messages).toContainEqual({ id: '2', type: 'complete' });
    expect(await readdir(dir)).toEqual(['state.json']);

    // Started again over the same snapshot: every session, batch and position is back.
    const second = startProcess({ SNAPSHOT_PATH: snapshotPath });
    try {
      const url2 = await second.url;
      expect(second.stdout()).toContain('loaded 3 stream sessions');
      const after = (await ok(url2, ALL_SESSIONS)).streamSessions;
      expect(after.map((s: any) => s.id)).toEqual(['s1', 's2', 's3']);
      expect(after[0]).toEqual(before[0]);
      expect(after[1]).toEqual(before[1]);
      const positions = answers.slice(0, 3).map((a) => a.body.data.updateClientPosition);
      const claimed = answers[3]!.body.data.setCurrentBatch;
      expect(after[2]).toMatchObject({
        ...before[2],
        updatedAt: expect.any(String),
        currentBatch: claimed,
        clientPositions: positions,
        furthestSegment: 12,
        slowestSegment: 10,
      });
      // The claim on s1 is still running, so a second claim of it loses.
      const again = await post(url2, Q.claim, claimInput('s1', 1, 20, 39));
      expect(again.errors?.[0]?.extensions?.code).toBe('CONFLICT');
    } finally {
      second.child.kill('SIGTERM');
      expect(await exitWithin(second, 10_000)).toBe(0);
    }
  });

  it('refuses to start over a corrupt snapshot (left as it was) or with bad durations, saying why on stderr', async () => {
    const cases: Array<[string, string, string]> = [
      ['truncated.json', '{"version":1,"savedAt":0,"sessions":[{"settings":', 'not JSON'],
      ['shape.json', '{"version":1,"savedAt":0,"sessions":[{"id":"s1"}]}', 'not a valid snapshot'],
    ];
    // Bad durations stop the start too, each named: checked alongside, to share the wait.
    const badConfig = startProcess({ BATCH_TIMEOUT: 'abc', CLIENT_TIMEOUT: '-3' });
    await Promise.all([
      (async () => {
        expect(await exitWithin(badConfig, REFUSED_START_LIMIT)).toBe(1);
        expect(badConfig.stderr()).toContain(`BATCH_TIMEOUT='abc'`);
        expect(badConfig.stderr()).toContain(`CLIENT_TIMEOUT='-3'`);
        expect(badConfig.stdout()).not.toContain('listening');
      })(),
      ...cases.map(async ([name, text, reason]) => {
        const path = join(dir, name);
        const bytes = Buffer.from(text);
        await writeFile(path, bytes);
        const running = startProcess({ SNAPSHOT_PATH: path });
        const code = await exitWithin(running, REFUSED_START_LIMIT);
        expect(code, name).not.toBe(0);
        expect(code, name).not.toBeNull();
        expect(running.stderr(), name).toContain(`Snapshot ${path} cannot be loaded`);
        expect(running.stderr(), name).toContain(reason);
        expect(running.stdout(), name).not.toContain('listening');
        expect(await readFile(path), name).toEqual(bytes);
      }),
    ]);
    expect((await readdir(dir)).sort()).toEqual(cases.map(([name]) => name).sort());
  });
});
