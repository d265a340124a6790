/**
 * `npm run encoder`: the encoder worker and the segment server in one
 * process, configured from the environment (see docs/pipeline-interfaces.md).
 *
 *   COORDINATOR_URL=http://127.0.0.1:4000/graphql ENCODER_TOKEN=… npm run encoder
 *
 * SIGTERM or SIGINT stops every ffmpeg it runs (SIGTERM, then SIGKILL after a
 * short grace), closes the segment server and exits 0.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { type Logger, pino } from 'pino';
import { type EncoderEnv, readEnv, renewIntervalMs } from './config.js';
import { killAllNow } from './ffmpeg.js';
import { type SegmentServer, startSegmentServer } from './segment-server.js';
import { startEncoderWorker } from './worker.js';

function createLogger(level: EncoderEnv['LOG_LEVEL']): Logger {
  const options = { level, name: 'hls-encoder' };
  if (!process.stdout.isTTY) return pino(options, pino.destination({ fd: 1, sync: true }));
  return pino({
    ...options,
    transport: {
      target: 'pino-pretty',
      options: { colorize: true, translateTime: 'SYS:HH:MM:ss.l', ignore: 'pid,hostname,name' },
    },
  });
}

/** Resolves when `ffmpeg -version` runs; rejects with a message naming FFMPEG_PATH otherwise. */
function checkFfmpeg(ffmpegPath: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(ffmpegPath, ['-hide_banner', '-version'], { stdio: 'ignore' });
    child.on('error', (error) =>
      reject(new Error(`FFMPEG_PATH: cannot run ${ffmpegPath}: ${error.message}`)),
    );
    child.on('close', (code) =>
      code === 0
        ? resolve()
        : reject(new Error(`FFMPEG_PATH: ${ffmpegPath} -version exited with code ${code}`)),
    );
  });
}

async function main(): Promise<void> {
  const env = readEnv();
  const log = createLogger(env.LOG_LEVEL);
  // However this process ends, no ffmpeg of it runs on (they are in process groups of their own).
  process.on('exit', killAllNow);
  process.on('uncaughtException', (error) => {
    log.fatal({ err: error }, 'uncaught exception: exiting');
    process.exit(1);
  });
  const outputDir = path.resolve(env.OUTPUT_DIR);
  await checkFfmpeg(env.FFMPEG_PATH);

  const worker = startEncoderWorker({
    coordinatorUrl: env.COORDINATOR_URL,
    ...(env.ENCODER_TOKEN ? { token: env.ENCODER_TOKEN } : {}),
    outputDir,
    concurrency: env.ENCODER_CONCURRENCY,
    ffmpegPath: env.FFMPEG_PATH,
    ...(env.FFPROBE_PATH ? { ffprobePath: env.FFPROBE_PATH } : {}),
    preset: env.ENCODER_PRESET,
    releaseMargin: env.RELEASE_MARGIN,
    renewIntervalMs: renewIntervalMs(env),
    logger: log,
  });

  let server: SegmentServer | undefined;
  if (env.SEGMENT_SERVER === 'on') {
    try {
      server = await startSegmentServer({
        outputDir,
        port: env.SEGMENT_PORT,
        host: env.SEGMENT_HOST,
        coordinatorUrl: env.COORDINATOR_URL,
        token: env.ENCODER_TOKEN ?? '',
        holdSeconds: env.SEGMENT_HOLD_SECONDS,
        onError: (error) => log.warn({ err: error }, 'segment server'),
      });
      // An ended session's id may be used again, for another video: its length is asked anew.
      worker.events.on('sessionDeleted', ({ streamSessionId }) => server?.forget(streamSessionId));
    } catch (error) {
      await worker.close();
      throw error;
    }
  }
  log.info(
    {
      segmentServer: server?.url ?? null,
      outputDir,
      coordinator: env.COORDINATOR_URL,
      concurrency: env.ENCODER_CONCURRENCY,
    },
    `encoder started: segments at ${server ? `${server.url}/sessions/<id>/master.m3u8` : '(segment server off)'}, files in ${outputDir}`,
  );

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'stopping: ffmpeg children first');
    await Promise.allSettled([worker.close(), server?.close()]);
    process.exit(0);
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => void stop(signal));
  }
  try {
    await worker.done;
  } catch (error) {
    log.fatal({ err: error }, 'the encoder gives up');
    await server?.close();
    process.exit(1);
  }
}

main().catch((error: unknown) => {
  console.error(`[encoder] ${(error as Error).message}`);
  process.exit(1);
});
