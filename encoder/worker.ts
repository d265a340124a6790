/**
 * The encoder worker: listens on `batchNeeded` over one WebSocket
 * (graphql-ws), claims each need with `setCurrentBatch` (up to
 * `concurrency` at once, the others wait their turn), makes the batch with
 * ffmpeg (encoder/ffmpeg.ts), and reports it with `completeBatch` once every
 * segment of every rendition it was asked for is on disk.
 *
 * - While ffmpeg makes progress the claim is renewed (`renewBatchClaim`),
 *   so a slow encode is not announced STALLED; a silent ffmpeg is not
 *   renewed for, and stalls as a crashed one does. A renewal answered
 *   CONFLICT means the batch was taken back: its ffmpeg is stopped.
 * - A failed ffmpeg (bad source, missing file, nonzero exit, missing
 *   segments) is logged with its stderr and the batch is left unfinished:
 *   it stalls, and is announced again for any encoder to retry.
 * - `streamSessionEnded` stops the session's jobs and deletes its folder.
 * - Completed segments more than `releaseMargin` behind the session's
 *   slowest viewer are deleted and released (`releaseSegments`).
 * - The socket reconnects by itself; a new subscription replays every
 *   pending need, so nothing is lost.
 */
import { EventEmitter } from 'node:events';
import { rm } from 'node:fs/promises';
import { type Client, createClient } from 'graphql-ws';
import { type Logger, pino } from 'pino';
import WebSocket from 'ws';
import {
  asOperationError,
  type Document,
  OperationError,
  queryText,
  type ResultOf,
  sleep,
  type VariablesOf,
  wsRequest,
} from '../examples/graphql.js';
import {
  type EncodeOutcome,
  encodeBatch,
  type FfmpegProgress,
  ffprobePathFor,
  type RunningEncode,
  SourceHeights,
} from './ffmpeg.js';
import { renditionOf } from './ladder.js';
import {
  BatchNeededSubscription,
  ClaimBatch,
  CompleteBatch,
  type Need,
  ReleaseSegments,
  RenewBatchClaim,
  SessionProgress,
  StreamSessionEndedSubscription,
} from './operations.js';
import { renditionDir, segmentPath, sessionDir } from './paths.js';

export interface EncoderWorkerOptions {
  /** The service's GraphQL endpoint, http(s)://…/graphql; the WebSocket URL is derived from it. */
  readonly coordinatorUrl: string;
  /** The encoder (or admin) token; none with AUTH=off. */
  readonly token?: string;
  /** Segments go to outputDir/<session>/<rendition>/seg_<n>.ts (encoder/paths.ts). */
  readonly outputDir: string;
  /** Batches made at once, over all sessions (1 unless set); more wait their turn. */
  readonly concurrency?: number;
  /** `ffmpeg` (on the PATH) unless set. */
  readonly ffmpegPath?: string;
  /** FFPROBE_PATH, else next to ffmpegPath, else `ffprobe`. */
  readonly ffprobePath?: string;
  /** libx264 preset (`veryfast` unless set). */
  readonly preset?: string;
  /** Completed segments more than this many behind slowestSegment are released (10 unless set). */
  readonly releaseMargin?: number;
  /** How often a batch's claim is renewed while its ffmpeg progresses (10 s unless set). */
  readonly renewIntervalMs?: number;
  /** How often the sessions it worked for are checked for segments to release (15 s unless set). */
  readonly releaseIntervalMs?: number;
  /** Between SIGTERM and SIGKILL when an ffmpeg is stopped (3 s unless set). */
  readonly killGraceMs?: number;
  /** Longest wait between two reconnection attempts (5 s unless set). */
  readonly reconnectMaxMs?: number;
  /** Where it logs; silent unless set. */
  readonly logger?: Logger;
}

