/**
 * `npm run demo`: with ffmpeg (FFMPEG_PATH, or `ffmpeg` on the PATH), real
 * video: a test video made once (testsrc2 with a burned-in clock and a tone,
 * cached in .demo/), the service, the
 * encoder worker (encoder/worker.ts, ffmpeg) and the segment server
 * (encoder/segment-server.ts), and ONE page, printed at start: the watch page
 * (hls.js and web/track-playback.ts; play, seek, quality) beside the
 * dashboard, signed in. Each page load is a new viewer with a player token of
 * its own; open it twice to see two clients.
 *
 *   npm run demo                          # http://127.0.0.1:4000/
 *   npm run demo -- --batch-size 8 --threshold 7 --video-seconds 240
 *
 * Without ffmpeg (or with --simulated), the simulated demo below, as before.
 *
 * The simulated demo: the service on the in-memory store with simulated
 * viewers and one simulated encoder, to watch on the dashboard.
 *
 * Viewers join a few stream sessions (videos of known length), play (one
 * segment every few seconds of video time, sped up by --speed), switch
 * quality, seek and leave, and others come; the encoder
 * (examples/encoder.ts) claims and completes the batches they need, up to
 * --concurrency at once, taking --batch-seconds per full batch, releases
 * the segments every viewer has left behind, and abandons a few batches
 * (--drop-rate) so that stalls show. Everything talks to the service over
 * its public API only, as a real deployment would.
 *
 *   npm run demo -- --speed 10 --sessions 4 --viewers 6 --concurrency 3
 *
 * The service's settings come from the environment as for `npm start`
 * (PORT, LOG_LEVEL, …), but STORE is always memory and BATCH_TIMEOUT is 20 s
 * unless set, so that a stall is seen soon after it happens.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { startSegmentServer } from '../encoder/segment-server.js';
import { startEncoderWorker } from '../encoder/worker.js';
import { createStreamSession, issuePlayerToken } from '../examples/backend.js';
import { startEncoder } from '../examples/encoder.js';
import { sleep } from '../examples/graphql.js';
import { type Player, QUALITIES, startPlayer } from '../examples/player.js';
import { ConfigError, loadConfig } from '../src/config.js';
import { buildApp } from '../src/server/app.js';
import { createLogger } from '../src/server/logger.js';
import { ensureDemoVideo, findFfmpeg, findFfprobe, startWatchServer } from './watch-demo.js';

/** Open movies and their lengths in seconds (about). */
const MOVIES: ReadonlyArray<readonly [string, number]> = [
  ['big-buck-bunny', 596],
  ['sintel', 888],
  ['tears-of-steel', 734],
  ['elephants-dream', 654],
  ['cosmos-laundromat', 730],
];

const { values } = parseArgs({
  options: {
    speed: { type: 'string', default: process.env.DEMO_SPEED ?? '4' },
    sessions: { type: 'string', default: process.env.DEMO_SESSIONS ?? '3' },
    viewers: { type: 'string', default: process.env.DEMO_VIEWERS ?? '4' },
    'batch-seconds': { type: 'string', default: process.env.DEMO_BATCH_SECONDS ?? '4' },
    'drop-rate': { type: 'string', default: process.env.DEMO_DROP_RATE ?? '0.1' },
    concurrency: { type: 'string', default: process.env.ENCODER_CONCURRENCY },
    // The real-video demo.
    simulated: { type: 'boolean', default: process.env.DEMO_SIMULATED === '1' },
    'video-seconds': { type: 'string', default: process.env.DEMO_VIDEO_SECONDS ?? '240' },
    'batch-size': { type: 'string', default: process.env.DEMO_BATCH_SIZE ?? '8' },
    threshold: { type: 'string', default: process.env.DEMO_THRESHOLD ?? '7' },
  },
});
const speed = positive('speed', values.speed);
const sessions = Math.min(MOVIES.length, Math.round(positive('sessions', values.sessions)));
const viewers = Math.round(positive('viewers', values.viewers));
const batchSeconds = positive('batch-seconds', values['batch-seconds']);
const dropRate = Number(values['drop-rate']);
const concurrency = Math.round(positive('concurrency', values.concurrency ?? '2'));
const videoSeconds = Math.round(positive('video-seconds', values['video-seconds']));
const batchSize = Math.round(positive('batch-size', values['batch-size']));
const threshold = Math.round(positive('threshold', values.threshold));

function positive(name: string, value: string | undefined): number {
  const number = Number(value);
  if (!(number > 0)) fail(`--${name} must be a positive number, not '${value}'`);
  return number;
}

