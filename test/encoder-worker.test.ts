/**
 * Issue 13, the encoder worker against the real service (in process, access
 * control on, the worker with the encoder token) and real ffmpeg on a tiny
 * source: it claims, encodes and completes what viewers need, at most
 * ENCODER_CONCURRENCY at once; a failed ffmpeg leaves its batch to stall; a
 * slow but progressing one is renewed, a silent one is not; an ended
 * session's files go; segments far behind the slowest viewer are released;
 * it reconnects after a restart of the service.
 */
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Client, createClient } from 'graphql-ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { sessionDir } from '../encoder/paths.js';
import {
  type EncoderWorker,
  type EncoderWorkerOptions,
  startEncoderWorker,
} from '../encoder/worker.js';
import type { Config } from '../src/config.js';
import { FFMPEG, FFPROBE, makeSource, pgrep, script, segmentNames } from './encoder-media.js';
import {
  ADMIN_TOKEN,
  authOverrides,
  ENCODER_TOKEN,
  eventually,
  type GraphQLResponse,
  startTestServer,
  type TestServer,
  wsSubscribe,
} from './fixtures.js';
import { captureLogs, LEVEL } from './log-capture.js';

const D = 2;
let dir: string;
let source: string;
let server: TestServer;
const workers: EncoderWorker[] = [];
const subscribers: Client[] = [];

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'encoder-worker-test-'));
  // 30 s: segments 0..14 of 2 s.
  source = await makeSource(dir, 30);
}, 60_000);
afterAll(() => rm(dir, { recursive: true, force: true }));
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => w.close()));
  await Promise.all(subscribers.splice(0).map((c) => c.dispose()));
  await server?.stop();
});

async function serve(overrides: Partial<Config> = {}, port = 0): Promise<TestServer> {
  server = await startTestServer(
    { ...authOverrides, clientTimeout: 600_000, idleTimeout: 600_000, ...overrides },
    undefined,
    port,
  );
  return server;
}

let counter = 0;
function outputDir(): string {
  return path.join(dir, `out-${++counter}`);
}

function worker(options: Partial<EncoderWorkerOptions> & { outputDir: string }): EncoderWorker {
  const started = startEncoderWorker({
    coordinatorUrl: server.url,
    token: ENCODER_TOKEN,
    ffmpegPath: FFMPEG,
    ffprobePath: FFPROBE,
    reconnectMaxMs: 500,
    ...options,
  });
  workers.push(started);
  return started;
}

async function admin<T = Record<string, any>>(
  query: string,
  variables: Record<string, unknown>,
): Promise<T> {
  const response: GraphQLResponse<T> = await server.gql(query, variables, {
    authorization: `Bearer ${ADMIN_TOKEN}`,
  });
  expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
  return response.data as T;
}

async function createSession(id: string, input: Record<string, unknown> = {}): Promise<void> {
  await admin(
    `mutation ($input: CreateStreamSessionInput!) { createStreamSession(input: $input) { id } }`,
    {
      input: {
        id,
        videoSourcePath: source,
        durationSeconds: 30,
        segmentDuration: D,
        batchSize: 5,
        threshold: 2,
        qualities: ['Q480P'],
        ...input,
      },
    },
  );
}

async function move(id: string, sessionId: string, segmentNumber: number, quality = 'Q480P') {
  await admin(
    `mutation ($input: UpdateClientPositionInput!) { updateClientPosition(input: $input) { segmentNumber } }`,
    { input: { streamSessionId: id, sessionId, segmentNumber, quality } },
  );
}

interface SessionView {
  batches: Array<{
    batchNumber: number;
    startSegment: number;
    endSegment: number;
    isComplete: boolean;
    isStalled: boolean;
    qualities: string[];
  }>;
  coverage: Array<{ quality: string; startSegment: number; endSegment: number }>;
}

async function session(id: string): Promise<SessionView | null> {
  const data = await admin<{ streamSession: SessionView | null }>(
    `query ($id: ID!) { streamSession(id: $id) {
      batches { batchNumber startSegment endSegment isComplete isStalled qualities }
      coverage { quality startSegment endSegment }
    } }`,
    { id },
  );
  return data.streamSession;
}

/** The names in a session's rendition folder, sorted; [] when there is none. */
async function files(out: string, id: string, name: string): Promise<string[]> {
  try {
    return (await readdir(path.join(sessionDir(out, id), name))).sort();
  } catch {
    return [];
  }
}