export interface EncoderWorkerStats {
  /** Batches claimed (setCurrentBatch succeeded). */
  claimed: number;
  completed: number;
  /** Batches whose ffmpeg failed (or left segments missing): not completed. */
  failed: number;
  /** Claims answered CONFLICT: another encoder has it, or the need was withdrawn. */
  conflicts: number;
  /** Claims renewed. */
  renewals: number;
  /** Batches taken back while being made (renewal CONFLICT or announced STALLED): stopped. */
  lost: number;
  /** Completed batches whose segments it deleted and released. */
  released: number;
  /** Session folders deleted on streamSessionEnded. */
  sessionsDeleted: number;
  /** ffmpeg processes running now, and the most ever at once. */
  running: number;
  maxRunning: number;
}

/** Which batch an event is about. */
export interface BatchRef {
  readonly streamSessionId: string;
  readonly batchNumber: number;
  readonly startSegment: number;
  readonly endSegment: number;
  readonly qualities: readonly string[];
}

export interface EncoderWorkerEvents {
  connected: [];
  claimed: [BatchRef];
  conflict: [BatchRef];
  /** ffmpeg started for a batch. */
  started: [BatchRef & { pid: number | undefined }];
  progress: [BatchRef & { progress: FfmpegProgress }];
  renewed: [BatchRef];
  /** The batch was taken back while being made; its ffmpeg was stopped. */
  lost: [BatchRef & { why: string }];
  completed: [BatchRef & { elapsedMs: number; speed: number }];
  failed: [BatchRef & { reason: string }];
  released: [BatchRef];
  sessionDeleted: [{ streamSessionId: string }];
}

export interface EncoderWorker {
  readonly stats: EncoderWorkerStats;
  readonly events: EventEmitter<EncoderWorkerEvents>;
  /** Rejects when the service refuses the token for good; resolves on close(). */
  readonly done: Promise<void>;
  /** Stops listening, stops every ffmpeg (SIGTERM, then SIGKILL) and closes the socket. */
  close(): Promise<void>;
}

/** Errors that trying again will not fix. */
const FINAL_CODES = new Set([
  'CONFLICT',
  'NOT_FOUND',
  'BAD_USER_INPUT',
  'FORBIDDEN',
  'UNAUTHENTICATED',
  'GRAPHQL_VALIDATION_FAILED',
]);
/** graphql-ws closes with 4403 when connection_init's token is refused. */
const FORBIDDEN_CLOSE = 4403;

interface Job {
  readonly key: string;
  readonly need: Need;
  readonly ref: BatchRef;
  readonly abort: AbortController;
  /** Why it was aborted, for the log. */
  why?: string;
  /** It has its turn (a concurrency slot): claiming or making. */
  active: boolean;
  claimed: boolean;
  encode?: RunningEncode;
  /** Settles when the job is over (its ffmpeg exited). */
  settled?: Promise<void>;
}

/** ws(s)://… for an http(s)://… endpoint. */
export function webSocketUrl(url: string): string {
  return url.replace(/^http/i, 'ws');
}

