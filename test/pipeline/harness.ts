/**
 * The whole pipeline of issue 13 in one process, for test/pipeline.e2e.test.ts
 * and for benchmarks: the service (memory store, tokens on), the encoder
 * worker, the segment server, a static server for the test page, and
 * Debian's Chromium (playwright-core) playing with hls.js and the player
 * integration (web/track-playback.ts, bundled by esbuild through web/build.ts).
 *
 * No vitest in here, so a benchmark can import it under plain tsx.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createClient } from 'graphql-ws';
import type { Browser, Page } from 'playwright-core';
import WebSocket from 'ws';
import { type SegmentServer, startSegmentServer } from '../../encoder/segment-server.js';
import { type EncoderWorker, startEncoderWorker } from '../../encoder/worker.js';
import { type Config, defaultConfig } from '../../src/config.js';
import { type App, buildApp } from '../../src/server/app.js';
import { buildTrackPlayback } from '../../web/build.js';
import { launchChromium, MEDIA_ARGS } from '../chromium.js';
import { makeSource } from '../encoder-media.js';
import { quietLogger } from '../log-capture.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

export const ADMIN_TOKEN = 'pipeline-admin-token-0001';
export const ENCODER_TOKEN = 'pipeline-encoder-token-01';
const CLIENT_TOKEN_SECRET = 'p'.repeat(40);
/**
 * libx264's fastest preset: the test video is synthetic and tiny, and on a
 * shared 2-core machine (other test files, Chromium, other engineers' ffmpeg)
 * the encoder must stay well ahead of a player at twice real time. veryfast
 * (the worker's default) needs about 1.7 times the CPU for a batch here.
 */
export const ENCODER_PRESET = 'ultrafast';
const DAY = 86_400_000;

/** The service's settings for the pipeline: short segments and batches, so boundaries come often. */
export const PIPELINE = {
  segmentDuration: 2,
  batchSize: 5,
  threshold: 2,
  /** Milliseconds a claimed batch may go unrenewed before it is STALLED. */
  batchTimeout: 8_000,
  /** Seconds of test video: 25 segments (0..24), the last one 1 s. */
  videoSeconds: 49,
  playbackRate: 2,
} as const;

/** The service's config for the pipeline. */
export function pipelineConfig(overrides: Partial<Config> = {}): Config {
  return {
    ...defaultConfig,
    store: 'memory',
    authEnabled: true,
    adminToken: ADMIN_TOKEN,
    encoderToken: ENCODER_TOKEN,
    clientTokenSecret: CLIENT_TOKEN_SECRET,
    segmentDuration: PIPELINE.segmentDuration,
    batchSize: PIPELINE.batchSize,
    threshold: PIPELINE.threshold,
    batchTimeout: PIPELINE.batchTimeout,
    qualities: ['480p'],
    clientTimeout: 30_000,
    idleTimeout: DAY,
    ...overrides,
  };
}

/**
 * The test video: testsrc2 at 426x240, 25 fps, a 440 Hz tone (AAC), one
 * keyframe a second so that a batch's -ss lands close. Made once and kept in
 * the temp folder (keyed by its length), written under another name and
 * renamed so that a run killed midway leaves no half file.
 */
export async function sourceVideo(seconds: number = PIPELINE.videoSeconds): Promise<string> {
  const dir = path.join(tmpdir(), 'hls-batch-coordinator-cache');
  const file = path.join(dir, `pipeline-source-${seconds}s.mp4`);
  if (existsSync(file)) return file;
  mkdirSync(dir, { recursive: true });
  const partial = `${file}.${process.pid}.partial.mp4`;
  await makeSource(dir, seconds, {
    size: '426x240',
    name: path.basename(partial),
    preset: 'veryfast',
  });
  renameSync(partial, file);
  return file;
}

