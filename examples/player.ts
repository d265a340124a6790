/**
 * An example player, as a web page's script would report where it is: one
 * `updateClientPosition` over HTTP (fetch) per segment played, and
 * `removeClient` when it leaves. It simulates playback: one segment every
 * `segmentSeconds` of video time (sped up by `speed`), with now and then a
 * quality switch or a seek, and leaves after `leaveAfter` segments, or at
 * the video's end when it knows where that is (`lastSegment`).
 *
 *   COORDINATOR_URL=http://127.0.0.1:4000/graphql PLAYER_TOKEN=… \
 *     npx tsx examples/player.ts --stream-session movie-42 --session viewer-1 --speed 4
 *
 * Its token is a player token your backend got from `issueClientToken`
 * (see examples/backend.ts), bound to this stream session and session id.
 *
 * What it does with errors: RATE_LIMITED and failures to reach the server
 * are retried at the next report (positions are idempotent: the latest
 * wins); NOT_FOUND means the stream session ended, and UNAUTHENTICATED or
 * FORBIDDEN that the token expired or is for another session: it stops.
 */
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { graphql, httpRequest, OperationError, sleep, type VariablesOf } from './graphql.js';

export const ReportPosition = graphql(`
  mutation ReportPosition($input: UpdateClientPositionInput!) {
    updateClientPosition(input: $input) {
      sessionId
      segmentNumber
      quality
    }
  }
`);

export const Leave = graphql(`
  mutation Leave($streamSessionId: ID!, $sessionId: ID!) {
    removeClient(streamSessionId: $streamSessionId, sessionId: $sessionId)
  }
`);

export type Quality = VariablesOf<typeof ReportPosition>['input']['quality'];
export const QUALITIES: readonly Quality[] = ['Q1080P', 'Q720P', 'Q480P'];

export interface PlayerOptions {
  /** The GraphQL endpoint, http(s)://…/graphql. */
  readonly url: string;
  /** Its player token (an admin token works too; none with AUTH=off). */
  readonly token?: string;
  readonly streamSessionId: string;
  /** This player's id within the stream session. */
  readonly sessionId: string;
  readonly startSegment?: number;
  readonly quality?: Quality;
  /** Seconds of video per segment (the stream session's segmentDuration). */
  readonly segmentSeconds?: number;
  /** Video seconds per real second: 1 plays in real time. */
  readonly speed?: number;
  /** Segments it plays before it leaves; it plays on until stopped when unset. */
  readonly leaveAfter?: number;
  /**
   * The video's last segment (the stream session's lastSegment), when known:
   * it seeks no further, and leaves once it has played it. (A position past
   * it is BAD_USER_INPUT.)
   */
  readonly lastSegment?: number | null;
  /** Chance, per segment, that it jumps (ahead mostly, sometimes back). */
  readonly seekChance?: number;
  /** Chance, per segment, that it switches quality (as adaptive bitrate does). */
  readonly qualityChance?: number;
  /** Where it says what it does (joins, seeks, switches, leaves, errors). */
  readonly log?: (line: string) => void;
  /** 0 to 1; Math.random unless set. */
  readonly random?: () => number;
}

/** Why a player stopped. */
export type PlayerEnd = 'left' | 'stopped' | 'session ended' | 'token refused';

export interface Player {
  /** The segment it is at now. */
  readonly segment: number;
  /** Resolves with why it stopped. */
  readonly done: Promise<PlayerEnd>;
  /** Leaves (removeClient) and stops. */
  stop(): Promise<PlayerEnd>;
}

