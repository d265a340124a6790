/**
 * An example encoder worker. It listens on `batchNeeded` over one
 * WebSocket (graphql-ws), claims each batch it is told about with
 * `setCurrentBatch`, "transcodes" it (waits: this example runs no ffmpeg),
 * reports it with `completeBatch`, then deletes the segments nobody will
 * watch any more and says so with `releaseSegments`. Copy it and put your
 * transcoder where it waits.
 *
 *   COORDINATOR_URL=http://127.0.0.1:4000/graphql ENCODER_TOKEN=… \
 *     npx tsx examples/encoder.ts --batch-seconds 5 --concurrency 2
 *
 * What the contract promises, and how this worker uses it:
 * - A new subscription first receives every need pending now, so after a
 *   reconnect it simply subscribes again and misses nothing.
 * - Several needs, of one session or of several, may be pending at once
 *   (two viewers far apart, a seek while a batch is being made): it works
 *   on up to `concurrency` of them at once, and the others wait their turn.
 * - The need's batchNumber is what setCurrentBatch takes, with the need's
 *   range and renditions. Several encoders may race for one need: one wins,
 *   the others get CONFLICT and move on. A need nobody needs any more (its
 *   viewer left or moved) is withdrawn: claiming it is CONFLICT too.
 * - A claimed batch not completed within the server's BATCH_TIMEOUT is
 *   announced again as STALLED, and any encoder may re-claim it with the
 *   same number (`--drop-rate` makes this worker "crash" on some batches,
 *   to see that happen).
 * - completeBatch is idempotent.
 * - Segments of completed batches wholly behind `slowestSegment` are
 *   watched by nobody: once they are `releaseMargin` segments behind it,
 *   it deletes them and calls releaseSegments, so that a viewer who later
 *   seeks back there makes a need (SEEK_BACK) instead of waiting for
 *   segments that are gone.
 */
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { type Client, createClient } from 'graphql-ws';
import WebSocket from 'ws';
import {
  asOperationError,
  graphql,
  OperationError,
  queryText,
  type ResultOf,
  sleep,
  wsRequest,
} from './graphql.js';

export const BatchNeededSubscription = graphql(`
  subscription BatchNeeded {
    batchNeeded {
      streamSession {
        id
        batchSize
      }
      reason
      batchNumber
      startSegment
      endSegment
      videoSourcePath
      videoStartOffset
      segmentDuration
      qualities
      isLastBatch
    }
  }
`);

export type Need = ResultOf<typeof BatchNeededSubscription>['batchNeeded'];

export const ClaimBatch = graphql(`
  mutation ClaimBatch($input: SetCurrentBatchInput!) {
    setCurrentBatch(input: $input) {
      batchNumber
      generationStarted
    }
  }
`);

export const CompleteBatch = graphql(`
  mutation CompleteBatch($streamSessionId: ID!, $batchNumber: Int!) {
    completeBatch(streamSessionId: $streamSessionId, batchNumber: $batchNumber) {
      batchNumber
      isComplete
      generationEnded
    }
  }
`);

/** What is made of a session, and where its slowest viewer is: what may be deleted. */
export const SessionProgress = graphql(`
  query SessionProgress($id: ID!) {
    streamSession(id: $id) {
      slowestSegment
      batches {
        batchNumber
        startSegment
        endSegment
        isComplete
        qualities
      }
    }
  }
`);

export const ReleaseSegments = graphql(`
  mutation ReleaseSegments(
    $streamSessionId: ID!
    $startSegment: Int!
    $endSegment: Int!
    $qualities: [Quality!]
  ) {
    releaseSegments(
      streamSessionId: $streamSessionId
      startSegment: $startSegment
      endSegment: $endSegment
      qualities: $qualities
    )
  }
`);