export function startEncoderWorker(options: EncoderWorkerOptions): EncoderWorker {
  const log = options.logger ?? pino({ level: 'silent' });
  const concurrency = Math.max(1, options.concurrency ?? 1);
  const ffmpegPath = options.ffmpegPath ?? 'ffmpeg';
  const heights = new SourceHeights(options.ffprobePath ?? ffprobePathFor(ffmpegPath));
  const releaseMargin = options.releaseMargin ?? 10;
  const renewIntervalMs = options.renewIntervalMs ?? 10_000;
  const killGraceMs = options.killGraceMs ?? 3_000;
  const reconnectMaxMs = options.reconnectMaxMs ?? 5_000;
  const events = new EventEmitter<EncoderWorkerEvents>();
  const stats: EncoderWorkerStats = {
    claimed: 0,
    completed: 0,
    failed: 0,
    conflicts: 0,
    renewals: 0,
    lost: 0,
    released: 0,
    sessionsDeleted: 0,
    running: 0,
    maxRunning: 0,
  };
  const stopping = new AbortController();
  let refused: ((error: Error) => void) | undefined;
  const done = new Promise<void>((resolve, reject) => {
    refused = reject;
    stopping.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  done.catch(() => {});

  const wsUrl = webSocketUrl(options.coordinatorUrl);
  const client: Client = createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    connectionParams: () => (options.token ? { authorization: `Bearer ${options.token}` } : {}),
    lazy: false,
    onNonLazyError: () => {},
    keepAlive: 10_000,
    retryAttempts: Number.POSITIVE_INFINITY,
    retryWait: async (retries) => {
      await sleep(
        Math.min(reconnectMaxMs, 250 * 2 ** retries) * (0.5 + Math.random() / 2),
        stopping.signal,
      );
    },
    shouldRetry: (event) => (event as { code?: number }).code !== FORBIDDEN_CLOSE,
    on: {
      connected: () => {
        log.info({ url: wsUrl }, 'connected to the coordinator');
        events.emit('connected');
      },
      closed: (event) => {
        if (stopping.signal.aborted) return;
        const code = (event as { code?: number }).code;
        if (code === FORBIDDEN_CLOSE) {
          log.fatal('the coordinator refused the encoder token (4403)');
          refused?.(new Error('the coordinator refused the encoder token (4403)'));
          void close();
        } else {
          log.warn({ code }, 'connection to the coordinator closed; reconnecting');
        }
      },
    },
  });

  /** Needs taken (queued or being made), by session and batch number. */
  const jobs = new Map<string, Job>();
  /** Sessions it has claimed batches of: checked for segments to release. */
  const sessions = new Set<string>();
  const slot = semaphore(concurrency);

  function request<D extends Document>(document: D, variables: VariablesOf<D>) {
    return retrying(() => wsRequest(client, document, variables));
  }

  function onNeed(need: Need): void {
    if (stopping.signal.aborted) return;
    // A number alone is not a need: the service gives a withdrawn need's number to the next
    // need of the session (another range), maybe while the withdrawn one waits here for its
    // turn or its claim. The range is part of the key (a need never changes once announced;
    // a STALLED one has its batch's number and range again, so it finds the job making it).
    const key = `${need.streamSession.id}#${need.batchNumber}#${need.startSegment}-${need.endSegment}`;
    const existing = jobs.get(key);
    if (existing !== undefined) {
      // Announced STALLED while we make it: the service gave up on our claim
      // (ffmpeg went silent, renewals failed). Stop ours and claim it afresh.
      if (need.reason === 'STALLED' && existing.claimed && !existing.abort.signal.aborted) {
        stats.lost++;
        const why = 'announced STALLED while being made';
        log.warn({ ...logRef(existing.ref), why }, 'batch taken back; stopping its ffmpeg');
        events.emit('lost', { ...existing.ref, why });
        abortJob(existing, why);
        void existing.settled?.then(() => onNeed(need));
      }
      // Otherwise the replay of a need we already hold (after a reconnect).
      return;
    }
    const job: Job = {
      key,
      need,
      ref: {
        streamSessionId: need.streamSession.id,
        batchNumber: need.batchNumber,
        startSegment: need.startSegment,
        endSegment: need.endSegment,
        qualities: need.qualities,
      },
      abort: new AbortController(),
      active: false,
      claimed: false,
    };
    jobs.set(key, job);
    job.settled = slot(() => work(job))
      .catch((error: unknown) => log.error({ err: error, ...logRef(job.ref) }, 'job failed'))
      .finally(() => {
        if (jobs.get(key) === job) jobs.delete(key);
      });
  }

  function abortJob(job: Job, why: string): void {
    if (job.abort.signal.aborted) return;
    job.why = why;
    job.abort.abort();
    void job.encode?.kill(killGraceMs);
  }

  async function work(job: Job): Promise<void> {
    if (job.abort.signal.aborted || stopping.signal.aborted) return;
    job.active = true;
    const { need, ref } = job;
    const id = ref.streamSessionId;
    const fields = logRef(ref);
    try {
      await request(ClaimBatch, {
        input: {
          streamSessionId: id,
          batchNumber: need.batchNumber,
          startSegment: need.startSegment,
          endSegment: need.endSegment,
          videoSourcePath: need.videoSourcePath,
          videoStartOffset: need.videoStartOffset,
          qualities: need.qualities,
        },
      });
    } catch (error) {
      if (isCode(error, 'CONFLICT') || isCode(error, 'NOT_FOUND')) {
        stats.conflicts++;
        log.debug(fields, 'need taken by another encoder or withdrawn');
        events.emit('conflict', ref);
      } else if (!stopping.signal.aborted) {
        log.error({ ...fields, err: error }, 'could not claim the batch');
      }
      return;
    }
    job.claimed = true;
    stats.claimed++;
    sessions.add(id);
    log.info({ ...fields, reason: need.reason, source: need.videoSourcePath }, 'batch claimed');
    events.emit('claimed', ref);
    if (job.abort.signal.aborted) return;

    let sourceHeight: number | null;
    try {
      sourceHeight = await heights.get(need.videoSourcePath);
    } catch (error) {
      fail(job, `cannot read the source ${need.videoSourcePath}: ${(error as Error).message}`);
      return;
    }
    if (job.abort.signal.aborted) return;

    const encode = await encodeBatch({
      ffmpegPath,
      sourcePath: need.videoSourcePath,
      sourceHeight,
      videoStartOffset: need.videoStartOffset,
      startSegment: need.startSegment,
      endSegment: need.endSegment,
      segmentDuration: need.segmentDuration,
      outputs: need.qualities.map((quality) => {
        const rendition = renditionOf(quality);
        return { rendition, dir: renditionDir(options.outputDir, id, rendition.name) };
      }),
      ...(options.preset ? { preset: options.preset } : {}),
      onProgress: (progress) => events.emit('progress', { ...ref, progress }),
    });
    job.encode = encode;
    stats.running++;
    stats.maxRunning = Math.max(stats.maxRunning, stats.running);
    log.info({ ...fields, pid: encode.pid, sourceHeight }, 'ffmpeg started');
    events.emit('started', { ...ref, pid: encode.pid });
    if (job.abort.signal.aborted) void encode.kill(killGraceMs);

    const renewing = keepRenewing(job, encode);
    let outcome: EncodeOutcome;
    try {
      outcome = await encode.done;
    } finally {
      clearInterval(renewing);
      stats.running--;
    }

    if (job.abort.signal.aborted) {
      log.info({ ...fields, why: job.why }, 'batch abandoned; its ffmpeg was stopped');
      return;
    }
    if (!outcome.ok) {
      fail(job, outcome.reason);
      return;
    }
    try {
      await request(CompleteBatch, { streamSessionId: id, batchNumber: need.batchNumber });
    } catch (error) {
      if (!stopping.signal.aborted) {
        log.warn({ ...fields, err: error }, 'made, but could not complete the batch');
      }
      return;
    }
    stats.completed++;
    const seconds = (need.endSegment - need.startSegment + 1) * need.segmentDuration;
    const made = Math.min(seconds, outcome.result.progress.outTimeUs / 1e6);
    const speed = made / Math.max(0.001, outcome.result.elapsedMs / 1000);
    log.info(
      { ...fields, elapsedMs: outcome.result.elapsedMs, speed: Number(speed.toFixed(2)) },
      'batch complete',
    );
    events.emit('completed', { ...ref, elapsedMs: outcome.result.elapsedMs, speed });
    void releaseBehind(id);
  }

  function fail(job: Job, reason: string): void {
    stats.failed++;
    log.error(
      { ...logRef(job.ref), source: job.need.videoSourcePath, reason },
      'batch failed: not completed (it will stall and be announced again)',
    );
    events.emit('failed', { ...job.ref, reason });
  }

  /**
   * Renews the claim every renewIntervalMs while ffmpeg's progress moved
   * since the last renewal; a silent ffmpeg is not renewed for, so it stalls.
   */
  function keepRenewing(job: Job, encode: RunningEncode): NodeJS.Timeout {
    let mark = progressMark(encode.progress());
    let inFlight = false;
    const timer = setInterval(() => {
      const now = progressMark(encode.progress());
      if (now === mark || inFlight || job.abort.signal.aborted) {
        if (now === mark && !job.abort.signal.aborted) {
          log.warn(logRef(job.ref), 'ffmpeg made no progress: claim not renewed');
        }
        return;
      }
      mark = now;
      inFlight = true;
      wsRequest(client, RenewBatchClaim, {
        streamSessionId: job.ref.streamSessionId,
        batchNumber: job.ref.batchNumber,
      })
        .then(() => {
          stats.renewals++;
          log.debug(logRef(job.ref), 'claim renewed');
          events.emit('renewed', job.ref);
        })
        .catch((error: unknown) => {
          if (job.abort.signal.aborted || stopping.signal.aborted) return;
          if (isCode(error, 'CONFLICT') || isCode(error, 'NOT_FOUND')) {
            stats.lost++;
            const why = `renewal refused: ${(error as Error).message}`;
            log.warn({ ...logRef(job.ref), why }, 'batch taken back; stopping its ffmpeg');
            events.emit('lost', { ...job.ref, why });
            abortJob(job, why);
          } else {
            // A cut socket: the next tick tries again (the progress mark is kept moving).
            log.warn({ ...logRef(job.ref), err: error }, 'could not renew the claim');
          }
        })
        .finally(() => {
          inFlight = false;
        });
    }, renewIntervalMs);
    timer.unref();
    return timer;
  }

  async function onEnded(streamSessionId: string, reason: string): Promise<void> {
    const ending = [...jobs.values()].filter((j) => j.ref.streamSessionId === streamSessionId);
    for (const job of ending) abortJob(job, `the session ended (${reason})`);
    // Those waiting for their turn will do nothing when it comes; wait for those at work.
    await Promise.all(ending.filter((j) => j.active).map((j) => j.settled));
    sessions.delete(streamSessionId);
    const dir = sessionDir(options.outputDir, streamSessionId);
    try {
      await rm(dir, { recursive: true, force: true });
      stats.sessionsDeleted++;
      log.info({ streamSessionId, reason, dir }, 'session ended: its segments are deleted');
      events.emit('sessionDeleted', { streamSessionId });
    } catch (error) {
      log.error({ streamSessionId, dir, err: error }, 'could not delete an ended session');
    }
  }

  /** Sessions whose segments are being released now (one pass each at a time). */
  const releasing = new Set<string>();

  /**
   * Deletes the segments of a session's completed batches that lie more
   * than releaseMargin behind its slowest viewer, and says so with
   * releaseSegments. Storage is shared by every encoder: any may release,
   * and the second one to release a batch is told false.
   */
  async function releaseBehind(id: string): Promise<void> {
    if (releasing.has(id) || stopping.signal.aborted) return;
    releasing.add(id);
    try {
      const { streamSession } = await request(SessionProgress, { id });
      if (streamSession === null) {
        // It ended while we were not listening (a reconnect): its files go now.
        await onEnded(id, 'GONE');
        return;
      }
      const slowest = streamSession.slowestSegment;
      if (slowest == null) return;
      for (const b of streamSession.batches) {
        if (!b.isComplete || b.endSegment >= slowest - releaseMargin) continue;
        const names = b.qualities.map((q) => renditionOf(q).name);
        for (const name of names) {
          for (let n = b.startSegment; n <= b.endSegment; n++) {
            await rm(segmentPath(options.outputDir, id, name, n), { force: true });
          }
        }
        const { releaseSegments } = await request(ReleaseSegments, {
          streamSessionId: id,
          startSegment: b.startSegment,
          endSegment: b.endSegment,
          qualities: b.qualities,
        });
        const ref: BatchRef = {
          streamSessionId: id,
          batchNumber: b.batchNumber,
          startSegment: b.startSegment,
          endSegment: b.endSegment,
          qualities: b.qualities,
        };
        if (releaseSegments) {
          stats.released++;
          log.info({ ...logRef(ref), slowestSegment: slowest }, 'segments released');
          events.emit('released', ref);
        }
      }
    } catch (error) {
      if (!stopping.signal.aborted) {
        log.warn({ streamSessionId: id, err: error }, 'could not release segments');
      }
    } finally {
      releasing.delete(id);
    }
  }

  const releaseTimer = setInterval(() => {
    for (const id of sessions) void releaseBehind(id);
  }, options.releaseIntervalMs ?? 15_000);
  releaseTimer.unref();

  /** Tries an operation again (socket cut, store away) until it answers, unless stopping. */
  async function retrying<T>(run: () => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await run();
      } catch (error) {
        const final = error instanceof OperationError && FINAL_CODES.has(error.code ?? '');
        if (final || attempt >= 5 || stopping.signal.aborted) throw error;
        await sleep(Math.min(5_000, 200 * 2 ** attempt), stopping.signal);
      }
    }
  }

  /**
   * Subscribes, and again whenever the subscription ends without us asking
   * (a server restart completes it): a new batchNeeded subscription replays
   * every pending need first.
   */
  async function listen<D extends Document>(
    name: string,
    document: D,
    onData: (data: ResultOf<D>) => void,
  ): Promise<void> {
    for (let attempt = 0; !stopping.signal.aborted; attempt++) {
      let unsubscribe = () => {};
      const ended = await new Promise<Error | null>((resolve) => {
        unsubscribe = client.subscribe<ResultOf<D>>(
          { query: queryText(document) },
          {
            next: (value) => {
              attempt = 0;
              if (value.data) onData(value.data);
            },
            error: (error) => resolve(asOperationError(error)),
            complete: () => resolve(null),
          },
        );
        stopping.signal.addEventListener('abort', () => resolve(null), { once: true });
      });
      unsubscribe();
      if (stopping.signal.aborted) return;
      if (isCode(ended, 'FORBIDDEN') || isCode(ended, 'UNAUTHENTICATED')) {
        log.fatal({ err: ended }, `${name}: the coordinator refused the token`);
        refused?.(ended as Error);
        void close();
        return;
      }
      log.warn(
        { why: ended?.message ?? 'completed' },
        `${name} subscription ended; subscribing again`,
      );
      await sleep(Math.min(reconnectMaxMs, 250 * 2 ** attempt), stopping.signal);
    }
  }

  void listen('batchNeeded', BatchNeededSubscription, (data) => onNeed(data.batchNeeded));
  void listen('streamSessionEnded', StreamSessionEndedSubscription, (data) => {
    void onEnded(data.streamSessionEnded.id, data.streamSessionEnded.reason);
  });

  let closing: Promise<void> | undefined;
  function close(): Promise<void> {
    closing ??= (async () => {
      stopping.abort();
      clearInterval(releaseTimer);
      const all = [...jobs.values()];
      for (const job of all) abortJob(job, 'the worker is stopping');
      await Promise.all(all.map((j) => j.settled));
      try {
        await client.dispose();
      } catch {
        // Rejects with the close event when the last connection attempt failed: closed anyway.
      }
      log.info({ stats }, 'encoder worker stopped');
    })();
    return closing;
  }

  return { stats, events, done, close };
}

function logRef(ref: BatchRef) {
  return {
    streamSessionId: ref.streamSessionId,
    batchNumber: ref.batchNumber,
    segments: `${ref.startSegment}-${ref.endSegment}`,
    qualities: ref.qualities,
  };
}

function progressMark(progress: FfmpegProgress): string {
  return `${progress.outTimeUs}/${progress.frame}`;
}

function isCode(error: unknown, code: string): boolean {
  return error instanceof OperationError && error.code === code;
}

/** Runs at most `size` jobs at once; the others wait their turn, in order. */
function semaphore(size: number) {
  let free = Math.max(1, size);
  const turns: Array<() => void> = [];
  return async <T>(job: () => Promise<T>): Promise<T> => {
    if (free > 0) free--;
    else await new Promise<void>((resolve) => turns.push(resolve));
    try {
      return await job();
    } finally {
      const next = turns.shift();
      if (next === undefined) free++;
      else next();
    }
  };
}
