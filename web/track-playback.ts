/**
 * The player integration: tells hls-batch-coordinator where one viewer is,
 * so that encoders make the segments it is about to need.
 *
 *   import Hls from 'hls.js';
 *   import { trackPlayback } from './track-playback.js';
 *   const hls = new Hls();
 *   hls.loadSource(playlistUrl);
 *   hls.attachMedia(video);
 *   const tracking = trackPlayback(hls, video, {
 *     url: 'https://coordinator.example/graphql',
 *     streamSessionId, sessionId, token, // the token from your backend's issueClientToken
 *   });
 *   // …later: await tracking.stop(); // also removes the client
 *
 * What it reports (updateClientPosition): the fragment hls.js is PLAYING
 * (FRAG_CHANGED's frag.sn), or, while the viewer waits (a seek, a stall), the
 * fragment hls.js is LOADING for the playhead (FRAG_LOADING's frag.sn), with
 * the quality of that fragment's level. Never currentTime / segmentDuration:
 * hls.js' fragment times drift from the nominal ones by a few hundredths of a
 * second, so after a seek to an exact boundary hls.js loads the segment
 * before the one currentTime / D names, and a viewer reporting the latter
 * could wait for a segment nobody is asked to make.
 *
 * When: at once whenever that segment or quality changes (identical
 * consecutive reports are dropped), and again after `heartbeatMs` without a
 * report (a paused viewer stays a client). One request at a time: positions
 * that arrive meanwhile are coalesced, and only the latest is sent.
 * RATE_LIMITED and network failures are retried with capped exponential
 * backoff and jitter, with the latest position (never an older one after a
 * newer). A refused token (UNAUTHENTICATED, FORBIDDEN) or an ended session
 * (NOT_FOUND) stops tracking and calls onError; BAD_USER_INPUT calls onError
 * and goes on. `removeClient` is sent on `pagehide` (fetch with keepalive) and
 * by stop().
 *
 * hls.js is a type-only dependency: the bundle does not contain it.
 */
import type {
  Events,
  FragChangedData,
  FragLoadingData,
  default as Hls,
  LevelSwitchedData,
} from 'hls.js';

export type Quality = 'Q1080P' | 'Q720P' | 'Q480P';

/** What was reported, as sent in updateClientPosition's input. */
export interface PositionReport {
  readonly streamSessionId: string;
  readonly sessionId: string;
  readonly segmentNumber: number;
  readonly quality: Quality;
}

/** The part of an hls.js instance it uses. */
export type HlsLike = Pick<Hls, 'on' | 'off' | 'levels' | 'currentLevel'>;

/** The part of an HTMLMediaElement it uses (a <video> is one). */
export interface MediaLike {
  readonly currentTime: number;
  readonly paused: boolean;
  readonly seeking: boolean;
  readonly buffered: {
    readonly length: number;
    start(index: number): number;
    end(index: number): number;
  };
  addEventListener(type: string, listener: () => void): void;
  removeEventListener(type: string, listener: () => void): void;
}

/** Where `pagehide` / `pageshow` come from: the window in a browser. */
export interface PageEvents {
  addEventListener(type: string, listener: (event: { persisted?: boolean }) => void): void;
  removeEventListener(type: string, listener: (event: { persisted?: boolean }) => void): void;
}

export interface TrackPlaybackOptions {
  /** The service's GraphQL endpoint, http(s)://…/graphql. */
  readonly url: string;
  readonly streamSessionId: string;
  /** This viewer's id within the stream session (the one its token is bound to). */
  readonly sessionId: string;
  /** A player token from issueClientToken, sent as `authorization: Bearer`. None with AUTH=off. */
  readonly token?: string;
  /** A report at least this often while nothing else is sent (paused, stalled). Default 10000. */
  readonly heartbeatMs?: number;
  /** First retry delay after RATE_LIMITED or a network error; doubled each time. Default 500. */
  readonly retryBaseMs?: number;
  /** Longest retry delay. Default 30000. */
  readonly retryMaxMs?: number;
  /** For tests: the fetch to use (globalThis.fetch by default). */
  readonly fetch?: typeof fetch;
  /** For tests: 0 to 1, for the backoff's jitter (Math.random by default). */
  readonly random?: () => number;
  /** For tests: where pagehide comes from (globalThis, the window, by default). */
  readonly page?: PageEvents | null;
  /** A problem worth showing: a refused token, the session ended, a refused position. */
  readonly onError?: (message: string) => void;
  /** Every report the service accepted. */
  readonly onReport?: (report: PositionReport) => void;
}