/** Starts playing; it reports its position at once, then once per segment. */
export function startPlayer(options: PlayerOptions): Player {
  const log = options.log ?? ((line: string) => console.log(`[${options.sessionId}] ${line}`));
  const random = options.random ?? Math.random;
  const segmentMs = ((options.segmentSeconds ?? 6) * 1_000) / (options.speed ?? 1);
  const stopping = new AbortController();
  const input = {
    streamSessionId: options.streamSessionId,
    sessionId: options.sessionId,
    segmentNumber: options.startSegment ?? 0,
    quality: options.quality ?? 'Q720P',
  } satisfies VariablesOf<typeof ReportPosition>['input'];

  /** Reports where it is; says whether to go on playing. */
  async function report(): Promise<PlayerEnd | null> {
    try {
      await httpRequest(options.url, options.token, ReportPosition, { input }, stopping.signal);
      return null;
    } catch (error) {
      return ending(error, 'report');
    }
  }

  function ending(error: unknown, what: string): PlayerEnd | null {
    if (stopping.signal.aborted) return 'stopped';
    const code = error instanceof OperationError ? error.code : undefined;
    if (code === 'NOT_FOUND') return 'session ended';
    if (code === 'UNAUTHENTICATED' || code === 'FORBIDDEN') {
      log(`${what} refused (${code}): ${(error as Error).message}`);
      return 'token refused';
    }
    // RATE_LIMITED, a restart, a network cut: the next report carries the latest position.
    log(`${what} failed, will try again: ${(error as Error).message}`);
    return null;
  }

  async function leave(): Promise<void> {
    try {
      await httpRequest(options.url, options.token, Leave, {
        streamSessionId: input.streamSessionId,
        sessionId: input.sessionId,
      });
    } catch (error) {
      // Gone already (the session ended); or the server is away: it expires us by itself.
      log(`leaving failed: ${(error as Error).message}`);
    }
  }

  async function play(): Promise<PlayerEnd> {
    log(`joins ${input.streamSessionId} at segment ${input.segmentNumber} (${input.quality})`);
    for (let played = 0; ; played++) {
      const end = await report();
      if (end !== null) return end;
      const atEnd = options.lastSegment != null && input.segmentNumber >= options.lastSegment;
      if (atEnd || (options.leaveAfter !== undefined && played >= options.leaveAfter)) {
        await leave();
        log(`leaves at segment ${input.segmentNumber}${atEnd ? ', the end of the video' : ''}`);
        return 'left';
      }
      if (!(await sleep(segmentMs, stopping.signal))) return 'stopped';
      input.segmentNumber = next(input.segmentNumber);
    }
  }

  function next(segment: number): number {
    if (random() < (options.qualityChance ?? 0)) {
      const others = QUALITIES.filter((q) => q !== input.quality);
      input.quality = others[Math.floor(random() * others.length)] ?? input.quality;
      log(`switches to ${input.quality}`);
    }
    if (random() < (options.seekChance ?? 0)) {
      // Mostly forward, past what is generated (SEEK_AHEAD); sometimes back
      // (SEEK_BACK when it lands in a gap, or on segments released since).
      const jump = random() < 0.75 ? 10 + Math.floor(random() * 50) : -Math.floor(random() * 20);
      const target = Math.min(
        options.lastSegment ?? Number.POSITIVE_INFINITY,
        Math.max(0, segment + jump),
      );
      log(`seeks from segment ${segment} to ${target}`);
      return target;
    }
    return segment + 1;
  }

  const done = play();
  return {
    get segment() {
      return input.segmentNumber;
    },
    done,
    async stop() {
      if (!stopping.signal.aborted) {
        stopping.abort();
        const end = await done;
        if (end === 'stopped') await leave();
      }
      return done;
    },
  };
}

/** Run as a program: options from the command line, else the environment. */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      url: { type: 'string', default: process.env.COORDINATOR_URL },
      token: { type: 'string', default: process.env.PLAYER_TOKEN },
      'stream-session': { type: 'string', default: process.env.STREAM_SESSION_ID },
      session: { type: 'string', default: process.env.SESSION_ID ?? 'viewer-1' },
      'start-segment': { type: 'string', default: '0' },
      quality: { type: 'string', default: 'Q720P' },
      'segment-seconds': { type: 'string', default: '6' },
      speed: { type: 'string', default: '1' },
      'leave-after': { type: 'string' },
      'last-segment': { type: 'string' },
      'seek-chance': { type: 'string', default: '0.02' },
      'quality-chance': { type: 'string', default: '0.05' },
    },
  });
  const streamSessionId = values['stream-session'];
  if (!streamSessionId) throw new Error('--stream-session (or STREAM_SESSION_ID) is required');
  const quality = values.quality as Quality;
  if (!QUALITIES.includes(quality)) throw new Error(`--quality must be one of ${QUALITIES}`);
  const player = startPlayer({
    url: values.url ?? 'http://127.0.0.1:4000/graphql',
    token: values.token,
    streamSessionId,
    sessionId: values.session as string,
    startSegment: Number(values['start-segment']),
    quality,
    segmentSeconds: Number(values['segment-seconds']),
    speed: Number(values.speed),
    leaveAfter: values['leave-after'] === undefined ? undefined : Number(values['leave-after']),
    lastSegment: values['last-segment'] === undefined ? undefined : Number(values['last-segment']),
    seekChance: Number(values['seek-chance']),
    qualityChance: Number(values['quality-chance']),
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => void player.stop());
  }
  const end = await player.done;
  console.log(`[${values.session}] ${end}`);
  process.exitCode = end === 'token refused' ? 1 : 0;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((error) => {
    console.error((error as Error).message);
    process.exit(1);
  });
}
