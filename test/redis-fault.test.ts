/**
 * Issue 5: the service when Redis goes away, against a PRIVATE redis-server
 * started here on a free port (never the shared one on 6379), with the app
 * in-process on STORE=redis.
 *
 * - Redis stalls (SIGSTOP, later SIGCONT; it keeps its data) under a steady
 *   load of position updates: /readyz says 503 while it is away and 200 after;
 *   mutations fail within a few seconds with a coded "store unavailable"
 *   error, never hang; the instance recovers by itself; no acknowledged update
 *   is lost; the subscriptions opened before still work, and new ones replay.
 * - Redis dies and a new, empty one starts on the same port: the instance
 *   reconnects and serves new sessions, subscriptions included, without restart.
 */
import type { ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { type Client, createClient } from 'graphql-ws';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { type Config, defaultConfig } from '../src/config.js';
import { type App, buildApp } from '../src/server/app.js';
import {
  type Collected,
  eventually,
  type GraphQLResponse,
  Q,
  sleep,
  sseSubscribe,
  wsRequest,
  wsSubscribe,
} from './fixtures.js';
import { captureLogs, LEVEL, type LogLine } from './log-capture.js';
import { freePort, spawnRedisServer } from './private-redis.js';

type Vars = Record<string, unknown>;
type Result = GraphQLResponse<any>;

/** Each answer must come within this, whatever Redis does: the store fails fast, never hangs. */
const ANSWER_WITHIN_MS = 5_000;
const UNAVAILABLE = /store.*unavailable/i;

interface Need {
  streamSession: { id: string };
  reason: string;
  batchNumber: number;
  startSegment: number;
  endSegment: number;
}

// ---------------------------------------------------------------- private Redis

interface PrivateRedis {
  readonly port: number;
  readonly url: string;
  child: ChildProcess;
  /** SIGSTOP: connections stay open, nothing answers; SIGCONT resumes with the data. */
  pause(): void;
  resume(): void;
  /** SIGKILL, resolved once the process is gone. */
  kill(): Promise<void>;
  /** A new, empty redis-server on the same port. */
  restart(): Promise<void>;
}

const redisChildren = new Set<ChildProcess>();

/** Spawns redis-server on `port`, tracked so that afterEach can stop it. */
async function spawnRedis(port: number): Promise<ChildProcess> {
  const child = await spawnRedisServer(port);
  redisChildren.add(child);
  child.once('exit', () => redisChildren.delete(child));
  return child;
}

async function startPrivateRedis(): Promise<PrivateRedis> {
  const port = await freePort();
  const redis: PrivateRedis = {
    port,
    url: `redis://127.0.0.1:${port}`,
    child: await spawnRedis(port),
    pause: () => {
      redis.child.kill('SIGSTOP');
    },
    resume: () => {
      redis.child.kill('SIGCONT');
    },
    kill: async () => {
      const child = redis.child;
      if (child.exitCode !== null || child.signalCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await gone;
    },
    restart: async () => {
      redis.child = await spawnRedis(port);
    },
  };
  return redis;
}

// ---------------------------------------------------------------- the app, in-process

interface Running {
  app: App;
  url: string;
  baseUrl: string;
  wsUrl: string;
  /** What the app logged as errors (expected while Redis is away). */
  errors: LogLine[];
  infos: LogLine[];
}

const cleanups: Array<() => Promise<void> | void> = [];

afterEach(async () => {
  // Redis back first, so that stopping the app is not a test of its own (one below is).
  for (const child of redisChildren) child.kill('SIGCONT');
  for (const cleanup of cleanups.splice(0).reverse())
    await Promise.resolve(cleanup()).catch(() => {});
  for (const child of redisChildren) child.kill('SIGKILL');
});

async function startApp(redis: PrivateRedis, overrides: Partial<Config> = {}): Promise<Running> {
  const { logger, lines } = captureLogs('info');
  const config: Config = {
    ...defaultConfig,
    store: 'redis',
    redisUrl: redis.url,
    redisKeyPrefix: `hbc-test:${randomUUID()}:`,
    authEnabled: false,
    positionUpdatesPerSecond: 0,
    wsMaxConnectionsPerToken: 1_000,
    wsMaxSubscriptionsPerToken: 1_000,
    ...overrides,
  };
  const app = buildApp({
    config,
    logger,
  });
  const { port } = await app.start(0, '127.0.0.1');
  cleanups.push(() => app.stop());
  const baseUrl = `http://127.0.0.1:${port}`;
  return {
    app,
    baseUrl,
    url: `${baseUrl}/graphql`,
    wsUrl: `ws://127.0.0.1:${port}/graphql`,
    get errors() {
      return lines.filter((line) => line.level >= LEVEL.error);
    },
    get infos() {
      return lines.filter((line) => line.level === LEVEL.info);
    },
  };
}

function wsClient(running: Running): Client {
  const client = createClient({
    url: running.wsUrl,
    webSocketImpl: WebSocket,
    lazy: true,
    retryAttempts: 0,
  });
  cleanups.push(() => client.dispose());
  return client;
}

function track<T extends { stop(): void }>(sub: T): T {
  cleanups.push(() => sub.stop());
  return sub;
}

interface Answer {
  status: number;
  body: Result;
  /** When it was sent and answered (performance.now()), and how long it took. */
  start: number;
  end: number;
  ms: number;
}

/** POSTs one operation; a request left unanswered for 15 s is given up, as an error answer. */
async function post(running: Running, query: string, variables?: Vars): Promise<Answer> {
  const start = performance.now();
  try {
    const response = await fetch(running.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: JSON.stringify({ query, variables }),
      signal: AbortSignal.timeout(15_000),
    });
    const body = (await response.json()) as Result;
    const end = performance.now();
    return { status: response.status, body, start, end, ms: end - start };
  } catch (error) {
    const end = performance.now();
    const message = `no answer: ${(error as Error).message}`;
    return { status: 0, body: { errors: [{ message }] }, start, end, ms: end - start };
  }
}

async function ok(running: Running, query: string, variables?: Vars): Promise<any> {
  const answer = await post(running, query, variables);
  expect(answer.body.errors, JSON.stringify(answer.body.errors)).toBeUndefined();
  return answer.body.data;
}

async function readyz(running: Running): Promise<{ status: number; ms: number }> {
  const start = performance.now();
  const response = await fetch(`${running.baseUrl}/readyz`, {
    signal: AbortSignal.timeout(15_000),
  });
  await response.body?.cancel();
  return { status: response.status, ms: performance.now() - start };
}

/** Polls /readyz until it answers `status`; every answer must come within ANSWER_WITHIN_MS. */
async function readyzBecomes(running: Running, status: number, timeoutMs = 15_000) {
  const seen: Array<{ status: number; ms: number }> = [];
  await eventually(
    async () => {
      const r = await readyz(running);
      seen.push(r);
      return r.status === status;
    },
    { timeout: timeoutMs },
  ).catch(() => {
    throw new Error(`/readyz never answered ${status}: ${JSON.stringify(seen)}`);
  });
  for (const r of seen) expect(r.ms, '/readyz answer time (ms)').toBeLessThan(ANSWER_WITHIN_MS);
  return seen;
}

/** The error a mutation must fail with while Redis is away: coded, clear, HTTP 503. */
function expectUnavailable(
  answer: Pick<Answer, 'body' | 'ms'> & { status?: number },
  what: string,
) {
  expect(answer.ms, `${what}: answer time (ms)`).toBeLessThan(ANSWER_WITHIN_MS);
  const error = answer.body.errors?.[0];
  expect(error, `${what}: ${JSON.stringify(answer.body)}`).toBeDefined();
  expect(error?.extensions?.code, what).toBe('INTERNAL_SERVER_ERROR');
  expect(error?.message, what).toMatch(UNAVAILABLE);
  // Over HTTP, the status says it too (a graphql-ws message has none).
  if (answer.status !== undefined) expect(answer.status, what).toBe(503);
}

// ---------------------------------------------------------------- steady load

interface Player {
  readonly streamSessionId: string;
  readonly sessionId: string;
  /** The last segment sent (each send is the next integer: 1, 2, 3, ...). */
  sent: number;
  /** The last segment whose update was answered with success. */
  lastAck: number | null;
  answers: Array<Answer & { segment: number }>;
}

/**
 * Players that each send their next position as soon as the last one is answered;
 * player i plays sessions[i % sessions.length].
 */
function steadyLoad(running: Running, sessions: readonly string[], count: number) {
  const players: Player[] = Array.from({ length: count }, (_, i) => ({
    streamSessionId: sessions[i % sessions.length] as string,
    sessionId: `player-${i}`,
    sent: 0,
    lastAck: null,
    answers: [],
  }));
  let stopped = false;
  const loops = players.map(async (player) => {
    while (!stopped) {
      const segment = ++player.sent;
      const answer = await post(running, Q.update, {
        input: {
          streamSessionId: player.streamSessionId,
          sessionId: player.sessionId,
          segmentNumber: segment,
          quality: 'Q720P',
        },
      });
      player.answers.push({ ...answer, segment });
      if (
        answer.body.errors === undefined &&
        answer.body.data?.updateClientPosition?.segmentNumber === segment
      ) {
        player.lastAck = segment;
      }
      // Pacing: a player reports every few milliseconds, not flat out.
      await sleep(10);
    }
  });
  return {
    players,
    /** Answers that failed / succeeded, of every player. */
    failures: () => players.flatMap((p) => p.answers.filter((a) => a.body.errors !== undefined)),
    successesAfter: (t: number, p: Player) =>
      p.answers.filter((a) => a.body.errors === undefined && a.start > t).length,
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
  };
}

/** Counts the sweeps of the app's sweeper: those reading the store now, and those that failed. */
function watchSweeps(running: Running) {
  const store = running.app.store;
  const dueWork = store.dueWork.bind(store);
  let inFlight = 0;
  let failed = 0;
  store.dueWork = (now, limit) => {
    inFlight++;
    return dueWork(now, limit)
      .catch((error: unknown) => {
        failed++;
        throw error;
      })
      .finally(() => {
        inFlight--;
      });
  };
  return { inFlight: () => inFlight, failed: () => failed };
}

const needsOf = (sub: Collected<Result>): Need[] =>
  sub.events.map((e) => {
    expect(e.errors).toBeUndefined();
    return e.data?.batchNeeded as Need;
  });
const brief = (n: Need) => ({
  id: n.streamSession.id,
  reason: n.reason,
  batchNumber: n.batchNumber,
  startSegment: n.startSegment,
});
async function heard(sub: Collected<Result>, id: string, reason: string, timeoutMs = 5_000) {
  await eventually(
    () => needsOf(sub).some((n) => n.streamSession.id === id && n.reason === reason),
    { timeout: timeoutMs },
  ).catch(() => {
    throw new Error(`never heard ${reason} of ${id}; heard ${JSON.stringify(needsOf(sub))}`);
  });
}

const claim = (running: Running, id: string, batchNumber: number, start: number) =>
  ok(running, Q.claim, {
    input: {
      streamSessionId: id,
      batchNumber,
      startSegment: start,
      endSegment: start + 19,
      videoSourcePath: `/v/${id}.mp4`,
      videoStartOffset: start * 6,
    },
  });

const create = (running: Running, id: string, batchSize = 20) =>
  ok(running, Q.create, {
    input: { id, videoSourcePath: `/v/${id}.mp4`, batchSize, threshold: 5 },
  });

describe('Redis goes away and comes back', { timeout: 60_000 }, () => {
  it('stalled (SIGSTOP) under load: 503 and fast coded errors while away, recovery by itself, no acknowledged update lost, subscriptions still work', async () => {
    const redis = await startPrivateRedis();
    const running = await startApp(redis);
    await readyzBecomes(running, 200);

    // One player per session: how updates of one session queue is the test after this one.
    const LOADS = Array.from({ length: 8 }, (_, i) => `load-${i}`);
    // Their players report 1, 2, 3, … as fast as the store answers (faster while
    // it refuses): a first batch as long as any run's reports keeps every one of
    // them inside it, so that the only need of these sessions is FIRST_BATCH,
    // however loaded the machine (with 20, a player past 19 made a SEEK_AHEAD).
    for (const id of LOADS) await create(running, id, 100_000);
    await create(running, 'probe');
    const wsNeeds = track(wsSubscribe<Result>(wsClient(running), Q.batchNeeded));
    const sseNeeds = track(sseSubscribe<Result>(running.url, Q.batchNeeded));
    await sseNeeds.ready;
    for (const sub of [wsNeeds, sseNeeds]) await sub.waitFor(LOADS.length + 1);

    const load = steadyLoad(running, LOADS, LOADS.length);
    await eventually(() => load.players.every((p) => (p.lastAck ?? 0) >= 3), { timeout: 10_000 });

    // Away.
    const PROBE_GRACE_MS = 1_000;
    const awayAt = performance.now();
    redis.pause();
    await readyzBecomes(running, 503);
    // A mutation over WebSocket fails the same way.
    const wsStart = performance.now();
    const wsAnswer = await wsRequest(wsClient(running), Q.update, {
      input: {
        streamSessionId: 'probe',
        sessionId: 'ws-player',
        segmentNumber: 1,
        quality: 'Q480P',
      },
    });
    expectUnavailable(
      { body: wsAnswer, ms: performance.now() - wsStart },
      'update over graphql-ws',
    );
    // Every player has had at least one update refused while away.
    await eventually(
      () => load.players.every((p) => p.answers.some((a) => a.start > awayAt && a.body.errors)),
      { timeout: 15_000 },
    );
    // Still away: still not ready.
    expect((await readyz(running)).status).toBe(503);

    // Back: the instance recovers by itself.
    const backAt = performance.now();
    redis.resume();
    await readyzBecomes(running, 200);
    await eventually(() => load.players.every((p) => load.successesAfter(backAt, p) >= 2), {
      timeout: 15_000,
    });
    await load.stop();

    // Every failure came while Redis was away, fast, coded, and saying so.
    const failures = load.failures();
    expect(failures.length).toBeGreaterThanOrEqual(load.players.length);
    for (const f of failures) {
      expectUnavailable(f, `update of segment ${f.segment}`);
      expect(f.end).toBeGreaterThan(awayAt);
      // The store lets commands through again once its probe hears Redis (every
      // 250 ms): a request may still be refused fast just after the resume.
      expect(f.start).toBeLessThan(backAt + PROBE_GRACE_MS);
    }
    for (const p of load.players) {
      for (const a of p.answers)
        expect(a.ms, 'update answer time (ms)').toBeLessThan(ANSWER_WITHIN_MS);
    }

    // No acknowledged update is lost: each player's stored segment is its last
    // acknowledged one or a later one it sent (a refused update may still have landed).
    for (const p of load.players) {
      const session = (await ok(running, Q.session, { id: p.streamSessionId })).streamSession;
      expect(session.clientPositions.map((c: { sessionId: string }) => c.sessionId)).toEqual([
        p.sessionId,
      ]);
      const segment = session.clientPositions[0].segmentNumber as number;
      expect(segment, p.sessionId).toBeGreaterThanOrEqual(p.lastAck as number);
      expect(segment, p.sessionId).toBeLessThanOrEqual(p.sent);
      expect(session).toMatchObject({ furthestSegment: segment, slowestSegment: segment });
    }

    // The subscriptions opened before the outage hear a need that arises after it.
    await claim(running, 'probe', 0, 0);
    await ok(running, Q.complete, { streamSessionId: 'probe', batchNumber: 0 });
    await ok(running, Q.update, {
      input: {
        streamSessionId: 'probe',
        sessionId: 'viewer',
        segmentNumber: 16,
        quality: 'Q1080P',
      },
    });
    await create(running, 'marker');
    for (const [name, sub] of [
      ['ws', wsNeeds],
      ['sse', sseNeeds],
    ] as const) {
      await heard(sub, 'marker', 'FIRST_BATCH');
      const all = needsOf(sub).map(brief);
      expect(
        all.filter((n) => n.id === 'probe'),
        name,
      ).toEqual([
        { id: 'probe', reason: 'FIRST_BATCH', batchNumber: 0, startSegment: 0 },
        { id: 'probe', reason: 'APPROACHING_END', batchNumber: 1, startSegment: 20 },
      ]);
      for (const id of LOADS) {
        expect(
          all.filter((n) => n.id === id),
          name,
        ).toEqual([{ id, reason: 'FIRST_BATCH', batchNumber: 0, startSegment: 0 }]);
      }
      expect(all, name).toHaveLength(LOADS.length + 3);
    }
    // A new subscription replays what is pending, from Redis.
    const late = track(sseSubscribe<Result>(running.url, Q.batchNeeded));
    await late.ready;
    await late.waitFor(LOADS.length + 2);
    expect(
      needsOf(late)
        .map(brief)
        .sort((x, y) => x.id.localeCompare(y.id)),
    ).toEqual([
      ...LOADS.map((id) => ({ id, reason: 'FIRST_BATCH', batchNumber: 0, startSegment: 0 })),
      { id: 'marker', reason: 'FIRST_BATCH', batchNumber: 0, startSegment: 0 },
      { id: 'probe', reason: 'APPROACHING_END', batchNumber: 1, startSegment: 20 },
    ]);
  });

  it('several players of one session while Redis stalls: each update still answers within a few seconds', async () => {
    const redis = await startPrivateRedis();
    const running = await startApp(redis);
    await readyzBecomes(running, 200);
    await create(running, 'crowd');
    const CROWD = 3;
    for (let i = 0; i < CROWD; i++) {
      await ok(running, Q.update, {
        input: { streamSessionId: 'crowd', sessionId: `p${i}`, segmentNumber: 1, quality: 'Q720P' },
      });
    }
    redis.pause();
    // Three players of one session report at once, as players of a popular stream do.
    const answers = await Promise.all(
      Array.from({ length: CROWD }, (_, i) =>
        post(running, Q.update, {
          input: {
            streamSessionId: 'crowd',
            sessionId: `p${i}`,
            segmentNumber: 2,
            quality: 'Q720P',
          },
        }),
      ),
    );
    redis.resume();
    const times = answers.map((a) => Math.round(a.ms));
    for (const [i, answer] of answers.entries()) {
      expectUnavailable(answer, `player p${i} (answer times in ms: ${times.join(', ')})`);
    }
  });

  it('stops cleanly (stop() resolves) while Redis is stalled', async () => {
    const redis = await startPrivateRedis();
    const running = await startApp(redis);
    await readyzBecomes(running, 200);
    await create(running, 'bye');
    const sweeps = watchSweeps(running);
    redis.pause();
    // The sweeper (every second) has a sweep waiting on Redis.
    await eventually(() => sweeps.inFlight() > 0, { timeout: 10_000 });
    const started = performance.now();
    const outcome = await running.app.stop().then(
      () => 'stopped',
      (error: unknown) => `stop() rejected: ${String(error)}`,
    );
    expect(outcome).toBe('stopped');
    expect(performance.now() - started).toBeLessThan(10_000);
  });

  it('a need caused by an update refused while Redis stalled, but applied when it resumed, still reaches the subscribers', async () => {
    // While Redis is stopped, the update is already on the wire: the app answers
    // "unavailable" after its command timeout, and Redis runs it when it resumes.
    const redis = await startPrivateRedis();
    const running = await startApp(redis);
    await readyzBecomes(running, 200);
    await create(running, 'stalled');
    await claim(running, 'stalled', 0, 0);
    await ok(running, Q.complete, { streamSessionId: 'stalled', batchNumber: 0 });
    const wsNeeds = track(wsSubscribe<Result>(wsClient(running), Q.batchNeeded));
    const sseNeeds = track(sseSubscribe<Result>(running.url, Q.batchNeeded));
    await sseNeeds.ready;
    // Both listen: a marker reaches both.
    await create(running, 'm1');
    for (const sub of [wsNeeds, sseNeeds]) await heard(sub, 'm1', 'FIRST_BATCH');

    redis.pause();
    const refused = await post(running, Q.update, {
      input: { streamSessionId: 'stalled', sessionId: 'v', segmentNumber: 16, quality: 'Q720P' },
    });
    expectUnavailable(refused, 'the update that crosses the threshold');
    redis.resume();
    await readyzBecomes(running, 200);

    // It landed: the session is at 16 and needs batch 1 (a new subscriber is told so).
    const session = (await ok(running, Q.session, { id: 'stalled' })).streamSession;
    expect(session.furthestSegment).toBe(16);
    expect(session.shouldGenerateNextBatch).toBe(true);
    const late = track(
      sseSubscribe<Result>(running.url, Q.batchNeeded, { streamSessionId: 'stalled' }),
    );
    await late.ready;
    await heard(late, 'stalled', 'APPROACHING_END');

    // The player carries on; the encoders that were listening all along must learn of
    // the need too (once), or batch 1 is never made for them.
    await ok(running, Q.update, {
      input: { streamSessionId: 'stalled', sessionId: 'v', segmentNumber: 17, quality: 'Q720P' },
    });
    await create(running, 'm2');
    for (const [name, sub] of [
      ['ws', wsNeeds],
      ['sse', sseNeeds],
    ] as const) {
      await heard(sub, 'm2', 'FIRST_BATCH');
      expect(
        needsOf(sub)
          .map(brief)
          .filter((n) => n.id === 'stalled' && n.batchNumber === 1),
        `${name}: the need for batch 1 of 'stalled' (pending since Redis resumed)`,
      ).toEqual([{ id: 'stalled', reason: 'APPROACHING_END', batchNumber: 1, startSegment: 20 }]);
    }
  });

  it('a sweep that fails while Redis stalls is reported once, not once per sweeper tick', async () => {
    // CLIENT_TIMEOUT 2 s: the sweeper ticks every 200 ms, and a sweep stuck on a
    // stalled Redis fails after the 2 s command timeout.
    const redis = await startPrivateRedis();
    const running = await startApp(redis, { clientTimeout: 2_000 });
    await readyzBecomes(running, 200);
    const sweeps = watchSweeps(running);
    redis.pause();
    await eventually(() => sweeps.failed() >= 1, { timeout: 10_000 });
    redis.resume();
    await readyzBecomes(running, 200);
    // No sweep in flight: every failure there was is in, and has had its chance to be logged.
    await eventually(() => sweeps.inFlight() === 0, { timeout: 10_000 });
    const reported = running.errors.filter((line) => line.msg === 'sweep failed').length;
    expect(
      reported,
      `sweeps that failed: ${sweeps.failed()}; "sweep failed" logged: ${reported}`,
    ).toBe(sweeps.failed());
  });

  it('killed and restarted empty on the same port: fast errors while it is gone, then new sessions and subscriptions work without a restart', async () => {
    const redis = await startPrivateRedis();
    const running = await startApp(redis);
    await readyzBecomes(running, 200);
    await create(running, 'before');
    const wsNeeds = track(wsSubscribe<Result>(wsClient(running), Q.batchNeeded));
    const sseNeeds = track(sseSubscribe<Result>(running.url, Q.batchNeeded));
    await sseNeeds.ready;
    for (const sub of [wsNeeds, sseNeeds]) await heard(sub, 'before', 'FIRST_BATCH');

    const load = steadyLoad(running, ['before'], 6);
    await eventually(() => load.players.every((p) => (p.lastAck ?? 0) >= 3), { timeout: 10_000 });

    const goneAt = performance.now();
    await redis.kill();
    await readyzBecomes(running, 503);
    await eventually(
      () => load.players.every((p) => p.answers.some((a) => a.start > goneAt && a.body.errors)),
      { timeout: 10_000 },
    );
    const created = await post(running, Q.create, {
      input: { id: 'nope', videoSourcePath: '/n.mp4' },
    });
    expectUnavailable(created, 'createStreamSession while Redis is gone');
    expect((await readyz(running)).status).toBe(503);

    const restartAt = performance.now();
    await redis.restart();
    await readyzBecomes(running, 200);
    await load.stop();
    // Until the restart: refused as unavailable, fast. After: the new Redis is empty.
    for (const p of load.players) {
      for (const a of p.answers) {
        expect(a.ms, 'update answer time (ms)').toBeLessThan(ANSWER_WITHIN_MS);
        if (a.body.errors === undefined) expect(a.start).toBeLessThan(goneAt);
        else if (a.end < restartAt) expectUnavailable(a, `update of segment ${a.segment}`);
        else
          expect(a.body.errors[0]?.extensions?.code).toMatch(/^(INTERNAL_SERVER_ERROR|NOT_FOUND)$/);
      }
    }

    // A new session on the new Redis: its first need reaches the subscriptions
    // opened before the crash, and a new subscription replays it.
    // Pub/sub delivers only to a subscribed connection: wait until the bus has
    // resubscribed (a probe session's need reaches the old subscribers).
    for (let i = 0; ; i++) {
      await create(running, `probe-${i}`);
      try {
        for (const sub of [wsNeeds, sseNeeds]) await heard(sub, `probe-${i}`, 'FIRST_BATCH', 1_000);
        break;
      } catch (error) {
        if (i >= 15) throw error;
      }
    }
    await create(running, 'after');
    for (const sub of [wsNeeds, sseNeeds]) await heard(sub, 'after', 'FIRST_BATCH');
    const late = track(sseSubscribe<Result>(running.url, Q.batchNeeded));
    await late.ready;
    await heard(late, 'after', 'FIRST_BATCH');
    expect(
      needsOf(late)
        .map((n) => n.streamSession.id)
        .filter((id) => !id.startsWith('probe-')),
    ).toEqual(['after']);

    // And the whole cycle works: claim, complete, a player crosses the threshold.
    await claim(running, 'after', 0, 0);
    await ok(running, Q.complete, { streamSessionId: 'after', batchNumber: 0 });
    await ok(running, Q.update, {
      input: { streamSessionId: 'after', sessionId: 'v', segmentNumber: 15, quality: 'Q480P' },
    });
    for (const sub of [wsNeeds, sseNeeds, late]) await heard(sub, 'after', 'APPROACHING_END');
    const session = (await ok(running, Q.session, { id: 'after' })).streamSession;
    expect(session).toMatchObject({
      furthestSegment: 15,
      slowestSegment: 15,
      currentBatch: { batchNumber: 0, isComplete: true },
      clientPositions: [{ sessionId: 'v', segmentNumber: 15, quality: 'Q480P' }],
    });
    expect((await ok(running, Q.session, { id: 'before' })).streamSession).toBeNull();
  });
});