/** Why tracking stopped. */
export type StopReason = 'stopped' | 'token refused' | 'session ended';

export interface Tracking {
  /** Stops tracking and removes the client (removeClient); resolves when that is answered. */
  stop(): Promise<void>;
  /** The position it would report now; null until hls.js has a fragment and a level. */
  readonly position: PositionReport | null;
  /** The last report the service accepted. */
  readonly lastReport: PositionReport | null;
  /** Null while tracking; why it stopped after. */
  readonly stopReason: StopReason | null;
}

const FRAG_CHANGED = 'hlsFragChanged' as Events.FRAG_CHANGED;
const FRAG_LOADING = 'hlsFragLoading' as Events.FRAG_LOADING;
const FRAG_BUFFERED = 'hlsFragBuffered' as Events.FRAG_BUFFERED;
const LEVEL_SWITCHED = 'hlsLevelSwitched' as Events.LEVEL_SWITCHED;

const REPORT = `mutation TrackPlaybackReport($input: UpdateClientPositionInput!) {
  updateClientPosition(input: $input) { segmentNumber quality }
}`;
const REMOVE = `mutation TrackPlaybackLeave($streamSessionId: ID!, $sessionId: ID!) {
  removeClient(streamSessionId: $streamSessionId, sessionId: $sessionId)
}`;

/** The contract's quality for a level's height. */
export function qualityOfHeight(height: number): Quality {
  if (height >= 1080) return 'Q1080P';
  if (height >= 720) return 'Q720P';
  return 'Q480P';
}

/** What a request came to. */
type Outcome =
  | { readonly kind: 'ok' }
  | { readonly kind: 'retry'; readonly why: string }
  | { readonly kind: 'error'; readonly code: string; readonly message: string };