export interface EncoderOptions {
  /** The GraphQL endpoint, http(s)://…/graphql (the WebSocket URL is derived from it). */
  readonly url: string;
  /** The encoder (or admin) token; none with AUTH=off. */
  readonly token?: string;
  /**
   * How long a full batch (the session's batchSize segments) takes to
   * "transcode", in milliseconds; a batch cut short takes its share.
   */
  readonly batchMs: number;
  /** Batches worked on at once (over all sessions); more wait their turn. 2 unless set. */
  readonly concurrency?: number;
  /**
   * Segments kept behind the slowest viewer, for a short seek back: a
   * completed batch is released once its end is more than this behind
   * `slowestSegment`. 10 unless set.
   */
  readonly releaseMargin?: number;
  /** The share of claimed batches it abandons, as a crash would (0 to 1). */
  readonly dropRate?: number;
  /** Where it says what it does; console.log unless set. */
  readonly log?: (line: string) => void;
  /** 0 to 1; Math.random unless set (tests pass a seeded one). */
  readonly random?: () => number;
}

export interface EncoderStats {
  claimed: number;
  completed: number;
  /** Claims another encoder won (or that came too late). */
  conflicts: number;
  /** Batches abandoned on purpose (dropRate). */
  dropped: number;
  /** Completed batches whose segments it deleted (releaseSegments). */
  released: number;
}

export interface Encoder {
  readonly stats: EncoderStats;
  /** Rejects when the worker gives up (its token is refused). */
  readonly done: Promise<void>;
  /** Stops listening, abandons the batches in progress and closes the socket. */
  stop(): Promise<void>;
}

/** Errors that trying again will not fix. */
const FINAL_CODES = new Set([
  'CONFLICT',
  'NOT_FOUND',
  'BAD_USER_INPUT',
  'FORBIDDEN',
  'UNAUTHENTICATED',
]);
/** graphql-ws closes with 4403 when connection_init's token is refused. */
const FORBIDDEN_CLOSE = 4403;