function fail(message: string): never {
  console.error(message);
  process.exit(1);
}

async function main(): Promise<void> {
  if (!values.simulated) {
    const ffmpeg = findFfmpeg();
    if (ffmpeg !== null) return realDemo(ffmpeg);
    process.stdout.write(
      [
        '',
        `ffmpeg was not found (${process.env.FFMPEG_PATH ? `FFMPEG_PATH=${process.env.FFMPEG_PATH}` : 'no ffmpeg on the PATH'}): the demo with real video needs it.`,
        'Install it (Debian, Ubuntu: apt-get install -y ffmpeg; macOS: brew install ffmpeg), or set FFMPEG_PATH.',
        'Meanwhile, the simulated demo:',
        '',
      ].join('\n'),
    );
  }
  return simulatedDemo();
}

/**
 * Real video: the service, the encoder worker and the segment server in
 * this process, and the page that shows the watch page beside the dashboard.
 */
async function realDemo(ffmpeg: string): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    // A batch takes real time to encode: the encoder renews its claim while ffmpeg
    // progresses (renewBatchClaim), so the service's BATCH_TIMEOUT holds as it is.
    config = loadConfig({ ...process.env, STORE: 'memory' });
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }
  if (threshold > batchSize)
    fail(`--threshold (${threshold}) must not exceed --batch-size (${batchSize})`);
  const logger = createLogger({ level: config.logLevel });
  const say = (line: string) => logger.info({ demo: true }, line);
  const video = await ensureDemoVideo({
    ffmpeg,
    ffprobe: findFfprobe(ffmpeg),
    seconds: videoSeconds,
    log: (line) => process.stdout.write(`${line}\n`),
  });
  say(
    `demo video: ${video.path} (${video.durationSeconds} s${video.generated ? ', made now' : ', cached'})`,
  );

  // The service on a free port of its own: the page's server passes requests on to it.
  const app = buildApp({ config, logger });
  const { url } = await app.start(0, '127.0.0.1');
  const adminToken = config.authEnabled
    ? (config.adminToken ?? app.generatedTokens.adminToken)
    : undefined;
  const encoderToken = config.authEnabled
    ? (config.encoderToken ?? app.generatedTokens.encoderToken)
    : undefined;
  const admin = { url, token: adminToken };
  const outputDir = process.env.OUTPUT_DIR ?? (await mkdtemp(path.join(tmpdir(), 'hbc-demo-')));

  const segmentServer = await startSegmentServer({
    outputDir,
    port: process.env.SEGMENT_PORT === undefined ? 0 : Number(process.env.SEGMENT_PORT),
    coordinatorUrl: url,
    token: encoderToken ?? '',
  });
  const worker = startEncoderWorker({
    coordinatorUrl: url,
    token: encoderToken,
    outputDir,
    concurrency: values.concurrency === undefined ? 1 : concurrency,
    ffmpegPath: ffmpeg,
    // Faster than the worker's default (veryfast), so that a laptop keeps ahead of the viewer.
    preset: process.env.ENCODER_PRESET ?? 'ultrafast',
    logger: logger.child(
      { component: 'encoder' },
      { level: process.env.ENCODER_LOG_LEVEL ?? config.logLevel },
    ),
  });
  worker.done.catch((error: Error) => say(`encoder stopped: ${error.message}`));

  const streamSessionId = `demo-${Date.now().toString(36)}`;
  await createStreamSession(admin, {
    id: streamSessionId,
    videoSourcePath: video.path,
    durationSeconds: video.durationSeconds,
    batchSize,
    threshold,
  });
  const front = await startWatchServer({
    serviceUrl: url.replace(/\/graphql$/, ''),
    segmentServerUrl: segmentServer.url,
    streamSessionId,
    issueToken: async (sessionId) =>
      config.authEnabled ? issuePlayerToken(admin, streamSessionId, sessionId) : undefined,
    dashboardToken: adminToken,
    port: config.port,
    host: '127.0.0.1',
  });

  const lines = [
    `demo: ${video.durationSeconds} s of test video (${video.path}), stream session ${streamSessionId}, batches of ${batchSize} segments, encoded by ffmpeg as viewers need them`,
    `open the demo (the player beside the dashboard; each page is a viewer): ${front.url}`,
    adminToken === undefined
      ? 'AUTH=off: no tokens'
      : `admin token (the page signs the dashboard in with it): ${adminToken}`,
    'stop with Ctrl-C',
  ];
  process.stdout.write(`\n${lines.join('\n')}\n\n`);

  let signalled = false;
  const shutdown = async (signal: string) => {
    if (signalled) process.exit(1);
    signalled = true;
    say(`${signal} received: stopping the demo`);
    setTimeout(() => process.exit(1), 9_000).unref();
    await front.close();
    await worker.close();
    await segmentServer.close();
    await app.stop();
    if (process.env.OUTPUT_DIR === undefined) await rm(outputDir, { recursive: true, force: true });
    say('demo stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}

/** The simulated demo: viewers and an encoder that only pretend, over the public API. */
async function simulatedDemo(): Promise<void> {
  let config: ReturnType<typeof loadConfig>;
  try {
    config = loadConfig({ BATCH_TIMEOUT: '20', ...process.env, STORE: 'memory' });
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message);
    throw error;
  }
  const logger = createLogger({ level: config.logLevel });
  const app = buildApp({ config, logger });
  const { url } = await app.start();
  const base = url.replace(/\/graphql$/, '');
  const adminToken = config.authEnabled
    ? (config.adminToken ?? app.generatedTokens.adminToken)
    : undefined;
  const encoderToken = config.authEnabled
    ? (config.encoderToken ?? app.generatedTokens.encoderToken)
    : undefined;
  const admin = { url, token: adminToken };
  const say = (line: string) => logger.info({ demo: true }, line);

  const encoder = startEncoder({
    url,
    token: encoderToken,
    batchMs: batchSeconds * 1_000,
    concurrency,
    dropRate,
    log: (line) => say(`encoder: ${line}`),
  });

  // Each stream session keeps about `viewers` players: one leaves, another joins.
  const players = new Set<Player>();
  let stopping = false;
  let nextViewer = 1;
  async function keepWatching(
    streamSessionId: string,
    segmentSeconds: number,
    lastSegment: number | null,
  ): Promise<void> {
    while (!stopping) {
      const sessionId = `viewer-${nextViewer++}`;
      const token = config.authEnabled
        ? await issuePlayerToken(admin, streamSessionId, sessionId)
        : undefined;
      const player = startPlayer({
        url,
        token,
        streamSessionId,
        sessionId,
        startSegment: Math.floor(Math.random() * 10),
        quality: QUALITIES[Math.floor(Math.random() * QUALITIES.length)],
        segmentSeconds,
        speed,
        leaveAfter: 20 + Math.floor(Math.random() * 80),
        lastSegment,
        seekChance: 0.02,
        qualityChance: 0.05,
        log: (line) => say(`${sessionId}: ${line}`),
      });
      players.add(player);
      await player.done;
      players.delete(player);
      // A pause before the next viewer comes, in video time.
      await sleep(((2 + Math.random() * 20) * 1_000) / speed);
    }
  }

  for (const [id, durationSeconds] of MOVIES.slice(0, sessions)) {
    const session = await createStreamSession(admin, {
      id,
      videoSourcePath: `/media/${id}.mkv`,
      durationSeconds,
    });
    for (let v = 0; v < viewers; v++) {
      // Not all at once: the first ones start the session, the others join over a while.
      setTimeout(
        () =>
          void keepWatching(session.id, session.segmentDuration, session.lastSegment).catch(
            () => {},
          ),
        v === 0 ? 0 : ((Math.random() * 30 * 1_000) / speed) | 0,
      ).unref();
    }
  }

  const lines = [
    `demo: ${sessions} stream sessions, about ${viewers} viewers each, one encoder (${concurrency} batches at once, ${batchSeconds} s per batch, drops ${Math.round(dropRate * 100)}%), video time x${speed}`,
    `open the dashboard: ${base}/dashboard`,
    adminToken === undefined
      ? 'AUTH=off: the dashboard needs no token'
      : `admin token (paste it into the dashboard): ${adminToken}`,
    `metrics: curl${adminToken === undefined ? '' : ` -H 'authorization: Bearer ${adminToken}'`} ${base}/metrics`,
    'stop with Ctrl-C',
  ];
  // Plain lines on stdout, once: the token is not for the structured log.
  process.stdout.write(`\n${lines.join('\n')}\n\n`);

  let signalled = false;
  const shutdown = async (signal: string) => {
    if (signalled) process.exit(1);
    signalled = true;
    stopping = true;
    say(`${signal} received: stopping the demo`);
    setTimeout(() => process.exit(1), 9_000).unref();
    await Promise.all([...players].map((player) => player.stop()));
    await encoder.stop();
    await app.stop();
    say('demo stopped');
    process.exit(0);
  };
  process.on('SIGINT', () => void shutdown('SIGINT'));
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
