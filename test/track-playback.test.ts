/**
 * Issue 13, the player integration (web/track-playback.ts): driven by a
 * fake hls.js (events on/off, levels, currentLevel), a fake <video> (an
 * EventTarget with currentTime, paused, seeking, buffered) and a fake fetch,
 * then against the real service with a real player token.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import {
  type HlsLike,
  type PositionReport,
  qualityOfHeight,
  type Tracking,
  type TrackPlaybackOptions,
  trackPlayback,
} from '../web/track-playback.js';
import {
  ADMIN_TOKEN,
  authOverrides,
  eventually,
  Q,
  startTestServer,
  type TestServer,
} from './fixtures.js';

type Listener = (event: string, data: unknown) => void;

class FakeHls {
  readonly listeners = new Map<string, Set<Listener>>();
  levels = [{ height: 1080 }, { height: 720 }, { height: 480 }];
  currentLevel = 1;
  on(event: string, listener: Listener) {
    let set = this.listeners.get(event);
    if (set === undefined) {
      set = new Set();
      this.listeners.set(event, set);
    }
    set.add(listener);
  }
  off(event: string, listener: Listener) {
    this.listeners.get(event)?.delete(listener);
  }
  emit(event: string, data: unknown) {
    for (const listener of this.listeners.get(event) ?? []) listener(event, data);
  }
  count() {
    return [...this.listeners.values()].reduce((n, set) => n + set.size, 0);
  }
  /** The fragment the playhead entered. */
  changed(sn: number | 'initSegment', level = this.currentLevel) {
    this.emit('hlsFragChanged', { frag: frag(sn, level), previousFrag: null });
  }
  /** hls.js starts loading a fragment. */
  loading(sn: number, level = this.currentLevel, start = sn * 6 - 0.04) {
    this.emit('hlsFragLoading', { frag: frag(sn, level, start), targetBufferTime: null });
  }
  buffered(sn: number) {
    this.emit('hlsFragBuffered', { frag: frag(sn, this.currentLevel) });
  }
  switched(level: number) {
    this.currentLevel = level;
    this.emit('hlsLevelSwitched', { level });
  }
}

/** hls.js' fragments start a few hundredths of a second off the nominal n × 6. */
function frag(sn: number | 'initSegment', level: number, start = Number(sn) * 6 - 0.04) {
  return { sn, level, type: 'main', start, duration: 6 };
}

