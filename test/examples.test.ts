/**
 * Issue 7, the example clients: examples/encoder.ts and examples/player.ts
 * against a real server with access control on, through the public API
 * only. The assertions are about the server's state (batches claimed and
 * completed, clients present or gone), not only about the clients' view.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createStreamSession, endStreamSession, issuePlayerToken } from '../examples/backend.js';
import { type Encoder, startEncoder } from '../examples/encoder.js';
import { type Player, startPlayer } from '../examples/player.js';
import {
  ADMIN_TOKEN,
  authOverrides,
  ENCODER_TOKEN,
  eventually,
  startTestServer,
  type TestServer,
} from './fixtures.js';
import { parsePrometheus } from './prometheus.js';

let server: TestServer;
const encoders: Encoder[] = [];
const players: Player[] = [];
const said: string[] = [];
const log = (line: string) => said.push(line);

beforeEach(async () => {
  server = await startTestServer({ ...authOverrides, positionUpdatesPerSecond: 10 });
  said.length = 0;
});
afterEach(async () => {
  await Promise.all(players.splice(0).map((p) => p.stop()));
  await Promise.all(encoders.splice(0).map((e) => e.stop()));
  await server.stop();
});

const admin = () => ({ url: server.url, token: ADMIN_TOKEN });
const view = (id: string) => server.app.coordinator.getStreamSession(id);

function encoder(options: Partial<Parameters<typeof startEncoder>[0]> = {}): Encoder {
  const started = startEncoder({
    url: server.url,
    token: ENCODER_TOKEN,
    batchMs: 100,
    log,
    ...options,
  });
  encoders.push(started);
  return started;
}

async function player(
  streamSessionId: string,
  sessionId: string,
  options: Partial<Parameters<typeof startPlayer>[0]> = {},
): Promise<Player> {
  const token = await issuePlayerToken(admin(), streamSessionId, sessionId);
  // 6-second segments 40 times faster: one report every 150 ms, under the 10 a second allowed.
  const started = startPlayer({
    url: server.url,
    token,
    streamSessionId,
    sessionId,
    speed: 40,
    log,
    ...options,
  });
  players.push(started);
  return started;
}

async function metric(name: string): Promise<number> {
  const response = await fetch(`${server.baseUrl}/metrics`, {
    headers: { authorization: `Bearer ${ADMIN_TOKEN}` },
  });
  return parsePrometheus(await response.text()).sum(name);
}

describe('the example encoder and players', () => {
  it('keep a session supplied: the encoder claims and completes the batches the players need', async () => {
    await createStreamSession(admin(), {
      id: 'movie',
      videoSourcePath: '/media/movie.mkv',
      batchSize: 10,
      threshold: 3,
    });
    const worker = encoder();
    await Promise.all(['a', 'b', 'c'].map((id) => player('movie', `viewer-${id}`)));

    // Batches of 10 segments at ~7 segments a second: a few seconds make several.
    await eventually(
      async () => {
        const session = await view('movie');
        return (session?.currentBatch?.batchNumber ?? 0) >= 3;
      },
      { timeout: 30_000 },
    );
    const session = await view('movie');
    expect(session?.clientPositions.map((c) => c.sessionId)).toEqual([
      'viewer-a',
      'viewer-b',
      'viewer-c',
    ]);
    // Batches of 10 from segment 0: batch 3 or later starts at segment 30 or further.
    expect(session?.currentBatch?.startSegment).toBeGreaterThanOrEqual(30);

    // What every viewer has left more than 10 segments behind (releaseMargin)
    // is deleted and released: batch 0 (0-9) goes from batches and coverage.
    await eventually(() => worker.stats.released >= 1, { timeout: 30_000 });
    const released = await view('movie');
    expect(released?.batches.map((b) => b.batchNumber)).not.toContain(0);
    expect(released?.coverage.filter((r) => r.startSegment <= 9)).toEqual([]);

    // Players that stop leave their session (removeClient), at once.
    await Promise.all(players.splice(0).map((p) => p.stop()));
    expect((await view('movie'))?.clientPositions).toEqual([]);

    // Nobody moves any more: the encoder finishes what it claimed (a claim may
    // still be on its way back), and the server counted exactly what it did.
    await eventually(
      async () =>
        worker.stats.completed === worker.stats.claimed &&
        (await metric('hbc_batches_claimed_total')) === worker.stats.claimed &&
        (await metric('hbc_batches_completed_total')) === worker.stats.completed,
      { timeout: 10_000 },
    );
    expect(worker.stats.claimed).toBeGreaterThanOrEqual(4);
    expect((await view('movie'))?.currentBatch?.isComplete).toBe(true);
  });

  it('two encoders share the work: each batch is claimed once, the loser of a race moves on', async () => {
    const first = encoder();
    const second = encoder();
    await createStreamSession(admin(), {
      id: 'race',
      videoSourcePath: '/media/race.mkv',
      batchSize: 10,
      threshold: 3,
    });
    const viewer = await player('race', 'viewer-1');
    await eventually(async () => ((await view('race'))?.currentBatch?.batchNumber ?? 0) >= 3, {
      timeout: 30_000,
    });
    await viewer.stop();
    // Every need was heard by both: one claimed it, the other was told CONFLICT.
    const claims = () => first.stats.claimed + second.stats.claimed;
    const conflicts = () => first.stats.conflicts + second.stats.conflicts;
    await eventually(
      async () =>
        conflicts() === claims() &&
        first.stats.completed + second.stats.completed === claims() &&
        (await metric('hbc_batches_claimed_total')) === claims(),
      { timeout: 10_000 },
    );
    expect(claims()).toBeGreaterThanOrEqual(4);
  });

  it('works on several needs at once, never more than its concurrency', async () => {
    await createStreamSession(admin(), {
      id: 'spread',
      videoSourcePath: '/media/spread.mkv',
      batchSize: 10,
      threshold: 3,
    });
    // Three viewers far apart, each needing its own batch (FIRST_BATCH at 0 and
    // SEEK_AHEAD at 100 and 200), all pending at once; they stay put (a segment a minute).
    for (const [id, segment] of [
      ['a', 0],
      ['b', 100],
      ['c', 200],
    ] as const) {
      await player('spread', `viewer-${id}`, { startSegment: segment, speed: 0.1 });
    }
    await eventually(async () => ((await view('spread'))?.clientPositions.length ?? 0) === 3);
    const worker = encoder({ concurrency: 2, batchMs: 600 });
    let most = 0;
    await eventually(
      async () => {
        const batches = (await view('spread'))?.batches ?? [];
        most = Math.max(most, batches.filter((b) => !b.isComplete).length);
        return worker.stats.completed === 3;
      },
      { timeout: 20_000 },
    );
    expect(most).toBe(2);
    const batches = (await view('spread'))?.batches ?? [];
    const ranges = batches.map((b) => [b.startSegment, b.endSegment, b.isComplete]);
    expect(ranges.sort(([a], [b]) => Number(a) - Number(b))).toEqual([
      [0, 9, true],
      [100, 109, true],
      [200, 209, true],
    ]);
  });

  it('a player leaves after its segments, and stops when its session ends', async () => {
    await createStreamSession(admin(), { id: 'short', videoSourcePath: '/media/short.mkv' });
    const leaving = await player('short', 'leaver', { leaveAfter: 3 });
    const staying = await player('short', 'stayer');
    expect(await leaving.done).toBe('left');
    expect((await view('short'))?.clientPositions.map((c) => c.sessionId)).toEqual(['stayer']);
    expect(leaving.segment).toBe(3);

    expect(await endStreamSession(admin(), 'short')).toBe(true);
    expect(await staying.done).toBe('session ended');
  });

  it('a player or an encoder with a refused token stops and says so', async () => {
    await createStreamSession(admin(), { id: 'locked', videoSourcePath: '/media/locked.mkv' });
    const stranger = startPlayer({
      url: server.url,
      token: 'not-a-token-at-all',
      streamSessionId: 'locked',
      sessionId: 'x',
      log,
    });
    expect(await stranger.done).toBe('token refused');
    // A token for another viewer of the session is FORBIDDEN for this one.
    const borrowed = startPlayer({
      url: server.url,
      token: await issuePlayerToken(admin(), 'locked', 'owner'),
      streamSessionId: 'locked',
      sessionId: 'thief',
      log,
    });
    expect(await borrowed.done).toBe('token refused');
    expect((await view('locked'))?.clientPositions).toEqual([]);

    const refused = startEncoder({ url: server.url, token: 'x'.repeat(24), batchMs: 1, log });
    await expect(refused.done).rejects.toThrow(/refused the encoder token/);
    await refused.stop();
  });

  it('the encoder reconnects after a restart of the server and takes up the needs of the new one', async () => {
    const worker = encoder();
    await createStreamSession(admin(), { id: 'before', videoSourcePath: '/media/before.mkv' });
    await eventually(async () => worker.stats.completed === 1, { timeout: 10_000 });

    // The memory store restarts empty on the same port; the worker's socket is closed (1001).
    const port = Number(new URL(server.url).port);
    await server.stop();
    server = await startTestServer({ ...authOverrides }, undefined, port);
    await createStreamSession(admin(), { id: 'after', videoSourcePath: '/media/after.mkv' });

    // Counted by the worker once the server has answered its completeBatch.
    await eventually(() => worker.stats.completed === 2, { timeout: 20_000 });
    expect((await view('after'))?.currentBatch).toMatchObject({ batchNumber: 0, isComplete: true });
    expect(said.some((line) => line.includes('subscribing again'))).toBe(true);
  });
});

describe('examples/graphql-env.d.ts', () => {
  it('is what `npm run examples:types` makes of schema.graphql now', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tada-'));
    try {
      const output = join(dir, 'graphql-env.d.ts');
      const root = fileURLToPath(new URL('..', import.meta.url));
      const cli = join(root, 'node_modules/gql.tada/bin/cli.js');
      await promisify(execFile)(
        process.execPath,
        [cli, 'generate-output', '-c', 'examples/tsconfig.json', '-o', output],
        { cwd: root },
      );
      const committed = await readFile(join(root, 'examples/graphql-env.d.ts'), 'utf8');
      expect(await readFile(output, 'utf8'), 'run npm run examples:types').toBe(committed);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
