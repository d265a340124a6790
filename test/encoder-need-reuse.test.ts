/**
 * A regression found by test/pipeline.e2e.test.ts (c): the service gives a
 * withdrawn need's batchNumber to the session's next need (another range).
 * A worker that knew needs by number alone took the new need for a replay of
 * the one it still held (waiting for its turn) and dropped it; the old one's
 * claim was then refused (CONFLICT) and nobody made the new one: the viewer
 * waited for good. The worker knows a need by its number and range now.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createClient } from 'graphql-ws';
import { afterAll, beforeAll, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type EncoderWorker, startEncoderWorker } from '../encoder/worker.js';
import { FFMPEG, FFPROBE, makeSource, script } from './encoder-media.js';
import {
  ADMIN_TOKEN,
  authOverrides,
  ENCODER_TOKEN,
  eventually,
  type Need,
  Q,
  startTestServer,
  type TestServer,
  wsSubscribe,
} from './fixtures.js';

let dir: string;
let server: TestServer;
let worker: EncoderWorker | undefined;

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'encoder-need-reuse-'));
  server = await startTestServer({ ...authOverrides, qualities: ['480p'] });
}, 60_000);

afterAll(async () => {
  await worker?.close();
  await server?.stop();
  await rm(dir, { recursive: true, force: true });
});

async function admin(query: string, variables: Record<string, unknown>) {
  const response = await server.gql(query, variables, { authorization: `Bearer ${ADMIN_TOKEN}` });
  expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
  return response.data as Record<string, any>;
}

it('makes a need that reuses the number of a withdrawn one it still held', async () => {
  const source = await makeSource(dir, 50);
  // ffmpeg waits for a gate to open: the first batch holds the one slot meanwhile.
  const gate = path.join(dir, 'gate');
  const ffmpeg = await script(
    dir,
    'gated-ffmpeg',
    `while [ ! -e ${gate} ]; do sleep 0.05; done\nexec ${FFMPEG} "$@"`,
  );
  const id = 'reuse';
  await admin(Q.create, {
    input: {
      id,
      videoSourcePath: source,
      durationSeconds: 50,
      segmentDuration: 2,
      batchSize: 5,
      threshold: 2,
    },
  });
  const client = createClient({
    url: server.wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${ADMIN_TOKEN}` },
    retryAttempts: 0,
  });
  const needs = wsSubscribe<{ data: { batchNeeded: Need } }>(client, Q.batchNeeded, {
    streamSessionId: id,
  });
  worker = startEncoderWorker({
    coordinatorUrl: server.url,
    token: ENCODER_TOKEN,
    outputDir: path.join(dir, 'out'),
    concurrency: 1,
    ffmpegPath: ffmpeg,
    ffprobePath: FFPROBE,
  });
  await eventually(() => worker!.stats.claimed === 1, { timeout: 10_000 });

  // A viewer far ahead, then back nearer: the first need is withdrawn, its number given again.
  const move = (segmentNumber: number) =>
    admin(Q.update, {
      input: { streamSessionId: id, sessionId: 'viewer', segmentNumber, quality: 'Q480P' },
    });
  await move(20);
  await needs.waitFor(2);
  await move(12);
  const [, ahead, nearer] = (await needs.waitFor(3)).map((e) => e.data.batchNeeded);
  expect(ahead).toMatchObject({ startSegment: 20, endSegment: 24 });
  expect(nearer).toMatchObject({ startSegment: 12, endSegment: 16 });
  // The premise: the same number, another range.
  expect(nearer!.batchNumber).toBe(ahead!.batchNumber);

  await writeFile(gate, '');
  await eventually(
    async () => {
      const batch = await admin(
        'query ($id: ID!) { streamSession(id: $id) { batches { startSegment isComplete } } }',
        { id },
      );
      return batch.streamSession.batches.some(
        (b: { startSegment: number; isComplete: boolean }) => b.startSegment === 12 && b.isComplete,
      );
    },
    { timeout: 30_000 },
  );
  // The withdrawn one was refused, not made.
  expect(worker.stats.conflicts).toBe(1);
  needs.stop();
  await client.dispose();
});