class FakeVideo extends EventTarget {
  currentTime = 0;
  paused = false;
  seeking = false;
  #ranges: Array<[number, number]> = [];
  readonly buffered = {
    length: 0,
    start: (i: number) => (this.#ranges[i] as [number, number])[0],
    end: (i: number) => (this.#ranges[i] as [number, number])[1],
  };
  /** What is buffered, as [start, end] pairs. */
  set ranges(ranges: Array<[number, number]>) {
    this.#ranges = ranges;
    this.buffered.length = ranges.length;
  }
  fire(type: string) {
    this.dispatchEvent(new Event(type));
  }
}

interface Call {
  readonly query: string;
  readonly variables: Record<string, any>;
  readonly init: RequestInit;
}

type Answer = Record<string, unknown> | Error | Promise<Record<string, unknown> | Error>;

/** A fetch that records each call and answers from a queue (then with success). */
function fakeFetch() {
  const calls: Call[] = [];
  const answers: Answer[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const fn = vi.fn(async (_url: string | URL | Request, init?: RequestInit) => {
    const body = JSON.parse(String(init?.body));
    calls.push({ query: body.query, variables: body.variables, init: init ?? {} });
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    try {
      const answer = await (answers.shift() ?? { data: { ok: true } });
      if (answer instanceof Error) throw answer;
      return new Response(JSON.stringify(answer), {
        headers: { 'content-type': 'application/json' },
      });
    } finally {
      inFlight--;
    }
  });
  return {
    fn: fn as unknown as typeof fetch,
    calls,
    answers,
    get maxInFlight() {
      return maxInFlight;
    },
    reports: () => calls.filter((c) => c.query.includes('updateClientPosition')),
    removals: () => calls.filter((c) => c.query.includes('removeClient')),
    /** The segment and quality of each report, in order. */
    positions: () =>
      calls
        .filter((c) => c.query.includes('updateClientPosition'))
        .map((c) => `${c.variables.input.segmentNumber}/${c.variables.input.quality}`),
  };
}

const refusal = (code: string, message = `${code} refusal`) => ({
  data: null,
  errors: [{ message, extensions: { code } }],
});

let hls: FakeHls;
let video: FakeVideo;
let page: EventTarget;
let net: ReturnType<typeof fakeFetch>;
let tracking: Tracking | undefined;
let errors: string[];
let reports: PositionReport[];

function start(options: Partial<TrackPlaybackOptions> = {}): Tracking {
  hls = new FakeHls();
  video = new FakeVideo();
  page = new EventTarget();
  net = fakeFetch();
  errors = [];
  reports = [];
  tracking = trackPlayback(hls as unknown as HlsLike, video, {
    url: 'http://coordinator.test/graphql',
    streamSessionId: 'movie-42',
    sessionId: 'viewer-1',
    token: 'player-token',
    fetch: net.fn,
    page: page as unknown as TrackPlaybackOptions['page'],
    random: () => 1,
    onError: (message) => errors.push(message),
    onReport: (report) => reports.push(report),
    ...options,
  });
  return tracking;
}

/** Lets the fake fetch's promises settle (fake timers hold nothing else). */
const settle = () => vi.advanceTimersByTimeAsync(0);

beforeAll(() => {
  vi.spyOn(console, 'error').mockImplementation(() => {});
});
afterAll(() => {
  vi.restoreAllMocks();
});
afterEach(async () => {
  vi.useRealTimers();
  await tracking?.stop();
  tracking = undefined;
});

describe('trackPlayback with fakes', () => {
  it('maps heights to qualities', () => {
    expect([2160, 1080, 1079, 900, 720, 719, 480, 360].map(qualityOfHeight)).toEqual([
      'Q1080P',
      'Q1080P',
      'Q720P',
      'Q720P',
      'Q720P',
      'Q480P',
      'Q480P',
      'Q480P',
    ]);
  });

  it("reports the playing fragment's sn, not currentTime / D, with its level's quality and the token", async () => {
    vi.useFakeTimers();
    start();
    // The playhead is at 60.00 s, which currentTime / 6 would call segment 10; hls.js plays
    // fragment 9 (it ends at 59.96 + … by its own times) and says so.
    video.currentTime = 60;
    video.ranges = [[0, 70]];
    hls.changed('initSegment');
    await settle();
    expect(net.calls).toHaveLength(0);
    hls.changed(9, 1);
    await settle();
    expect(net.reports()).toHaveLength(1);
    const [call] = net.reports();
    expect(call?.variables.input).toEqual({
      streamSessionId: 'movie-42',
      sessionId: 'viewer-1',
      segmentNumber: 9,
      quality: 'Q720P',
    });
    expect(new Headers(call?.init.headers).get('authorization')).toBe('Bearer player-token');
    expect(call?.init.method).toBe('POST');
    expect(reports).toEqual([call?.variables.input]);
    expect(tracking?.lastReport?.segmentNumber).toBe(9);
  });

  it('reports each segment change at once, and drops identical consecutive reports', async () => {
    vi.useFakeTimers();
    start();
    video.ranges = [[0, 100]];
    hls.changed(3);
    await settle();
    hls.changed(3);
    await settle();
    hls.changed(4);
    await settle();
    hls.changed(4);
    hls.changed(5);
    await settle();
    expect(net.positions()).toEqual(['3/Q720P', '4/Q720P', '5/Q720P']);
  });

  it('on a seek, reports the fragment hls.js loads for the new position at once; a prefetch is not reported', async () => {
    vi.useFakeTimers();
    start();
    video.currentTime = 20;
    video.ranges = [[0, 40]];
    hls.changed(3);
    await settle();
    // Prefetch ahead of a buffered playhead: not what the viewer waits for.
    hls.loading(7);
    await settle();
    expect(net.positions()).toEqual(['3/Q720P']);

    // A seek to exactly 120 s: currentTime / 6 = 20, but hls.js asks for 19 (which it
    // thinks ends at 119.96 + 6…): that is the segment the viewer waits for.
    video.seeking = true;
    video.currentTime = 120;
    video.fire('seeking');
    hls.loading(19);
    await settle();
    expect(net.positions()).toEqual(['3/Q720P', '19/Q720P']);
    // Then it plays 19 (same report, dropped), and 20.
    video.seeking = false;
    video.ranges = [[114, 132]];
    hls.changed(19);
    hls.buffered(19);
    await settle();
    hls.changed(20);
    await settle();
    expect(net.positions()).toEqual(['3/Q720P', '19/Q720P', '20/Q720P']);
  });

  it('a seek whose fragment is already loading reports it at once', async () => {
    vi.useFakeTimers();
    start();
    video.currentTime = 10;
    video.ranges = [[0, 12]];
    hls.changed(1);
    hls.loading(2);
    await settle();
    video.seeking = true;
    video.currentTime = 13;
    video.fire('seeking');
    await settle();
    expect(net.positions()).toEqual(['1/Q720P', '2/Q720P']);
  });

  it('stalled at the end of the buffer, reports the fragment being loaded', async () => {
    vi.useFakeTimers();
    start();
    video.currentTime = 31;
    video.ranges = [[0, 35.96]];
    hls.changed(5);
    hls.loading(6); // prefetch while 5 plays: not reported
    await settle();
    expect(net.positions()).toEqual(['5/Q720P']);
    video.currentTime = 35.96; // the playhead reached the end of what is buffered
    video.fire('waiting');
    await settle();
    expect(net.positions()).toEqual(['5/Q720P', '6/Q720P']);
    expect(tracking?.position?.segmentNumber).toBe(6);
  });

  it('a waiting right after a seek does not report the prefetch hls.js has yet to drop', async () => {
    // Found in Chromium (test/pipeline.e2e.test.ts (c)): 'waiting' follows 'seeking' before
    // hls.js aborts the fragment it was prefetching far from the new playhead.
    vi.useFakeTimers();
    start();
    video.currentTime = 31;
    video.ranges = [[23.96, 35.96]];
    hls.changed(5);
    hls.loading(6); // prefetch while 5 plays
    await settle();
    video.seeking = true;
    video.currentTime = 3.5; // back into what is not buffered
    video.fire('seeking');
    video.fire('waiting');
    await settle();
    expect(net.positions()).toEqual(['5/Q720P']);
    hls.loading(0); // what hls.js loads for the new playhead
    await settle();
    expect(net.positions()).toEqual(['5/Q720P', '0/Q720P']);
  });

  it('FRAG_LOADING while the playhead is not buffered counts as waiting', async () => {
    vi.useFakeTimers();
    start();
    video.currentTime = 0;
    video.ranges = [];
    hls.loading(0, 2, 0);
    await settle();
    expect(net.positions()).toEqual(['0/Q480P']);
  });

  it('reports a rendition switch at once, with the quality of the new level', async () => {
    vi.useFakeTimers();
    start();
    video.ranges = [[0, 100]];
    hls.changed(8, 1);
    await settle();
    hls.switched(0);
    await settle();
    hls.switched(2);
    await settle();
    // A fragment of the new level playing: nothing new to say.
    hls.changed(8, 2);
    await settle();
    expect(net.positions()).toEqual(['8/Q720P', '8/Q1080P', '8/Q480P']);
  });

  it('sends a heartbeat every heartbeatMs while nothing else is sent (paused)', async () => {
    vi.useFakeTimers();
    start({ heartbeatMs: 10_000 });
    video.ranges = [[0, 100]];
    hls.changed(4);
    await settle();
    video.paused = true;
    video.fire('pause');
    await vi.advanceTimersByTimeAsync(9_900);
    expect(net.reports()).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(200);
    expect(net.positions()).toEqual(['4/Q720P', '4/Q720P']);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(net.positions()).toEqual(['4/Q720P', '4/Q720P', '4/Q720P']);
    // A change restarts the count.
    await vi.advanceTimersByTimeAsync(5_000);
    hls.changed(5);
    await vi.advanceTimersByTimeAsync(9_000);
    expect(net.positions()).toEqual(['4/Q720P', '4/Q720P', '4/Q720P', '5/Q720P']);
    await vi.advanceTimersByTimeAsync(1_100);
    expect(net.positions()).toHaveLength(5);
  });

  it('retries RATE_LIMITED with growing, capped backoff, and then sends the latest position only', async () => {
    vi.useFakeTimers();
    start({ retryBaseMs: 500, retryMaxMs: 4_000, heartbeatMs: 600_000 });
    video.ranges = [[0, 100]];
    net.answers.push(
      refusal('RATE_LIMITED'),
      refusal('RATE_LIMITED'),
      refusal('RATE_LIMITED'),
      refusal('RATE_LIMITED'),
      refusal('RATE_LIMITED'),
    );
    hls.changed(7);
    await settle();
    const at: number[] = [];
    const t0 = Date.now();
    for (let i = 0; i < 5; i++) {
      const before = net.calls.length;
      while (net.calls.length === before) await vi.advanceTimersByTimeAsync(50);
      at.push(Date.now() - t0);
    }
    // random() = 1: each wait is its ceiling, 500 × 2^n capped at 4000 (give or take a tick).
    const waits = at.map((t, i) => t - (at[i - 1] ?? 0));
    expect(waits.map((w) => Math.round(w / 50) * 50)).toEqual([500, 1000, 2000, 4000, 4000]);
    expect(net.positions()).toEqual(Array(6).fill('7/Q720P'));

    // Latest wins: 8 is refused, and two newer positions arrived while it was in flight.
    let refuse!: () => void;
    net.answers.push(
      new Promise((resolve) => {
        refuse = () => resolve(refusal('RATE_LIMITED'));
      }),
    );
    hls.changed(8);
    await settle();
    hls.changed(9);
    hls.changed(10);
    await settle();
    refuse();
    await settle();
    await vi.advanceTimersByTimeAsync(4_000);
    expect(net.positions().slice(6)).toEqual(['8/Q720P', '10/Q720P']);
    expect(tracking?.lastReport?.segmentNumber).toBe(10);
    expect(errors).toEqual([]);
  });

  it('retries network errors with backoff and jitter, never sending an older position after a newer one', async () => {
    vi.useFakeTimers();
    start({ retryBaseMs: 1_000, random: () => 0, heartbeatMs: 600_000 });
    video.ranges = [[0, 100]];
    net.answers.push(new TypeError('Failed to fetch'), new TypeError('Failed to fetch'));
    hls.changed(2);
    await settle();
    // random() = 0: half the ceiling, 500 ms then 1000 ms.
    await vi.advanceTimersByTimeAsync(499);
    expect(net.calls).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(2);
    expect(net.calls).toHaveLength(2);
    hls.changed(3); // while it waits to retry 2
    await vi.advanceTimersByTimeAsync(1_001);
    expect(net.positions()).toEqual(['2/Q720P', '2/Q720P', '3/Q720P']);
    await vi.advanceTimersByTimeAsync(5_000);
    expect(net.positions()).toEqual(['2/Q720P', '2/Q720P', '3/Q720P']);
    expect(tracking?.lastReport?.segmentNumber).toBe(3);
  });

  it('keeps one request in flight, and coalesces what comes meanwhile to the latest', async () => {
    vi.useFakeTimers();
    start();
    video.ranges = [[0, 100]];
    let release!: () => void;
    net.answers.push(
      new Promise((resolve) => {
        release = () => resolve({ data: {} });
      }),
    );
    hls.changed(1);
    await settle();
    hls.changed(2);
    hls.switched(0);
    hls.changed(3, 0);
    await settle();
    expect(net.calls).toHaveLength(1);
    release();
    await settle();
    expect(net.positions()).toEqual(['1/Q720P', '3/Q1080P']);
    expect(net.maxInFlight).toBe(1);
  });

  for (const code of ['UNAUTHENTICATED', 'FORBIDDEN']) {
    it(`a refused token (${code}) stops tracking, with a clear message`, async () => {
      vi.useFakeTimers();
      const consoleError = vi.mocked(console.error);
      consoleError.mockClear();
      start();
      video.ranges = [[0, 100]];
      net.answers.push(refusal(code, 'The token is not valid.'));
      hls.changed(1);
      await settle();
      expect(tracking?.stopReason).toBe('token refused');
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(new RegExp(`refused the player token \\(${code}`));
      expect(consoleError).toHaveBeenCalledWith(errors[0]);
      // Nothing more: no report, no heartbeat, no retry, no listeners.
      hls.changed(2);
      await vi.advanceTimersByTimeAsync(60_000);
      expect(net.calls).toHaveLength(1);
      expect(hls.count()).toBe(0);
    });
  }

  it('NOT_FOUND (the session ended) stops tracking', async () => {
    vi.useFakeTimers();
    start();
    video.ranges = [[0, 100]];
    net.answers.push(refusal('NOT_FOUND', 'No stream session movie-42.'));
    hls.changed(1);
    await settle();
    expect(tracking?.stopReason).toBe('session ended');
    expect(errors[0]).toMatch(/movie-42 does not exist/);
    hls.changed(2);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(net.calls).toHaveLength(1);
  });

  it('BAD_USER_INPUT is reported through onError, and tracking goes on', async () => {
    vi.useFakeTimers();
    start();
    video.ranges = [[0, 100]];
    net.answers.push(refusal('BAD_USER_INPUT', 'segmentNumber 99 is past the last segment 98.'));
    hls.changed(99);
    await settle();
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/refused segment 99.*BAD_USER_INPUT/);
    expect(tracking?.stopReason).toBeNull();
    hls.changed(98);
    await settle();
    expect(net.positions()).toEqual(['99/Q720P', '98/Q720P']);
    expect(tracking?.lastReport?.segmentNumber).toBe(98);
  });

  it('removes the client with a keepalive fetch on pagehide, and reports nothing after', async () => {
    vi.useFakeTimers();
    start();
    video.ranges = [[0, 100]];
    hls.changed(1);
    await settle();
    page.dispatchEvent(new Event('pagehide'));
    await settle();
    expect(net.removals()).toHaveLength(1);
    const [removal] = net.removals();
    expect(removal?.init.keepalive).toBe(true);
    expect(removal?.variables).toEqual({ streamSessionId: 'movie-42', sessionId: 'viewer-1' });
    hls.changed(2);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(net.positions()).toEqual(['1/Q720P']);
    // Back from the back/forward cache: it reports again.
    const shown = Object.assign(new Event('pageshow'), { persisted: true });
    page.dispatchEvent(shown);
    await settle();
    expect(net.positions()).toEqual(['1/Q720P', '2/Q720P']);
  });

  it('stop() removes the client and stops listening', async () => {
    vi.useFakeTimers();
    start();
    video.ranges = [[0, 100]];
    hls.changed(1);
    await settle();
    const stopping = tracking?.stop();
    await settle();
    await stopping;
    expect(net.removals()).toHaveLength(1);
    expect(tracking?.stopReason).toBe('stopped');
    expect(hls.count()).toBe(0);
    hls.changed(2);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(net.calls).toHaveLength(2);
  });
});

describe('trackPlayback against the service', () => {
  let server: TestServer;
  beforeAll(async () => {
    server = await startTestServer({ ...authOverrides, positionUpdatesPerSecond: 10 });
  });
  afterAll(async () => {
    await server?.stop();
  });

  async function admin(query: string, variables?: Record<string, unknown>) {
    const response = await server.gql(query, variables, { authorization: `Bearer ${ADMIN_TOKEN}` });
    expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
    return response.data as Record<string, any>;
  }

  async function clients(id: string) {
    return (await admin(Q.session, { id })).streamSession.clientPositions as Array<{
      sessionId: string;
      segmentNumber: number;
      quality: string;
    }>;
  }

  it('lands each report in the session, and removes the client on stop()', async () => {
    await admin(Q.create, {
      input: { id: 'tp-live', videoSourcePath: '/media/tp.mp4', durationSeconds: 240 },
    });
    const token = (
      await admin(
        'mutation { issueClientToken(streamSessionId: "tp-live", sessionId: "viewer-real") }',
      )
    ).issueClientToken as string;
    hls = new FakeHls();
    video = new FakeVideo();
    errors = [];
    tracking = trackPlayback(hls as unknown as HlsLike, video, {
      url: server.url,
      streamSessionId: 'tp-live',
      sessionId: 'viewer-real',
      token,
      page: null,
      onError: (message) => errors.push(message),
    });
    video.ranges = [[0, 100]];
    hls.changed(3, 1);
    await eventually(async () =>
      expect(await clients('tp-live')).toMatchObject([
        { sessionId: 'viewer-real', segmentNumber: 3, quality: 'Q720P' },
      ]),
    );
    hls.switched(0);
    hls.changed(4, 0);
    await eventually(async () =>
      expect(await clients('tp-live')).toMatchObject([
        { sessionId: 'viewer-real', segmentNumber: 4, quality: 'Q1080P' },
      ]),
    );
    // Past the video's end (240 s: segments 0..39): refused, said, and it goes on.
    hls.changed(45, 0);
    await eventually(() => expect(errors.join('\n')).toMatch(/refused segment 45.*BAD_USER_INPUT/));
    hls.changed(5, 0);
    await eventually(async () => expect((await clients('tp-live'))[0]?.segmentNumber).toBe(5));
    await tracking.stop();
    expect(await clients('tp-live')).toEqual([]);
    tracking = undefined;
  });

  it('stops with a message when the service refuses the token', async () => {
    await admin(Q.create, { input: { id: 'tp-other', videoSourcePath: '/media/tp2.mp4' } });
    // A real token, but for another stream session: FORBIDDEN.
    const foreign = (
      await admin(
        'mutation { issueClientToken(streamSessionId: "tp-other", sessionId: "viewer-x") }',
      )
    ).issueClientToken as string;
    for (const [token, code] of [
      [foreign, 'FORBIDDEN'],
      ['not-a-token', 'UNAUTHENTICATED'],
    ] as const) {
      hls = new FakeHls();
      video = new FakeVideo();
      errors = [];
      const t = trackPlayback(hls as unknown as HlsLike, video, {
        url: server.url,
        streamSessionId: 'tp-live',
        sessionId: 'viewer-x',
        token,
        page: null,
        onError: (message) => errors.push(message),
      });
      hls.changed(1);
      await eventually(() => expect(t.stopReason).toBe('token refused'));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toContain(`(${code}:`);
      expect(t.lastReport).toBeNull();
    }
    expect(await clients('tp-live')).toEqual([]);
  });
});