/** Starts an encoder worker; it runs until stop() (or until its token is refused). */
export function startEncoder(options: EncoderOptions): Encoder {
  const log = options.log ?? ((line: string) => console.log(`[encoder] ${line}`));
  const random = options.random ?? Math.random;
  const releaseMargin = options.releaseMargin ?? 10;
  const stats: EncoderStats = { claimed: 0, completed: 0, conflicts: 0, dropped: 0, released: 0 };
  const stopping = new AbortController();
  let refused: ((error: Error) => void) | undefined;
  const done = new Promise<void>((resolve, reject) => {
    refused = reject;
    stopping.signal.addEventListener('abort', () => resolve(), { once: true });
  });
  // Marked handled: a caller that never awaits `done` must not crash the process.
  done.catch(() => {});

  const client: Client = createClient({
    url: webSocketUrl(options.url),
    webSocketImpl: WebSocket,
    connectionParams: () => (options.token ? { authorization: `Bearer ${options.token}` } : {}),
    lazy: false,
    // A connection that cannot be retried is reported by `closed` below.
    onNonLazyError: () => {},
    keepAlive: 10_000,
    retryAttempts: Number.POSITIVE_INFINITY,
    // Back off up to 5 s between attempts, with jitter so workers do not reconnect in step.
    retryWait: async (retries) => {
      await sleep(Math.min(5_000, 250 * 2 ** retries) * (0.5 + random()));
    },
    // A refused token stays refused; everything else (a restart, a network cut) passes.
    shouldRetry: (event) => (event as { code?: number }).code !== FORBIDDEN_CLOSE,
    on: {
      connected: () => log(`connected to ${webSocketUrl(options.url)}`),
      closed: (event) => {
        const code = (event as { code?: number }).code;
        if (stopping.signal.aborted) return;
        if (code === FORBIDDEN_CLOSE) {
          refused?.(new Error('the server refused the encoder token (4403)'));
          void stop();
        } else {
          log(`connection closed (${code ?? 'no code'}); reconnecting`);
        }
      },
    },
  });

  // Needs taken (waiting for a slot or in progress), by stream session and batch.
  const taken = new Set<string>();
  const slot = semaphore(options.concurrency ?? 2);
  // Sessions whose old segments are being released now.
  const releasing = new Set<string>();

  function onNeed(need: Need): void {
    // A need is its number and its range: a withdrawn need's number may be
    // announced again for another range, which is another need to make.
    const key = `${need.streamSession.id}#${need.batchNumber}#${need.startSegment}-${need.endSegment}`;
    // Had already: a STALLED re-announcement of our own batch (we are slower
    // than BATCH_TIMEOUT), or the replay after a reconnect of one still waiting.
    if (taken.has(key)) return;
    taken.add(key);
    void slot(() => work(need)).finally(() => taken.delete(key));
  }

  async function work(need: Need): Promise<void> {
    if (stopping.signal.aborted) return;
    const id = need.streamSession.id;
    const batch = `batch ${need.batchNumber} of ${id} (segments ${need.startSegment}-${need.endSegment}${need.isLastBatch ? ', the last' : ''}, ${need.reason})`;
    try {
      await retrying(() =>
        wsRequest(client, ClaimBatch, {
          input: {
            streamSessionId: id,
            batchNumber: need.batchNumber,
            startSegment: need.startSegment,
            endSegment: need.endSegment,
            videoSourcePath: need.videoSourcePath,
            videoStartOffset: need.videoStartOffset,
            qualities: need.qualities,
          },
        }),
      );
    } catch (error) {
      if (isCode(error, 'CONFLICT')) {
        stats.conflicts++;
        log(`${batch}: claimed by another encoder, or no longer due`);
      } else if (!stopping.signal.aborted) {
        log(`${batch}: could not claim it: ${(error as Error).message}`);
      }
      return;
    }
    stats.claimed++;
    if (random() < (options.dropRate ?? 0)) {
      stats.dropped++;
      log(`${batch}: claimed, then abandoned (a simulated crash: it will be announced STALLED)`);
      return;
    }
    const segments = need.endSegment - need.startSegment + 1;
    log(
      `${batch}: claimed; transcoding ${segments * need.segmentDuration} s from ${need.videoStartOffset} s in ${need.qualities.join(', ')}`,
    );
    // Your transcoder goes here: e.g. ffmpeg -ss <videoStartOffset> -i <videoSourcePath>
    // -t <segments × segmentDuration>, one HLS output per quality with -hls_time
    // <segmentDuration> and -start_number <startSegment>.
    const ms = (options.batchMs * segments) / need.streamSession.batchSize;
    if (!(await sleep(ms, stopping.signal))) return;
    try {
      await retrying(() =>
        wsRequest(client, CompleteBatch, { streamSessionId: id, batchNumber: need.batchNumber }),
      );
      stats.completed++;
      log(`${batch}: complete`);
    } catch (error) {
      // NOT_FOUND: the session ended; CONFLICT: the batch is no longer the session's.
      if (!stopping.signal.aborted) log(`${batch}: not completed: ${(error as Error).message}`);
      return;
    }
    await releaseBehind(id);
  }

  /**
   * Deletes the segments of the session's completed batches that lie more
   * than releaseMargin behind its slowest viewer, and tells the service.
   * The segments are in storage every encoder shares, so any encoder may:
   * when two release one batch, the second is told false.
   */
  async function releaseBehind(id: string): Promise<void> {
    // One pass per session at a time: a second one now would find the same batches.
    if (releasing.has(id)) return;
    releasing.add(id);
    try {
      const { streamSession } = await retrying(() => wsRequest(client, SessionProgress, { id }));
      const slowest = streamSession?.slowestSegment;
      // No viewer (they all left): the session will end, and its segments go then.
      if (slowest == null) return;
      for (const b of streamSession?.batches ?? []) {
        if (!b.isComplete || b.endSegment >= slowest - releaseMargin) continue;
        // Delete segments startSegment..endSegment of b.qualities from your storage here.
        const { releaseSegments } = await retrying(() =>
          wsRequest(client, ReleaseSegments, {
            streamSessionId: id,
            startSegment: b.startSegment,
            endSegment: b.endSegment,
            qualities: b.qualities,
          }),
        );
        if (releaseSegments) {
          stats.released++;
          log(
            `batch ${b.batchNumber} of ${id}: segments ${b.startSegment}-${b.endSegment} released (the slowest viewer is at ${slowest})`,
          );
        }
      }
    } catch (error) {
      // Kept for now: the next batch completed in this session tries again.
      if (!stopping.signal.aborted) {
        log(`${id}: could not release segments: ${(error as Error).message}`);
      }
    } finally {
      releasing.delete(id);
    }
  }

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
   * Subscribes, and subscribes again whenever the subscription ends without
   * us asking (a server restart completes it; RATE_LIMITED ends a reader too
   * slow): the new subscription replays every pending need first.
   */
  async function listen(): Promise<void> {
    for (let attempt = 0; !stopping.signal.aborted; attempt++) {
      let unsubscribe = () => {};
      const ended = await new Promise<Error | null>((resolve) => {
        unsubscribe = client.subscribe<ResultOf<typeof BatchNeededSubscription>>(
          { query: queryText(BatchNeededSubscription) },
          {
            next: (value) => {
              if (value.data) onNeed(value.data.batchNeeded);
              attempt = 0;
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
        refused?.(ended as Error);
        return void stop();
      }
      log(`subscription ended (${ended?.message ?? 'completed'}); subscribing again`);
      await sleep(Math.min(5_000, 250 * 2 ** attempt), stopping.signal);
    }
  }

  void listen();

  let stopped: Promise<void> | undefined;
  function stop(): Promise<void> {
    stopped ??= (async () => {
      stopping.abort();
      try {
        await client.dispose();
      } catch {
        // It rejects with the close event when the last connection attempt failed: closed anyway.
      }
    })();
    return stopped;
  }

  return { stats, done, stop };
}

/**
 * Runs at most `size` jobs at once; the others wait their turn, in order.
 * (A semaphore: about what p-limit does, without the dependency.)
 */
function semaphore(size: number) {
  let free = Math.max(1, size);
  const turns: Array<() => void> = [];
  return async <T>(job: () => Promise<T>): Promise<T> => {
    if (free > 0) free--;
    else await new Promise<void>((resolve) => turns.push(resolve));
    try {
      return await job();
    } finally {
      // Hand the slot to the next job waiting, or give it back.
      const next = turns.shift();
      if (next === undefined) free++;
      else next();
    }
  };
}

function isCode(error: unknown, code: string): boolean {
  return error instanceof OperationError && error.code === code;
}

/** ws(s)://… for an http(s)://… endpoint. */
export function webSocketUrl(url: string): string {
  return url.replace(/^http/, 'ws');
}

/** Run as a program: options from the command line, else the environment. */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string', default: process.env.COORDINATOR_URL },
      token: { type: 'string', default: process.env.ENCODER_TOKEN },
      'batch-seconds': { type: 'string', default: process.env.BATCH_SECONDS ?? '5' },
      concurrency: { type: 'string', default: process.env.ENCODER_CONCURRENCY ?? '2' },
      'release-margin': { type: 'string', default: process.env.RELEASE_MARGIN ?? '10' },
      'drop-rate': { type: 'string', default: '0' },
    },
  });
  const concurrency = Number(values.concurrency);
  if (!(Number.isInteger(concurrency) && concurrency > 0)) {
    throw new Error('--concurrency (or ENCODER_CONCURRENCY) must be a whole number above 0');
  }
  const encoder = startEncoder({
    url: values.url ?? 'http://127.0.0.1:4000/graphql',
    token: values.token,
    batchMs: Number(values['batch-seconds']) * 1_000,
    concurrency,
    releaseMargin: Number(values['release-margin']),
    dropRate: Number(values['drop-rate']),
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void encoder.stop());
  }
  await encoder.done;
  console.log(`[encoder] stopped: ${JSON.stringify(encoder.stats)}`);
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error) => {
    console.error(`[encoder] ${(error as Error).message}`);
    process.exit(1);
  });
}