const sorted = (names: string[]) => [...names].sort();

/** Needs announced on batchNeeded, as an admin sees them. */
function watchNeeds() {
  const client = createClient({
    url: server.wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${ADMIN_TOKEN}` },
    retryAttempts: 0,
  });
  subscribers.push(client);
  return wsSubscribe<{ data?: { batchNeeded: { reason: string; batchNumber: number } } }>(
    client,
    `subscription { batchNeeded { reason batchNumber streamSession { id } } }`,
  );
}

describe('the encoder worker', () => {
  it('claims what a viewer needs, encodes it, completes it: files on disk, coverage in the service', async () => {
    await serve();
    const out = outputDir();
    const w = worker({ outputDir: out });
    await createSession('film', { qualities: ['Q720P', 'Q480P'] });
    await move('film', 'viewer', 0);

    // FIRST_BATCH: 0-4 in the session's renditions.
    await eventually(async () => (await session('film'))?.batches[0]?.isComplete === true, {
      timeout: 30_000,
    });
    expect(await files(out, 'film', '480p')).toEqual(sorted(segmentNames(0, 4)));
    expect(await files(out, 'film', '720p')).toEqual(sorted(segmentNames(0, 4)));
    expect(await files(out, 'film', '1080p')).toEqual([]);
    const view = await session('film');
    expect(view?.coverage).toEqual(
      expect.arrayContaining([
        { quality: 'Q480P', startSegment: 0, endSegment: 4 },
        { quality: 'Q720P', startSegment: 0, endSegment: 4 },
      ]),
    );
    expect(w.stats.claimed).toBe(1);
    expect(w.stats.completed).toBe(1);
    expect(w.stats.failed).toBe(0);

    // The viewer plays on: within threshold of 4, it needs 5-9, in its own rendition only.
    await move('film', 'viewer', 3);
    await eventually(async () => (await session('film'))?.batches[1]?.isComplete === true, {
      timeout: 30_000,
    });
    expect((await session('film'))?.batches[1]).toMatchObject({
      startSegment: 5,
      endSegment: 9,
      qualities: ['Q480P'],
    });
    expect(await files(out, 'film', '480p')).toEqual(sorted(segmentNames(0, 9)));
    expect(await files(out, 'film', '720p')).toEqual(sorted(segmentNames(0, 4)));

    // The session ends: its folder goes.
    expect(existsSync(sessionDir(out, 'film'))).toBe(true);
    await admin(`mutation { endStreamSession(id: "film") }`, {});
    await eventually(() => !existsSync(sessionDir(out, 'film')), { timeout: 10_000 });
    expect(w.stats.sessionsDeleted).toBe(1);
  });

  it('never runs more than ENCODER_CONCURRENCY ffmpeg at once, over two sessions', async () => {
    await serve();
    const out = outputDir();
    // A wrapper that notes when each ffmpeg starts and ends, then runs the real one.
    const journal = path.join(dir, `journal-${counter}`);
    const ffmpeg = await script(
      dir,
      `journaling-ffmpeg-${counter}`,
      `echo "start $$" >> ${journal}\n${FFMPEG} "$@"\ncode=$?\necho "end $$" >> ${journal}\nexit $code`,
    );
    const w = worker({ outputDir: out, concurrency: 1, ffmpegPath: ffmpeg });
    await createSession('one');
    await createSession('two');
    await move('one', 'a', 0);
    await move('two', 'b', 0);
    await eventually(
      async () =>
        (await session('one'))?.batches[0]?.isComplete === true &&
        (await session('two'))?.batches[0]?.isComplete === true,
      { timeout: 40_000 },
    );
    // Two runs, one after the other: start, end, start, end.
    const lines = (await readFile(journal, 'utf8')).trim().split('\n');
    expect(lines.map((l) => l.split(' ')[0])).toEqual(['start', 'end', 'start', 'end']);
    expect(w.stats.maxRunning).toBe(1);
    expect(await files(out, 'one', '480p')).toEqual(sorted(segmentNames(0, 4)));
    expect(await files(out, 'two', '480p')).toEqual(sorted(segmentNames(0, 4)));
  });

  it('a missing source: logged with ffmpeg’s words, not completed, and it stalls', async () => {
    await serve({ batchTimeout: 1_500 });
    const out = outputDir();
    const { logger, lines } = captureLogs('info');
    const w = worker({ outputDir: out, logger });
    const needs = watchNeeds();
    const missing = path.join(dir, 'no-such-video.mp4');
    await createSession('broken', { videoSourcePath: missing });
    await move('broken', 'viewer', 0);

    await eventually(() => w.stats.failed >= 1, { timeout: 20_000 });
    const failure = lines.find((l) => l.level === LEVEL.error && l.msg.startsWith('batch failed'));
    expect(failure?.reason).toMatch(/no-such-video\.mp4.*No such file or directory/);
    expect(failure?.streamSessionId).toBe('broken');
    // Left to stall: announced again after BATCH_TIMEOUT, never completed.
    await eventually(
      () =>
        needs.events.some(
          (e) => e.data?.batchNeeded.reason === 'STALLED' && e.data.batchNeeded.batchNumber === 0,
        ),
      { timeout: 20_000 },
    );
    expect(w.stats.completed).toBe(0);
    expect((await session('broken'))?.batches.every((b) => !b.isComplete)).toBe(true);
    expect(await files(out, 'broken', '480p')).toEqual([]);
  });

  it('a slow but progressing ffmpeg renews its claim: not STALLED though it outlasts BATCH_TIMEOUT', async () => {
    // 2.5 s, so that ffmpeg's silent start (a second or more on a loaded machine) stays within it.
    await serve({ batchTimeout: 2_500 });
    const out = outputDir();
    // Real ffmpeg at the source's own pace (-re): 3 segments of 2 s take about 6 s.
    const slow = await script(dir, `slow-ffmpeg-${counter}`, `exec ${FFMPEG} -re "$@"`);
    const w = worker({ outputDir: out, ffmpegPath: slow, renewIntervalMs: 300 });
    const needs = watchNeeds();
    await createSession('slow', { batchSize: 3, threshold: 1 });
    await move('slow', 'viewer', 0);
    let stalledSeen = false;
    const done = await eventually(
      async () => {
        const batch = (await session('slow'))?.batches[0];
        if (batch?.isStalled) stalledSeen = true;
        return batch?.isComplete === true && batch;
      },
      { timeout: 40_000 },
    );
    expect(done).toMatchObject({ startSegment: 0, endSegment: 2 });
    expect(stalledSeen, JSON.stringify(w.stats)).toBe(false);
    expect(needs.events.map((e) => e.data?.batchNeeded.reason)).not.toContain('STALLED');
    // About one renewal per 300 ms of a 6 s encode: surely more than BATCH_TIMEOUT would allow without.
    expect(w.stats.renewals).toBeGreaterThanOrEqual(5);
    expect(w.stats.lost).toBe(0);
    expect(w.stats.completed).toBe(1);
    expect(await files(out, 'slow', '480p')).toEqual(sorted(segmentNames(0, 2)));
  });

  it('a renewal answered CONFLICT (the batch is no longer being made) stops that ffmpeg', async () => {
    await serve();
    const out = outputDir();
    const slow = await script(dir, `slow-ffmpeg-${counter}`, `exec ${FFMPEG} -re "$@"`);
    const w = worker({ outputDir: out, ffmpegPath: slow, renewIntervalMs: 200 });
    const lost: string[] = [];
    w.events.on('lost', (b) => lost.push(b.why));
    await createSession('taken');
    await move('taken', 'viewer', 0);
    await eventually(() => w.stats.renewals >= 1, { timeout: 20_000 });
    // Someone else completes it (an admin here): the next renewal is CONFLICT.
    await admin(
      `mutation { completeBatch(streamSessionId: "taken", batchNumber: 0) { isComplete } }`,
      {},
    );
    await eventually(() => lost.length === 1, { timeout: 10_000 });
    expect(lost[0]).toMatch(/renewal refused/);
    await eventually(() => w.stats.running === 0, { timeout: 10_000 });
    expect(await pgrep(`${out}/`)).toEqual([]);
    expect(w.stats.completed).toBe(0);
    expect(w.stats.lost).toBe(1);
  });

  it('a silent ffmpeg is not renewed for: the batch stalls, and close() stops it', async () => {
    await serve({ batchTimeout: 1_000 });
    const out = outputDir();
    // Says nothing and makes nothing (its arguments stay on its command line, for pgrep).
    const silent = await script(dir, `silent-ffmpeg-${counter}`, 'sleep 600\nexit 1');
    const w = worker({
      outputDir: out,
      ffmpegPath: silent,
      renewIntervalMs: 200,
    });
    const needs = watchNeeds();
    await createSession('silent');
    await move('silent', 'viewer', 0);
    await eventually(() => w.stats.running === 1, { timeout: 10_000 });
    await eventually(() => needs.events.some((e) => e.data?.batchNeeded.reason === 'STALLED'), {
      timeout: 10_000,
    });
    expect(w.stats.renewals).toBe(0);
    expect(w.stats.completed).toBe(0);
    // Announced STALLED while it "makes" it: the worker knows it lost the batch.
    await eventually(() => w.stats.lost >= 1, { timeout: 5_000 });
    await eventually(async () => (await pgrep(`${out}/`)).length > 0, { timeout: 5_000 });
    await w.close();
    expect(await pgrep(`${out}/`)).toEqual([]);
  });

  it('a session ending while its batch is made: ffmpeg stopped, batch not completed, folder gone', async () => {
    await serve();
    const out = outputDir();
    const slow = await script(dir, `slow-ffmpeg-${counter}`, `exec ${FFMPEG} -re "$@"`);
    const w = worker({ outputDir: out, ffmpegPath: slow });
    const completed: number[] = [];
    w.events.on('completed', (b) => completed.push(b.batchNumber));
    await createSession('short-lived');
    await move('short-lived', 'viewer', 0);
    // Wait for a first segment, so there is something to delete.
    await eventually(async () => (await files(out, 'short-lived', '480p')).includes('seg_0.ts'), {
      timeout: 20_000,
    });
    expect((await pgrep(`${out}/`)).length).toBeGreaterThan(0);
    await admin(`mutation { endStreamSession(id: "short-lived") }`, {});
    await eventually(() => w.stats.sessionsDeleted === 1, { timeout: 10_000 });
    expect(existsSync(sessionDir(out, 'short-lived'))).toBe(false);
    expect(await pgrep(`${out}/`)).toEqual([]);
    expect(completed).toEqual([]);
    expect(w.stats.running).toBe(0);
  });

  it('segments more than RELEASE_MARGIN behind the slowest viewer are deleted and released', async () => {
    await serve();
    const out = outputDir();
    const w = worker({ outputDir: out, releaseMargin: 3 });
    await createSession('long');
    await move('long', 'viewer', 0);
    await eventually(async () => (await session('long'))?.batches[0]?.isComplete === true, {
      timeout: 30_000,
    });
    await move('long', 'viewer', 3);
    await eventually(async () => (await session('long'))?.batches[1]?.isComplete === true, {
      timeout: 30_000,
    });
    // A jump to 12: 12-14 is made; the slowest viewer is at 12, so batch 0 (0-4,
    // more than 3 behind) goes; batch 1 (5-9, 9 is only 3 behind) stays.
    await move('long', 'viewer', 12);
    await eventually(() => w.stats.released >= 1, { timeout: 30_000 });
    expect(await files(out, 'long', '480p')).toEqual(
      sorted([...segmentNames(5, 9), ...segmentNames(12, 14)]),
    );
    const view = await session('long');
    expect(view?.batches.map((b) => b.startSegment)).not.toContain(0);
    expect(view?.coverage).toEqual([
      { quality: 'Q480P', startSegment: 5, endSegment: 9 },
      { quality: 'Q480P', startSegment: 12, endSegment: 14 },
    ]);
    expect(w.stats.released).toBe(1);
  });

  it('reconnects by itself when the service restarts, and works on', async () => {
    const first = await serve();
    const port = Number(new URL(first.url).port);
    const out = outputDir();
    const w = worker({ outputDir: out });
    let connections = 0;
    w.events.on('connected', () => connections++);
    await eventually(() => connections === 1, { timeout: 10_000 });
    await first.stop();
    await serve({}, port);
    await eventually(() => connections === 2, { timeout: 20_000 });
    await createSession('after');
    await move('after', 'viewer', 0);
    await eventually(async () => (await session('after'))?.batches[0]?.isComplete === true, {
      timeout: 30_000,
    });
    expect(await files(out, 'after', '480p')).toEqual(sorted(segmentNames(0, 4)));
  });
});