export function trackPlayback(
  hls: HlsLike,
  video: MediaLike,
  options: TrackPlaybackOptions,
): Tracking {
  const heartbeatMs = options.heartbeatMs ?? 10_000;
  const retryBaseMs = options.retryBaseMs ?? 500;
  const retryMaxMs = options.retryMaxMs ?? 30_000;
  const random = options.random ?? Math.random;
  const doFetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  const page: PageEvents | null =
    options.page !== undefined
      ? options.page
      : typeof (globalThis as { addEventListener?: unknown }).addEventListener === 'function'
        ? (globalThis as unknown as PageEvents)
        : null;
  const { streamSessionId, sessionId } = options;

  // What hls.js and the video say.
  let playingSn: number | null = null;
  let playingLevel: number | null = null;
  /** The fragment the playhead waits for (seeking or stalled), until one plays. */
  let waiting: { readonly sn: number; readonly level: number } | null = null;
  /** The main fragment hls.js is loading now, whatever for. */
  let loading: { sn: number; level: number; start: number; end: number } | null = null;

  // What is sent.
  /** The position to send next (the latest wins); null when nothing is due. */
  let pending: PositionReport | null = null;
  /** The last position handed to the network (sent, in flight or retried): what dedupe compares with. */
  let lastQueued: string | null = null;
  let lastReport: PositionReport | null = null;
  let inFlight: AbortController | null = null;
  let retryTimer: ReturnType<typeof setTimeout> | null = null;
  let heartbeatTimer: ReturnType<typeof setTimeout> | null = null;
  let failures = 0;
  /** The page is hidden (pagehide): the client was removed; reports wait for pageshow. */
  let away = false;
  let stopReason: StopReason | null = null;

  function levelQuality(level: number | null): Quality | null {
    if (level === null || level < 0) return null;
    const height = hls.levels[level]?.height;
    return height === undefined ? null : qualityOfHeight(height);
  }

  function current(): PositionReport | null {
    const sn = waiting?.sn ?? playingSn;
    const quality = levelQuality(waiting?.level ?? playingLevel ?? hls.currentLevel);
    if (sn === null || quality === null) return null;
    return { streamSessionId, sessionId, segmentNumber: sn, quality };
  }

  const keyOf = (p: PositionReport) => `${p.segmentNumber}/${p.quality}`;

  /** Queues the current position unless it is what was last queued (or `again`: the heartbeat). */
  function update(again = false): void {
    if (stopReason !== null || away) return;
    const position = current();
    if (position === null) return;
    if (!again && keyOf(position) === lastQueued) return;
    lastQueued = keyOf(position);
    pending = position;
    pump();
  }

  function pump(): void {
    if (stopReason !== null || away || inFlight !== null || retryTimer !== null) return;
    const position = pending;
    if (position === null) return;
    pending = null;
    armHeartbeat();
    const controller = new AbortController();
    inFlight = controller;
    void request(REPORT, { input: position }, controller.signal, false).then((outcome) => {
      if (inFlight === controller) inFlight = null;
      if (controller.signal.aborted || stopReason !== null) return;
      handle(position, outcome);
      pump();
    });
  }

  function handle(position: PositionReport, outcome: Outcome): void {
    if (outcome.kind === 'ok') {
      failures = 0;
      lastReport = position;
      options.onReport?.(position);
      return;
    }
    if (outcome.kind === 'retry') {
      // Latest wins: retry this one only when nothing newer came meanwhile.
      if (pending === null) pending = position;
      const ceiling = Math.min(retryMaxMs, retryBaseMs * 2 ** failures);
      failures++;
      const delay = ceiling / 2 + (random() * ceiling) / 2;
      retryTimer = setTimeout(() => {
        retryTimer = null;
        pump();
      }, delay);
      return;
    }
    switch (outcome.code) {
      case 'UNAUTHENTICATED':
      case 'FORBIDDEN':
        end(
          'token refused',
          `hls-batch-coordinator refused the player token (${outcome.code}: ${outcome.message}); playback is no longer reported. Get a new token for stream session ${streamSessionId}, session ${sessionId}.`,
        );
        return;
      case 'NOT_FOUND':
        end(
          'session ended',
          `hls-batch-coordinator: stream session ${streamSessionId} does not exist (it ended); playback is no longer reported.`,
        );
        return;
      default:
        // BAD_USER_INPUT (a position past the video's end, say) or anything else: say so, go on.
        failures = 0;
        report(
          `hls-batch-coordinator refused segment ${position.segmentNumber} (${position.quality}): ${outcome.code}: ${outcome.message}`,
        );
    }
  }

  function report(message: string): void {
    console.error(message);
    options.onError?.(message);
  }

  function armHeartbeat(): void {
    if (heartbeatTimer !== null) clearTimeout(heartbeatTimer);
    heartbeatTimer = setTimeout(() => {
      heartbeatTimer = null;
      if (stopReason !== null || away) return;
      if (inFlight === null && retryTimer === null && pending === null) update(true);
      // Nothing to report yet, or busy sending: look again later.
      if (heartbeatTimer === null) armHeartbeat();
    }, heartbeatMs);
  }

  async function request(
    query: string,
    variables: Record<string, unknown>,
    signal: AbortSignal | undefined,
    keepalive: boolean,
  ): Promise<Outcome> {
    let response: Response;
    try {
      response = await doFetch(options.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/graphql-response+json, application/json',
          ...(options.token === undefined ? {} : { authorization: `Bearer ${options.token}` }),
        },
        body: JSON.stringify({ query, variables }),
        keepalive,
        signal,
      });
    } catch (error) {
      return { kind: 'retry', why: `network: ${(error as Error).message}` };
    }
    let body: {
      data?: unknown;
      errors?: Array<{ message?: string; extensions?: { code?: string } }>;
    };
    try {
      body = await response.json();
    } catch {
      if (response.status === 429 || response.status >= 500 || response.status === 408) {
        return { kind: 'retry', why: `HTTP ${response.status}` };
      }
      return { kind: 'error', code: `HTTP_${response.status}`, message: 'no GraphQL answer' };
    }
    const error = body.errors?.[0];
    if (error === undefined) {
      if (response.ok) return { kind: 'ok' };
      return response.status >= 500
        ? { kind: 'retry', why: `HTTP ${response.status}` }
        : { kind: 'error', code: `HTTP_${response.status}`, message: 'no GraphQL answer' };
    }
    const code = error.extensions?.code ?? 'UNKNOWN';
    if (code === 'RATE_LIMITED') return { kind: 'retry', why: code };
    return { kind: 'error', code, message: error.message ?? '' };
  }

  function removeClient(keepalive: boolean): Promise<void> {
    return request(REMOVE, { streamSessionId, sessionId }, undefined, keepalive).then(() => {});
  }

  /** Stops everything but the removeClient the caller may send. */
  function halt(): void {
    inFlight?.abort();
    inFlight = null;
    pending = null;
    for (const timer of [retryTimer, heartbeatTimer]) if (timer !== null) clearTimeout(timer);
    retryTimer = null;
    heartbeatTimer = null;
  }

  function end(reason: StopReason, message: string | null): void {
    if (stopReason !== null) return;
    stopReason = reason;
    halt();
    unlisten();
    if (message !== null) report(message);
  }

  // hls.js' events.
  const onFragChanged = (_event: Events.FRAG_CHANGED, data: FragChangedData) => {
    const { sn, level } = data.frag;
    if (typeof sn !== 'number') return;
    playingSn = sn;
    playingLevel = level;
    waiting = null;
    update();
  };
  const onFragLoading = (_event: Events.FRAG_LOADING, data: FragLoadingData) => {
    const { sn, level, type, start, duration } = data.frag;
    if (typeof sn !== 'number' || type !== 'main') return;
    loading = { sn, level, start, end: start + duration };
    // A prefetch ahead of a playhead that has what it needs is not waited for.
    if (video.seeking || !playheadBuffered()) {
      waiting = loading;
      update();
    }
  };
  const onFragBuffered = (
    _event: Events.FRAG_BUFFERED,
    data: { frag: { sn: number | string } },
  ) => {
    if (loading !== null && data.frag.sn === loading.sn) loading = null;
  };
  const onLevelSwitched = (_event: Events.LEVEL_SWITCHED, data: LevelSwitchedData) => {
    // The level now playing (hls.levels[data.level]). FRAG_CHANGED carries the
    // level of the fragment played too; this covers a switch announced first.
    if (waiting === null && data.level >= 0) playingLevel = data.level;
    update();
  };

  // The video's events.
  const onSeeking = () => {
    // The target's fragment is known when hls.js loads it (FRAG_LOADING) or,
    // when it is buffered already, plays it (FRAG_CHANGED); or now, when the
    // load in flight is for it (hls.js keeps it): by hls.js' own fragment
    // times, which are the ones it seeks by.
    waiting = null;
    const t = video.currentTime;
    if (loading !== null && loading.start <= t && t < loading.end && !playheadBuffered()) {
      waiting = loading;
      update();
    }
  };
  const onWaiting = () => {
    // Stalled at the end of the buffer: what it waits for is what hls.js is loading, when that
    // is at the playhead. After a seek, 'waiting' comes before hls.js drops the prefetch it had
    // in flight, far from the new playhead: reporting that would announce a need nobody has.
    const t = video.currentTime;
    if (loading !== null && loading.start - 0.5 <= t && t < loading.end && !playheadBuffered()) {
      waiting = loading;
      update();
    }
  };

  function playheadBuffered(): boolean {
    const t = video.currentTime;
    const ranges = video.buffered;
    for (let i = 0; i < ranges.length; i++) {
      // The end itself is not playable: a playhead there is stalled.
      if (ranges.start(i) <= t + 0.05 && t < ranges.end(i) - 0.1) return true;
    }
    return false;
  }

  // The page.
  const onPageHide = () => {
    if (stopReason !== null || away) return;
    away = true;
    halt();
    lastQueued = null;
    void removeClient(true).catch(() => {});
  };
  const onPageShow = (event: { persisted?: boolean }) => {
    // Back from the back/forward cache: the client was removed, report again.
    if (stopReason !== null || !away || event.persisted === false) return;
    away = false;
    armHeartbeat();
    update(true);
  };

  hls.on(FRAG_CHANGED, onFragChanged);
  hls.on(FRAG_LOADING, onFragLoading);
  hls.on(FRAG_BUFFERED, onFragBuffered);
  hls.on(LEVEL_SWITCHED, onLevelSwitched);
  video.addEventListener('seeking', onSeeking);
  video.addEventListener('waiting', onWaiting);
  page?.addEventListener('pagehide', onPageHide);
  page?.addEventListener('pageshow', onPageShow);
  armHeartbeat();

  function unlisten(): void {
    hls.off(FRAG_CHANGED, onFragChanged);
    hls.off(FRAG_LOADING, onFragLoading);
    hls.off(FRAG_BUFFERED, onFragBuffered);
    hls.off(LEVEL_SWITCHED, onLevelSwitched);
    video.removeEventListener('seeking', onSeeking);
    video.removeEventListener('waiting', onWaiting);
    page?.removeEventListener('pagehide', onPageHide);
    page?.removeEventListener('pageshow', onPageShow);
  }

  return {
    async stop() {
      if (stopReason !== null) return;
      const wasAway = away;
      end('stopped', null);
      if (!wasAway) await removeClient(true).catch(() => {});
    },
    get position() {
      return current();
    },
    get lastReport() {
      return lastReport;
    },
    get stopReason() {
      return stopReason;
    },
  };
}