/** Serves the test page, hls.js and the bundled integration, from an origin of its own. */
async function startStaticServer(): Promise<{ url: string; close(): Promise<void> }> {
  const files: Record<string, { type: string; body: string }> = {
    '/': {
      type: 'text/html; charset=utf-8',
      body: readFileSync(new URL('./page.html', import.meta.url), 'utf8'),
    },
    '/hls.min.js': {
      type: 'text/javascript; charset=utf-8',
      body: readFileSync(path.join(ROOT, 'node_modules/hls.js/dist/hls.min.js'), 'utf8'),
    },
    '/track-playback.js': {
      type: 'text/javascript; charset=utf-8',
      // The player integration as browsers get it (npm run build:web's IIFE, HlsBatchTracking).
      body: await buildTrackPlayback(),
    },
  };
  const server = http.createServer((request, response) => {
    const file = files[(request.url ?? '/').split('?')[0] ?? '/'];
    if (file === undefined) {
      response.writeHead(404).end();
      return;
    }
    response.writeHead(200, { 'content-type': file.type, 'cache-control': 'no-store' });
    response.end(file.body);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface StartPlayerOptions {
  streamSessionId: string;
  /** The client's id in the session; a player token is issued for it. */
  sessionId: string;
  /** Seconds; -1 (hls.js' default) starts at the beginning. */
  startPosition?: number;
  levelHeight?: number;
}

/** What a player in the page saw, as page.html records it (performance.now() ms). */
export interface PlayerState {
  startedAt: number;
  firstPlayingAt: number | null;
  stalls: Array<{ at: number; what: string; currentTime: number; sn: number | null }>;
  seeks: Array<{
    target: number;
    from: number;
    at: number;
    playingAt: number | null;
    advancedAt: number | null;
  }>;
  frags: Array<{ sn: number; height: number; at: number }>;
  loaded: Array<{ sn: number; height: number; at: number }>;
  errors: Array<{ details: string; fatal: boolean; at: number }>;
  trackerErrors: string[];
  reports: Array<{ sn: number; quality: string; at: number }>;
  endedAt: number | null;
  currentTime: number;
  playing: boolean;
  levels: number[];
}

/** One player (a <video> with its hls.js and tracking) in a page. */
export interface Player {
  readonly key: string;
  readonly page: Page;
  state(): Promise<PlayerState>;
  /** Resolves when `condition(state)` holds (checked every 100 ms); rejects after timeoutMs. */
  until(
    what: string,
    condition: (s: PlayerState) => boolean,
    timeoutMs: number,
  ): Promise<PlayerState>;
  seek(seconds: number): Promise<void>;
  /** Sets hls.currentLevel to the level of that height (an immediate switch). */
  switchLevel(height: number): Promise<void>;
  /** The segment playing now (the last FRAG_CHANGED), or null. */
  playingSegment(): Promise<number | null>;
}

export interface Pipeline {
  app: App;
  /** http://127.0.0.1:PORT/graphql */
  serviceUrl: string;
  segments: SegmentServer;
  outputDir: string;
  sourcePath: string;
  browser: Browser;
  pageUrl: string;
  /** The in-process encoder worker, null while stopped. */
  worker: EncoderWorker | null;
  startWorker(): EncoderWorker;
  stopWorker(): Promise<void>;
  /** A GraphQL call as admin; throws on errors. */
  admin<T = Record<string, any>>(query: string, variables?: Record<string, unknown>): Promise<T>;
  createSession(id: string, input?: Record<string, unknown>): Promise<void>;
  /** A new page (its own origin, not the service's nor the segment server's). */
  newPage(): Promise<Page>;
  startPlayer(page: Page, options: StartPlayerOptions): Promise<Player>;
  /** Everything the page reported as wrong, per page. */
  problems: string[];
  close(): Promise<void>;
}

export interface PipelineOptions {
  /** Seconds the segment server holds a request for a segment not made yet. */
  holdSeconds?: number;
  /** Batches the in-process worker makes at once. */
  workerConcurrency?: number;
  /** libx264 preset of the in-process worker (ENCODER_PRESET, ultrafast, unless set). */
  preset?: string;
  /** Seconds of test video (PIPELINE.videoSeconds unless set); sessions get it as durationSeconds. */
  videoSeconds?: number;
  /** Start the in-process worker (default true). */
  worker?: boolean;
}

let counter = 0;

export async function startPipeline(options: PipelineOptions = {}): Promise<Pipeline> {
  const closers: Array<() => Promise<void>> = [];
  const close = async () => {
    for (const c of closers.splice(0).reverse()) await c().catch(() => {});
  };
  try {
    const videoSeconds = options.videoSeconds ?? PIPELINE.videoSeconds;
    const sourcePath = await sourceVideo(videoSeconds);
    const outputDir = mkdtempSync(path.join(tmpdir(), 'pipeline-output-'));
    closers.push(async () => rmSync(outputDir, { recursive: true, force: true }));

    const app = buildApp({ config: pipelineConfig(), logger: quietLogger() });
    const address = await app.start(0, '127.0.0.1');
    closers.push(() => app.stop());
    const serviceUrl = `http://127.0.0.1:${address.port}/graphql`;

    const segments = await startSegmentServer({
      outputDir,
      port: 0,
      coordinatorUrl: serviceUrl,
      token: ENCODER_TOKEN,
      holdSeconds: options.holdSeconds ?? 20,
    });
    closers.push(() => segments.close());

    const statics = await startStaticServer();
    closers.push(() => statics.close());

    const browser = await launchChromium(MEDIA_ARGS);
    closers.push(() => browser.close());

    const problems: string[] = [];

    async function admin<T>(query: string, variables?: Record<string, unknown>): Promise<T> {
      const response = await fetch(serviceUrl, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json',
          authorization: `Bearer ${ADMIN_TOKEN}`,
        },
        body: JSON.stringify({ query, variables }),
      });
      const body = (await response.json()) as { data?: T; errors?: unknown[] };
      if (body.errors !== undefined) throw new Error(JSON.stringify(body.errors));
      return body.data as T;
    }

    const pipeline: Pipeline = {
      app,
      serviceUrl,
      segments,
      outputDir,
      sourcePath,
      browser,
      pageUrl: statics.url,
      worker: null,
      problems,
      admin,
      startWorker() {
        if (pipeline.worker !== null) return pipeline.worker;
        pipeline.worker = startEncoderWorker({
          coordinatorUrl: serviceUrl,
          token: ENCODER_TOKEN,
          outputDir,
          concurrency: options.workerConcurrency ?? 2,
          preset: options.preset ?? ENCODER_PRESET,
          renewIntervalMs: 2_000,
        });
        pipeline.worker.done.catch((error: Error) => problems.push(`worker: ${error.message}`));
        return pipeline.worker;
      },
      async stopWorker() {
        const worker = pipeline.worker;
        pipeline.worker = null;
        await worker?.close();
      },
      async createSession(id, input = {}) {
        await admin(
          `mutation Create($input: CreateStreamSessionInput!) { createStreamSession(input: $input) { id } }`,
          {
            input: {
              id,
              videoSourcePath: sourcePath,
              durationSeconds: videoSeconds,
              ...input,
            },
          },
        );
      },
      async newPage() {
        const page = await browser.newPage({ viewport: { width: 900, height: 600 } });
        page.setDefaultTimeout(10_000);
        page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
        page.on('console', (message) => {
          if (message.type() === 'error') problems.push(`console: ${message.text()}`);
        });
        await page.goto(pipeline.pageUrl);
        return page;
      },
      async startPlayer(page, o) {
        const token = (
          await admin<{ issueClientToken: string }>(
            'mutation T($s: ID!, $c: ID!) { issueClientToken(streamSessionId: $s, sessionId: $c) }',
            { s: o.streamSessionId, c: o.sessionId },
          )
        ).issueClientToken;
        const key = `player-${++counter}`;
        await page.evaluate((args) => (window as any).startPlayer(args), {
          key,
          src: `${segments.url}/sessions/${encodeURIComponent(o.streamSessionId)}/master.m3u8`,
          coordinatorUrl: serviceUrl,
          streamSessionId: o.streamSessionId,
          sessionId: o.sessionId,
          token,
          startPosition: o.startPosition ?? -1,
          levelHeight: o.levelHeight ?? 480,
          playbackRate: PIPELINE.playbackRate,
        });
        const state = () => page.evaluate((k) => (window as any).players[k].p as PlayerState, key);
        return {
          key,
          page,
          state,
          async until(what, condition, timeoutMs) {
            const deadline = Date.now() + timeoutMs;
            for (;;) {
              const s = await state();
              if (condition(s)) return s;
              if (Date.now() > deadline) {
                throw new Error(
                  `${key} did not ${what} within ${timeoutMs} ms: currentTime ${s.currentTime.toFixed(2)}, last frags ${JSON.stringify(s.frags.slice(-3))}, errors ${JSON.stringify(s.errors.slice(-5))}, tracker ${JSON.stringify(s.trackerErrors)}`,
                );
              }
              await new Promise((resolve) => setTimeout(resolve, 100));
            }
          },
          async seek(seconds) {
            await page.evaluate(
              ([k, t]) => {
                (window as any).players[k as string].video.currentTime = t;
              },
              [key, seconds] as const,
            );
          },
          async switchLevel(height) {
            await page.evaluate(
              ([k, h]) => {
                const { hls } = (window as any).players[k as string];
                hls.currentLevel = hls.levels.findIndex((l: { height: number }) => l.height === h);
              },
              [key, height] as const,
            );
          },
          async playingSegment() {
            const s = await state();
            return s.frags.at(-1)?.sn ?? null;
          },
        };
      },
      close,
    };
    if (options.worker !== false) pipeline.startWorker();
    closers.push(() => pipeline.stopWorker());
    return pipeline;
  } catch (error) {
    await close();
    throw error;
  }
}

/** A fresh stream session id. */
export function uniqueId(name: string): string {
  return `${name}-${Date.now().toString(36)}-${++counter}`;
}

/** A batchNeeded event as the pipeline tests select it. */
export interface Need {
  reason: string;
  batchNumber: number;
  startSegment: number;
  endSegment: number;
  isLastBatch: boolean;
  qualities: string[];
  at: number;
}

/** batchNeeded for one session, collected as it comes (graphql-ws, admin token). */
export function subscribeNeeds(
  pipeline: Pick<Pipeline, 'serviceUrl'>,
  streamSessionId: string,
): { needs: Need[]; ready: Promise<void>; stop(): Promise<void> } {
  const needs: Need[] = [];
  let acknowledged!: () => void;
  const ready = new Promise<void>((resolve) => {
    acknowledged = resolve;
  });
  const client = createClient({
    url: pipeline.serviceUrl.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${ADMIN_TOKEN}` },
    lazy: false,
    retryAttempts: 0,
    on: { connected: () => acknowledged() },
  });
  const unsubscribe = client.subscribe(
    {
      query: `subscription Needs($id: ID) { batchNeeded(streamSessionId: $id) {
        reason batchNumber startSegment endSegment isLastBatch qualities } }`,
      variables: { id: streamSessionId },
    },
    {
      next: (value) => {
        const need = (value.data as { batchNeeded: Omit<Need, 'at'> } | null)?.batchNeeded;
        if (need) needs.push({ ...need, at: Date.now() });
      },
      error: () => {},
      complete: () => {},
    },
  );
  return {
    needs,
    ready,
    async stop() {
      unsubscribe();
      await client.dispose();
    },
  };
}

/**
 * An encoder worker as its own process (`tsx encoder/main.ts`, the segment
 * server off), in a process group of its own so that a SIGKILL takes its
 * ffmpeg with it, as a crashed machine would.
 */
export function spawnWorker(
  pipeline: Pick<Pipeline, 'serviceUrl' | 'outputDir'>,
  env: Record<string, string> = {},
): { child: ChildProcess; output: string[]; kill(signal?: NodeJS.Signals): void } {
  const output: string[] = [];
  const child = spawn(path.join(ROOT, 'node_modules/.bin/tsx'), ['encoder/main.ts'], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      HOME: process.env.HOME ?? tmpdir(),
      COORDINATOR_URL: pipeline.serviceUrl,
      ENCODER_TOKEN,
      OUTPUT_DIR: pipeline.outputDir,
      SEGMENT_SERVER: 'off',
      LOG_LEVEL: 'info',
      ...env,
    },
  });
  for (const stream of [child.stdout, child.stderr]) {
    stream?.setEncoding('utf8');
    stream?.on('data', (chunk: string) => output.push(...chunk.split('\n').filter(Boolean)));
  }
  return {
    child,
    output,
    kill(signal = 'SIGKILL') {
      if (child.pid !== undefined && child.exitCode === null) {
        try {
          process.kill(-child.pid, signal);
        } catch {
          // already gone
        }
      }
    },
  };
}

/**
 * An ffmpeg that makes every batch but the session's first at real speed
 * (`-re`), so that a batch is still being made seconds after its claim. A
 * shell script in a temp folder (`path`, FFMPEG_PATH for spawnWorker) that
 * notes each ffmpeg's process id: the worker runs ffmpeg in a process group
 * of its own, which a SIGKILL of the worker does not reach (an orphan would
 * go on making the batch); `killAll` kills them as a crashed machine would.
 */
export function realTimeFfmpeg(dir: string): {
  path: string;
  killAll(): void;
  /** How many of the ffmpeg it started still run. */
  running(): number;
} {
  const file = path.join(dir, 'ffmpeg-real-time');
  const pids = path.join(dir, 'ffmpeg-pids');
  writeFileSync(
    file,
    [
      '#!/bin/sh',
      `echo $$ >> '${pids}'`,
      '# The first batch (segments from 0) at full speed, the others read at real time.',
      'case " $* " in *" -start_number 0 "*) exec ffmpeg "$@" ;; esac',
      'exec ffmpeg -re "$@"',
      '',
    ].join('\n'),
  );
  chmodSync(file, 0o755);
  const started = () =>
    existsSync(pids)
      ? readFileSync(pids, 'utf8')
          .split('\n')
          .map(Number)
          .filter((pid) => Number.isInteger(pid) && pid > 1)
      : [];
  return {
    path: file,
    running: () =>
      started().filter((pid) => {
        try {
          // A zombie (killed, not yet reaped by whoever adopted it) does not run.
          const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
          return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
        } catch {
          return false;
        }
      }).length,
    killAll() {
      for (const pid of started()) {
        for (const target of [-pid, pid]) {
          try {
            process.kill(target, 'SIGKILL');
          } catch {
            // gone already
          }
        }
      }
    },
  };
}

/**
 * The batch boundaries a player crossed while playing (the first segments of
 * the batches after its first, batches of PIPELINE.batchSize from
 * startSegment), each with its margin: how long before the playhead entered
 * that segment it had been loaded (negative or small: a stall, or close to one).
 */
export function boundaries(
  s: PlayerState,
  startSegment: number,
  batchSize: number = PIPELINE.batchSize,
): Array<{ segment: number; marginMs: number }> {
  const crossed: Array<{ segment: number; marginMs: number }> = [];
  const seen = new Set<number>();
  for (const f of s.frags) {
    if (seen.has(f.sn)) continue;
    seen.add(f.sn);
    if (f.sn <= startSegment || (f.sn - startSegment) % batchSize !== 0) continue;
    const loaded = s.loaded.find((l) => l.sn === f.sn && l.height === f.height);
    crossed.push({ segment: f.sn, marginMs: loaded === undefined ? 0 : f.at - loaded.at });
  }
  return crossed;
}

export interface PipelineMeasurements {
  /** From hls.loadSource to the first 'playing', per player. */
  timeToFirstFrameMs: number[];
  /** From 'seeking' to the next 'playing' (or the playhead moving on), per seek. */
  seekToPlayingMs: number[];
  boundariesCrossed: number;
  /** 'waiting' and BUFFER_STALLED_ERROR after the first frame, seeks excluded. */
  stalls: number;
  /** Per boundary crossed: how long before it played the next batch's first segment was loaded. */
  boundaryMarginsMs: number[];
}

/**
 * For `npm run bench`: the pipeline's figures from one run, on a pipeline of
 * its own (the e2e settings; the worker's preset ultrafast unless `preset`;
 * a video long enough for the boundaries). One viewer plays from the start
 * across `boundaries` batch boundaries; then `seeks` viewers, each in a session of its own, seek far
 * ahead (to 36.5 s) after their first segment, and as many seek back into a
 * gap (a session started at segment 15, back to 6.5 s).
 */
export async function measurePipeline(
  options: { boundaries?: number; seeks?: number; preset?: string } = {},
): Promise<PipelineMeasurements> {
  const wanted = options.boundaries ?? 4;
  const seeks = options.seeks ?? 2;
  // Long enough for the boundaries wanted, and a last batch after them.
  const videoSeconds = Math.max(
    PIPELINE.videoSeconds,
    (wanted + 1) * PIPELINE.batchSize * PIPELINE.segmentDuration + 9,
  );
  const pipeline = await startPipeline({
    videoSeconds,
    ...(options.preset === undefined ? {} : { preset: options.preset }),
  });
  const m: PipelineMeasurements = {
    timeToFirstFrameMs: [],
    seekToPlayingMs: [],
    boundariesCrossed: 0,
    stalls: 0,
    boundaryMarginsMs: [],
  };
  const D = PIPELINE.segmentDuration;
  async function viewer(input: Record<string, unknown>, startPosition?: number) {
    const id = uniqueId('bench');
    await pipeline.createSession(id, input);
    const page = await pipeline.newPage();
    const player = await pipeline.startPlayer(page, {
      streamSessionId: id,
      sessionId: 'v',
      ...(startPosition === undefined ? {} : { startPosition }),
    });
    const s = await player.until('show a first frame', (x) => x.firstPlayingAt !== null, 30_000);
    m.timeToFirstFrameMs.push(s.firstPlayingAt! - s.startedAt);
    return {
      player,
      async seek(seconds: number) {
        await player.seek(seconds);
        const after = await player.until(
          `play again after a seek to ${seconds} s`,
          (x) => x.seeks.some((k) => Math.abs(k.target - seconds) < 0.5 && k.advancedAt !== null),
          30_000,
        );
        const k = after.seeks.filter((x) => Math.abs(x.target - seconds) < 0.5).at(-1)!;
        m.seekToPlayingMs.push((k.playingAt ?? k.advancedAt!) - k.at);
      },
      async end() {
        await page.close();
        await pipeline.admin('mutation E($id: ID!) { endStreamSession(id: $id) }', { id });
      },
    };
  }
  try {
    const steady = await viewer({});
    const s = await steady.player.until(
      `cross ${wanted} boundaries`,
      (x) => (x.frags.at(-1)?.sn ?? -1) >= wanted * PIPELINE.batchSize,
      wanted * PIPELINE.batchSize * D * 1_000,
    );
    const crossed = boundaries(s, 0);
    m.boundariesCrossed = crossed.length;
    m.boundaryMarginsMs = crossed.map((c) => c.marginMs);
    m.stalls = s.stalls.length;
    await steady.end();
    for (let i = 0; i < seeks; i++) {
      const ahead = await viewer({});
      await ahead.player.until('play segment 1', (x) => (x.frags.at(-1)?.sn ?? -1) >= 1, 20_000);
      await ahead.seek(36.5);
      await ahead.end();
      const back = await viewer({ startSegment: 15 }, 15 * D + 0.5);
      await back.player.until('play segment 16', (x) => (x.frags.at(-1)?.sn ?? -1) >= 16, 20_000);
      await back.seek(3 * D + 0.5);
      await back.end();
    }
    return m;
  } finally {
    await pipeline.close();
  }
}
