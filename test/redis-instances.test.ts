/**
 * Issue 5: several instances on one Redis. Real processes (`node --import tsx
 * src/main.ts` with STORE=redis), three at a time, on the Redis under test
 * (REDIS_URL) under a key prefix of this run's own.
 *
 * - 300 players send 10 updates each (3,000 mutations, HTTP keep-alive and
 *   graphql-ws, round-robin over the three instances) to four shared sessions;
 *   an encoder on one instance (graphql-ws) and another on a second (SSE) hear
 *   each need exactly once (as many as the instances logged: v2 announces per
 *   rendition, so how many depends on the order the updates ran in); every
 *   instance reads the same exact positions; a subscriber that comes later to
 *   the third instance gets the pending needs.
 * - setCurrentBatch claims raced over the three instances: one winner, also
 *   for a claim ahead of need while another batch is being generated (v2).
 * - With tiny timeouts, silent clients expire and idle sessions end exactly
 *   once, whichever instance sweeps, every subscriber hears it once, and the
 *   instances' logs report each once.
 * - SIGTERM with subscriptions open: every instance exits 0.
 *
 * Each test stands alone on its block's three instances, except that the
 * SIGTERM test stops them and so comes last.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { type Client, createClient } from 'graphql-ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  type Collected,
  deleteKeys,
  eventually,
  type GraphQLResponse,
  type Need,
  Q,
  serviceEnv,
  sseSubscribe,
  testRedisUrl,
  wsRequest,
  wsSubscribe,
} from './fixtures.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));
const REDIS_URL = testRedisUrl();

const ENDED = `subscription Ended($id: ID) {
  streamSessionEnded(streamSessionId: $id) { id reason }
}`;

type Vars = Record<string, unknown>;
type Result = GraphQLResponse<any>;

interface Instance {
  readonly name: string;
  readonly child: ChildProcess;
  /** http://127.0.0.1:PORT/graphql */
  readonly url: string;
  readonly wsUrl: string;
  /** Keep-alive connections to this instance, for every HTTP request of the test. */
  readonly agent: http.Agent;
  stdout(): string;
  stderr(): string;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

interface Cluster {
  readonly prefix: string;
  readonly instances: Instance[];
}

const children: ChildProcess[] = [];
/** HTTP requests sent, and the connections they were sent on (kept alive, reused). */
let httpRequests = 0;
const httpSockets = new WeakSet<object>();
let httpConnections = 0;
const wsClients: Client[] = [];
const subscriptions: Array<{ stop(): void }> = [];

/** Starts one instance and resolves once it prints the URL it listens on. */
async function startInstance(name: string, env: Record<string, string>): Promise<Instance> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: repoRoot,
    env: serviceEnv(env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  let err = '';
  child.stdout?.on('data', (chunk) => {
    out += chunk;
  });
  child.stderr?.on('data', (chunk) => {
    err += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  // Process starts (tsx compiling on the way) are slow on a busy machine.
  const url = await eventually(
    () => {
      const match = out.match(/listening on (http:\/\/\S+)/);
      if (match) return new URL(match[1] as string).href;
      throw new Error(`${name} did not start (exit ${child.exitCode}):\n${out}\n${err}`);
    },
    { timeout: 45_000 },
  );
  return {
    name,
    child,
    url,
    wsUrl: url.replace(/^http/, 'ws'),
    agent: new http.Agent({ keepAlive: true, maxSockets: 128 }),
    stdout: () => out,
    stderr: () => err,
    exited,
  };
}

/** Three instances on one Redis and one fresh key prefix. */
async function startCluster(label: string, env: Record<string, string> = {}): Promise<Cluster> {
  const prefix = `hbc-test:${randomUUID()}:`;
  const instances = await Promise.all(
    [0, 1, 2].map((i) =>
      startInstance(`${label}${i}`, {
        STORE: 'redis',
        REDIS_URL,
        REDIS_KEY_PREFIX: prefix,
        AUTH: 'off',
        RATE_LIMIT_POSITION_UPDATES: '0',
        PORT: '0',
        HOST: '127.0.0.1',
        WS_MAX_CONNECTIONS_PER_TOKEN: '10000',
        WS_MAX_SUBSCRIPTIONS_PER_TOKEN: '10000',
        ...env,
      }),
    ),
  );
  return { prefix, instances };
}

/** SIGTERM to each instance; resolves with how each exited. */
async function stopCluster(cluster: Cluster) {
  for (const instance of cluster.instances) instance.agent.destroy();
  for (const instance of cluster.instances) instance.child.kill('SIGTERM');
  return Promise.all(cluster.instances.map((instance) => instance.exited));
}

/**
 * SIGTERM with the test's subscriptions still open (the server completes them),
 * then each instance must have exited 0; the clients are disposed after.
 */
async function expectCleanExits(cluster: Cluster) {
  const exits = await stopCluster(cluster);
  for (const sub of subscriptions.splice(0)) sub.stop();
  await Promise.all(wsClients.splice(0).map((client) => client.dispose()));
  expect(exits, cluster.instances.map((i) => i.stderr()).join('\n')).toEqual(
    exits.map(() => ({ code: 0, signal: null })),
  );
}

/** POSTs one operation over the instance's keep-alive agent. */
function post(instance: Instance, query: string, variables?: Vars): Promise<Result> {
  const body = JSON.stringify({ query, variables });
  return new Promise((resolve, reject) => {
    const request = http.request(
      instance.url,
      {
        method: 'POST',
        agent: instance.agent,
        headers: {
          'content-type': 'application/json',
          accept: 'application/json',
          'content-length': Buffer.byteLength(body),
        },
      },
      (response) => {
        httpRequests++;
        const socket = request.socket;
        if (socket !== null && !httpSockets.has(socket)) {
          httpSockets.add(socket);
          httpConnections++;
        }
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            resolve(JSON.parse(text) as Result);
          } catch {
            reject(new Error(`${instance.name} answered ${response.statusCode}: ${text}`));
          }
        });
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

async function ok(instance: Instance, query: string, variables?: Vars): Promise<any> {
  const response = await post(instance, query, variables);
  expect(response.errors, `${instance.name}: ${JSON.stringify(response.errors)}`).toBeUndefined();
  return response.data;
}

function wsClient(instance: Instance): Client {
  const client = createClient({
    url: instance.wsUrl,
    webSocketImpl: WebSocket,
    lazy: true,
    retryAttempts: 0,
  });
  wsClients.push(client);
  return client;
}

function track<T extends { stop(): void }>(subscription: T): T {
  subscriptions.push(subscription);
  return subscription;
}

const needsOf = (sub: Collected<Result>): Need[] =>
  sub.events.map((e) => {
    expect(e.errors).toBeUndefined();
    return e.data?.batchNeeded as Need;
  });
const endingsOf = (sub: Collected<Result>): Array<{ id: string; reason: string }> =>
  sub.events.map((e) => {
    expect(e.errors).toBeUndefined();
    return e.data?.streamSessionEnded as { id: string; reason: string };
  });

/** Waits until `sub` has an event that `match` accepts. */
async function waitUntil<T>(
  sub: Collected<Result>,
  read: (s: Collected<Result>) => T[],
  match: (item: T) => boolean,
  what: string,
  timeoutMs = 15_000,
) {
  await eventually(() => read(sub).some(match), { timeout: timeoutMs }).catch(() => {
    throw new Error(`never heard ${what}; heard: ${JSON.stringify(read(sub))}`);
  });
}

/**
 * Creates and ends throwaway sessions until every subscriber in `endings`
 * has heard the ending of one, and every one in `needs` its need:
 * streamSessionEnded replays nothing, so this is how a test knows that all
 * its subscribers listen before it goes on.
 */
async function untilListening(
  cluster: Cluster,
  run: string,
  endings: Array<Collected<Result>>,
  needs: Array<Collected<Result>> = [],
) {
  const [a, , c] = cluster.instances as [Instance, Instance, Instance];
  const warm = `warm-${run}-`;
  const heardByAll = () =>
    endings.every((sub) => endingsOf(sub).some((e) => e.id.startsWith(warm))) &&
    needs.every((sub) => needsOf(sub).some((n) => n.streamSession.id.startsWith(warm)));
  let round = 0;
  await eventually(
    async () => {
      const id = `${warm}${++round}`;
      await ok(c, Q.create, { input: { id, videoSourcePath: '/v/warm.mp4' } });
      expect((await ok(a, Q.end, { id })).endStreamSession).toBe(true);
      // Those that listen hear it within a moment; for the others, another round.
      await eventually(heardByAll, { timeout: 1_000 });
    },
    { timeout: 20_000 },
  );
}

/**
 * SIGTERM with subscriptions open on every instance, over both transports
 * (the server completes them); each instance must exit 0.
 */
async function expectCleanExitsWhileSubscribed(cluster: Cluster) {
  const endings = cluster.instances.flatMap((instance) => [
    track(wsSubscribe<Result>(wsClient(instance), ENDED)),
    track(sseSubscribe<Result>(instance.url, ENDED)),
  ]);
  await untilListening(cluster, randomUUID().slice(0, 8), endings);
  await expectCleanExits(cluster);
}

/** The shape of a need as the assertions compare it. */
const brief = (n: Need) => ({
  id: n.streamSession.id,
  reason: n.reason,
  batchNumber: n.batchNumber,
  startSegment: n.startSegment,
  endSegment: n.endSegment,
});

const QUALITIES = ['Q1080P', 'Q720P', 'Q480P'] as const;

/** The claim of batch 0 (segments 0..19, the default batch size) of session `id`. */
const batch0 = (id: string) => ({
  streamSessionId: id,
  batchNumber: 0,
  startSegment: 0,
  endSegment: 19,
  videoSourcePath: `/v/${id}.mp4`,
  videoStartOffset: 0,
});

afterAll(async () => {
  for (const sub of subscriptions) sub.stop();
  await Promise.all(wsClients.map((c) => c.dispose()));
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
});

describe('three instances on one Redis', { timeout: 90_000 }, () => {
  let cluster: Cluster;
  let a: Instance;
  let b: Instance;
  let c: Instance;

  beforeAll(async () => {
    cluster = await startCluster('i');
    [a, b, c] = cluster.instances as [Instance, Instance, Instance];
  }, 60_000);
  afterAll(async () => {
    if (cluster) await deleteKeys(REDIS_URL, cluster.prefix);
  });

  it('3,000 concurrent updates from 300 players over three instances: each need heard exactly once on each encoder, exact positions from every instance, pending needs replayed on a third', async () => {
    const run = randomUUID().slice(0, 8);
    const SESSIONS = 4;
    const PLAYERS = 300;
    const UPDATES = 10;
    const ids = Array.from({ length: SESSIONS }, (_, s) => `burst-${run}-${s}`);

    // The encoders: graphql-ws on instance a, SSE on instance b, both for every session.
    const wsEncoder = track(wsSubscribe<Result>(wsClient(a), Q.batchNeeded));
    const sseEncoder = track(sseSubscribe<Result>(b.url, Q.batchNeeded));
    await sseEncoder.ready;

    // Sessions created on different instances; batch 0 claimed and completed on others.
    for (const [s, id] of ids.entries()) {
      await ok(cluster.instances[s % 3] as Instance, Q.create, {
        input: {
          id,
          videoSourcePath: `/v/${id}.mp4`,
          segmentDuration: 6,
          batchSize: 20,
          threshold: 5,
        },
      });
    }
    // Whether an encoder heard FIRST_BATCH live or from the replay, it hears it once.
    for (const [name, sub] of [
      ['ws encoder', wsEncoder],
      ['sse encoder', sseEncoder],
    ] as const) {
      for (const id of ids) {
        await waitUntil(sub, needsOf, (n) => n.streamSession.id === id, `${name}: ${id}`);
      }
    }
    for (const [s, id] of ids.entries()) {
      await ok(cluster.instances[(s + 1) % 3] as Instance, Q.claim, { input: batch0(id) });
      await ok(cluster.instances[(s + 2) % 3] as Instance, Q.complete, {
        streamSessionId: id,
        batchNumber: 0,
      });
    }

    // Player p plays session s = p % 4 through instance p % 3; one in ten over graphql-ws.
    // Its positions jump about (back and forth across the threshold at 14); its last
    // one is in 5..14 + s, and the session's 75 players take every value there, so each
    // session ends at furthest 14 + s, slowest 5, with the need for batch 1 still pending.
    const segment = (p: number, i: number) =>
      i === UPDATES - 1
        ? 5 + (Math.floor(p / SESSIONS) % (10 + (p % SESSIONS)))
        : (7 * p + 5 * i) % 19;
    const quality = (p: number, i: number) => QUALITIES[(p + i) % 3] as string;
    const players = Array.from({ length: PLAYERS }, (_, p) => {
      const instance = cluster.instances[p % 3] as Instance;
      const client = p % 10 === 0 ? wsClient(instance) : null;
      const send = (query: string, variables: Vars) =>
        client === null ? post(instance, query, variables) : wsRequest(client, query, variables);
      return { p, streamSessionId: ids[p % SESSIONS] as string, sessionId: `player-${p}`, send };
    });
    const failures: string[] = [];
    const [requestsBefore, connectionsBefore] = [httpRequests, httpConnections];
    await Promise.all(
      players.map(async ({ p, streamSessionId, sessionId, send }) => {
        for (let i = 0; i < UPDATES; i++) {
          const input = {
            streamSessionId,
            sessionId,
            segmentNumber: segment(p, i),
            quality: quality(p, i),
          };
          const response = await send(Q.update, { input });
          const answered = response.data?.updateClientPosition;
          if (response.errors !== undefined || answered?.segmentNumber !== input.segmentNumber) {
            failures.push(`${sessionId}#${i}: ${JSON.stringify(response)}`);
          }
        }
      }),
    );
    expect(failures.slice(0, 5), `${failures.length} updates failed`).toEqual([]);
    // The 2,700 HTTP updates went over kept-alive connections: a few hundred at most.
    expect(httpRequests - requestsBefore).toBe(PLAYERS * UPDATES * 0.9);
    expect(httpConnections - connectionsBefore).toBeLessThanOrEqual(PLAYERS);

    // A later need, announced after every update was answered: once the encoders hear
    // it, they have heard everything the burst announced (one channel, in order).
    // v2 serves each rendition: a player at 14 or more (within the threshold of 19) in
    // a rendition without a need there makes one (APPROACHING_END, 20-39); one that
    // moves back leaves it withdrawn, and a later one may take its number again. How
    // many needs the burst announced depends on the order the updates ran in: the
    // instances' logs tell (one line per need, from the instance whose change announced it).
    const marker = `marker-${run}`;
    await ok(c, Q.create, { input: { id: marker, videoSourcePath: '/v/marker.mp4' } });
    /** The needs of `id` the instances logged, as `brief` shows them. */
    const logged = (id: string) => {
      const out: string[] = [];
      for (const instance of cluster.instances) {
        for (const line of instance.stdout().split('\n')) {
          if (!line.startsWith('{')) continue;
          const entry = JSON.parse(line) as Record<string, unknown>;
          if (entry.event !== 'batchNeeded' || entry.streamSessionId !== id) continue;
          const { reason, batchNumber, startSegment, endSegment } = entry;
          out.push(JSON.stringify({ id, reason, batchNumber, startSegment, endSegment }));
        }
      }
      return out.sort();
    };
    const heardBy: Need[][] = [];
    for (const [name, sub] of [
      ['ws encoder', wsEncoder],
      ['sse encoder', sseEncoder],
    ] as const) {
      await waitUntil(sub, needsOf, (n) => n.streamSession.id === marker, `${name}: marker`);
      const heard = needsOf(sub);
      heardBy.push(heard);
      for (const id of ids) {
        const mine = heard.filter((n) => n.streamSession.id === id).map(brief);
        expect(mine[0], `${name}: the first need of ${id}`).toEqual({
          id,
          reason: 'FIRST_BATCH',
          batchNumber: 0,
          startSegment: 0,
          endSegment: 19,
        });
        for (const need of mine.slice(1)) {
          expect(need, `${name}: the needs of ${id}`).toMatchObject({
            reason: 'APPROACHING_END',
            startSegment: 20,
            endSegment: 39,
          });
        }
        // Each need announced heard exactly once: the logged ones, whichever instance
        // logged them (their output may lag a moment behind the events).
        const heardOnce = mine.map((n) => JSON.stringify(n)).sort();
        await eventually(() => expect(logged(id)).toEqual(heardOnce), { timeout: 5_000 }).catch(
          () => expect(logged(id), `${name}: the needs of ${id}, as logged`).toEqual(heardOnce),
        );
      }
      expect(heard.at(-1) && brief(heard.at(-1) as Need)).toEqual({
        id: marker,
        reason: 'FIRST_BATCH',
        batchNumber: 0,
        startSegment: 0,
        endSegment: 19,
      });
    }
    // Both encoders heard the same needs, in the same order. (Each instance adds the
    // session's view when it delivers a need: mid-burst, the views may differ.)
    const withoutView = (heard: Need[]) => heard.map(({ streamSession: _, ...need }) => need);
    expect(withoutView(heardBy[1] as Need[])).toEqual(withoutView(heardBy[0] as Need[]));

    // Every instance reads the same, exact state.
    const expected = ids.map((id, s) => {
      const positions = players
        .filter((pl) => pl.p % SESSIONS === s)
        .map((pl) => ({
          sessionId: pl.sessionId,
          segmentNumber: segment(pl.p, UPDATES - 1),
          quality: quality(pl.p, UPDATES - 1),
        }))
        .sort((x, y) => (x.sessionId < y.sessionId ? -1 : x.sessionId > y.sessionId ? 1 : 0));
      const segments = positions.map((x) => x.segmentNumber);
      return {
        id,
        positions,
        furthestSegment: Math.max(...segments),
        slowestSegment: Math.min(...segments),
      };
    });
    for (const e of expected) {
      // The premise of the replay below: each session still needs batch 1.
      expect(e.furthestSegment).toBeGreaterThanOrEqual(14);
      expect(e.furthestSegment).toBeLessThanOrEqual(19);
    }
    for (const instance of cluster.instances) {
      for (const e of expected) {
        const session = (await ok(instance, Q.session, { id: e.id })).streamSession;
        expect(
          session.clientPositions.map(
            ({ sessionId, segmentNumber, quality: q }: Record<string, unknown>) => ({
              sessionId,
              segmentNumber,
              quality: q,
            }),
          ),
          `${instance.name}: positions of ${e.id}`,
        ).toEqual(e.positions);
        expect(session, `${instance.name}: ${e.id}`).toMatchObject({
          furthestSegment: e.furthestSegment,
          slowestSegment: e.slowestSegment,
          shouldGenerateNextBatch: true,
          currentBatch: { batchNumber: 0, isComplete: true },
        });
      }
    }

    // An encoder that connects later, to the third instance, gets what is pending now
    // (read from Redis: it heard nothing live), once; then live needs. Pending in each
    // session: a need at 20 for every rendition a player at 14 or more plays, each one
    // heard before (needs nobody relies on any more were withdrawn).
    const late = track(wsSubscribe<Result>(wsClient(c), Q.batchNeeded));
    const lateOne = track(sseSubscribe<Result>(c.url, Q.batchNeeded, { streamSessionId: ids[0] }));
    await lateOne.ready;
    await late.waitFor(SESSIONS + 1, 15_000);
    await lateOne.waitFor(1, 15_000);
    const marker2 = `marker2-${run}`;
    await ok(a, Q.create, { input: { id: marker2, videoSourcePath: '/v/marker2.mp4' } });
    await waitUntil(late, needsOf, (n) => n.streamSession.id === marker2, 'late: marker2');
    const replayed = needsOf(late);
    expect(replayed.at(-1)?.streamSession.id).toBe(marker2);
    expect(replayed.filter((n) => n.streamSession.id === marker).map(brief)).toEqual([
      { id: marker, reason: 'FIRST_BATCH', batchNumber: 0, startSegment: 0, endSegment: 19 },
    ]);
    // A need as announced, without the session view it came with, nor the
    // furthest client (the replay gives the session's now, as v1's did).
    const bare = ({ streamSession: _, furthestSegment: __, ...need }: Need) => JSON.stringify(need);
    const heardBefore = new Set((heardBy[0] as Need[]).map(bare));
    for (const e of expected) {
      const pending = replayed.filter((n) => n.streamSession.id === e.id);
      const served = e.positions.filter((x) => x.segmentNumber < 14);
      const waiting = new Set(
        e.positions.filter((x) => x.segmentNumber >= 14).map((x) => x.quality),
      );
      expect(waiting.size, `players of ${e.id} at 14 or more`).toBeGreaterThan(0);
      expect(served.length).toBeGreaterThan(0);
      for (const need of pending) {
        expect(need, `replayed need of ${e.id}`).toMatchObject({
          reason: 'APPROACHING_END',
          startSegment: 20,
          endSegment: 39,
          videoSourcePath: `/v/${e.id}.mp4`,
          videoStartOffset: 120,
          streamSession: { id: e.id, furthestSegment: e.furthestSegment },
        });
        // As it was announced, but for the furthest client: the session's now.
        expect(heardBefore.has(bare(need)), `replayed need of ${e.id}: ${bare(need)}`).toBe(true);
        expect(need.furthestSegment).toBe(e.furthestSegment);
      }
      // One need per rendition played at 14 or more, and none for another.
      const renditions = pending.flatMap((n) => n.qualities as string[]);
      expect(renditions.length, `${e.id}: ${JSON.stringify(pending)}`).toBe(
        new Set(renditions).size,
      );
      expect(new Set(renditions)).toEqual(waiting);
    }
    expect(needsOf(lateOne).map(brief)).toEqual(
      replayed.filter((n) => n.streamSession.id === ids[0]).map(brief),
    );
    // And the first two encoders heard the second marker, and nothing else, since.
    for (const sub of [wsEncoder, sseEncoder]) {
      await waitUntil(sub, needsOf, (n) => n.streamSession.id === marker2, 'marker2');
      expect(sub.events).toHaveLength((heardBy[0] as Need[]).length + 1);
    }
  });

  it('setCurrentBatch claims raced over the three instances: exactly one winner, the rest CONFLICT', async () => {
    const run = randomUUID().slice(0, 8);
    const ids = Array.from({ length: 3 }, (_, s) => `race-${run}-${s}`);
    const RACERS = 9;
    /** RACERS claims at once, three per instance, each with an end of its own. */
    const race = (id: string, batchNumber: number, start: number) =>
      Promise.all(
        Array.from({ length: RACERS }, (_, r) => {
          const endSegment = start + 19 + r;
          const instance = cluster.instances[r % 3] as Instance;
          return post(instance, Q.claim, {
            input: {
              streamSessionId: id,
              batchNumber,
              startSegment: start,
              endSegment,
              videoSourcePath: `/v/${id}.mp4`,
              videoStartOffset: start * 6,
            },
          }).then((response) => ({ endSegment, response }));
        }),
      );
    const judge = async (id: string, outcomes: Awaited<ReturnType<typeof race>>) => {
      const winners = outcomes.filter((o) => o.response.errors === undefined);
      const losers = outcomes.filter((o) => o.response.errors !== undefined);
      expect(winners, `winners for ${id}`).toHaveLength(1);
      for (const loser of losers) {
        expect(loser.response.errors?.[0]?.extensions?.code).toBe('CONFLICT');
        expect(loser.response.data ?? null).toBeNull();
      }
      const won = (winners[0] as (typeof outcomes)[number]).response.data?.setCurrentBatch;
      expect(won.endSegment).toBe((winners[0] as (typeof outcomes)[number]).endSegment);
      // The store holds the winner's claim, whichever instance reads it.
      for (const instance of cluster.instances) {
        const session = (await ok(instance, Q.session, { id })).streamSession;
        expect(session.currentBatch, `${instance.name}: ${id}`).toMatchObject({
          batchNumber: won.batchNumber,
          endSegment: won.endSegment,
          generationStarted: won.generationStarted,
          isComplete: false,
        });
      }
      return won;
    };

    for (const [s, id] of ids.entries()) {
      await ok(cluster.instances[s % 3] as Instance, Q.create, {
        input: { id, videoSourcePath: `/v/${id}.mp4`, batchSize: 20, threshold: 5 },
      });
    }
    // Batch 0 of every session at once: 27 claims in flight.
    const first = await Promise.all(ids.map((id) => race(id, 0, 0)));
    const won0 = await Promise.all(ids.map((id, s) => judge(id, first[s] as (typeof first)[0])));

    // Completions raced too: idempotent, all succeed with one generationEnded.
    for (const [s, id] of ids.entries()) {
      const done = await Promise.all(
        cluster.instances.map((instance) =>
          post(instance, Q.complete, { streamSessionId: id, batchNumber: 0 }),
        ),
      );
      for (const d of done) expect(d.errors).toBeUndefined();
      const ended = new Set(done.map((d) => d.data?.completeBatch.generationEnded));
      expect(ended.size).toBe(1);
      expect(done[0]?.data?.completeBatch).toMatchObject({ batchNumber: 0, isComplete: true });
      // A player crosses the threshold of the winner's batch: batch 1 is needed next.
      const end = (won0[s] as { endSegment: number }).endSegment;
      await ok(cluster.instances[(s + 1) % 3] as Instance, Q.update, {
        input: { streamSessionId: id, sessionId: 'p', segmentNumber: end - 2, quality: 'Q720P' },
      });
    }
    const second = await Promise.all(
      ids.map((id, s) => race(id, 1, (won0[s] as { endSegment: number }).endSegment + 1)),
    );
    await Promise.all(ids.map((id, s) => judge(id, second[s] as (typeof second)[0])));

    // Batch 1 is being generated. From any instance: batches 0 and 1 are taken, a
    // claim over batch 1 (in a rendition it makes) is CONFLICT, and one with another
    // source path is BAD_USER_INPUT (v1 took any path, and refused every claim here).
    for (const [s, id] of ids.entries()) {
      const start1 = (won0[s] as { endSegment: number }).endSegment + 1;
      const wrong = [
        { batchNumber: 0, startSegment: 100, path: `/v/${id}.mp4`, code: 'CONFLICT' },
        { batchNumber: 1, startSegment: 100, path: `/v/${id}.mp4`, code: 'CONFLICT' },
        { batchNumber: 2, startSegment: start1 + 5, path: `/v/${id}.mp4`, code: 'CONFLICT' },
        { batchNumber: 2, startSegment: 100, path: '/x.mp4', code: 'BAD_USER_INPUT' },
      ];
      const answers = await Promise.all(
        wrong.map((claim, n) =>
          post(cluster.instances[n % 3] as Instance, Q.claim, {
            input: {
              streamSessionId: id,
              batchNumber: claim.batchNumber,
              startSegment: claim.startSegment,
              endSegment: claim.startSegment + 19,
              videoSourcePath: claim.path,
              videoStartOffset: claim.startSegment * 6,
            },
          }),
        ),
      );
      expect(answers.map((r) => r.errors?.[0]?.extensions?.code)).toEqual(
        wrong.map((claim) => claim.code),
      );
    }
    // v2 generates several batches of a session at once: with nothing pending, a claim
    // ahead of need clear of batch 1, raced over the three instances, has one winner.
    const third = await Promise.all(ids.map((id) => race(id, 2, 100)));
    await Promise.all(ids.map((id, s) => judge(id, third[s] as (typeof third)[0])));
  });

  // Last in its block: it stops the instances.
  it('every instance exits 0 on SIGTERM, with subscriptions open on each', async () => {
    await expectCleanExitsWhileSubscribed(cluster);
  });
});

describe('sweeping with three instances running', { timeout: 90_000 }, () => {
  const SESSIONS = 12;
  /** Silent players per session besides the two that move the need. */
  const EXTRA = 20;
  let cluster: Cluster;

  beforeAll(async () => {
    cluster = await startCluster('s', {
      CLIENT_TIMEOUT: '0.3',
      SESSION_IDLE_TIMEOUT: '3',
      BATCH_TIMEOUT: '600',
    });
  }, 60_000);
  afterAll(async () => {
    if (cluster) await deleteKeys(REDIS_URL, cluster.prefix);
  });

  /** What the instances' sweeps did, counted from their logs (one JSON line per event). */
  const swept = () => {
    const total = { clientsExpired: 0, batchesStalled: 0, sessionsEnded: 0 };
    const by: Record<string, number> = {};
    for (const instance of cluster.instances) {
      for (const line of instance.stdout().split('\n')) {
        if (!line.startsWith('{')) continue;
        const { event, reason } = JSON.parse(line) as { event?: string; reason?: string };
        if (event === 'clientExpired') total.clientsExpired++;
        else if (event === 'batchStalled') total.batchesStalled++;
        else if (event === 'streamSessionEnded' && reason === 'IDLE') total.sessionsEnded++;
        else continue;
        by[instance.name] = (by[instance.name] ?? 0) + 1;
      }
    }
    return { total, by };
  };

  it('silent clients expire exactly once and each idle session ends exactly once, heard once on every subscriber and logged once', async () => {
    const [a, b, c] = cluster.instances as [Instance, Instance, Instance];
    const run = randomUUID().slice(0, 8);
    const ids = Array.from({ length: SESSIONS }, (_, s) => `idle-${run}-${s}`);

    const needs = [
      track(wsSubscribe<Result>(wsClient(a), Q.batchNeeded)),
      track(sseSubscribe<Result>(b.url, Q.batchNeeded)),
    ];
    const endings = [
      track(wsSubscribe<Result>(wsClient(a), ENDED)),
      track(sseSubscribe<Result>(b.url, ENDED)),
      track(sseSubscribe<Result>(c.url, ENDED)),
    ];
    // All of them listen before the sessions under test exist.
    await untilListening(cluster, run, endings, needs);
    const sweptBefore = swept().total;
    const heardBefore = endings.map((sub) => sub.events.length);
    const needsBefore = needs.map((sub) => sub.events.length);

    // Each session: EXTRA players at 5..7 (at once, so that it does not idle out while
    // being set up), batch 0 done, then a player at 40 (720p) and, after it, one at 30
    // (480p), all silent from then on. v2 serves both: each makes its own SEEK_AHEAD
    // when it comes (v1 served the furthest only, and moved its need back to 30 when
    // "far" left). They leave in the order they reported: the extras change no need;
    // "far" and "near" leave: their needs are withdrawn (nothing is announced); the
    // session is empty and ends IDLE.
    await Promise.all(
      ids.map(async (id, s) => {
        const at = (k: number) => cluster.instances[(s + k) % 3] as Instance;
        await ok(at(0), Q.create, {
          input: { id, videoSourcePath: `/v/${id}.mp4`, batchSize: 20, threshold: 5 },
        });
        await Promise.all(
          Array.from({ length: EXTRA }, (_, k) =>
            ok(at(k), Q.update, {
              input: {
                streamSessionId: id,
                sessionId: `extra-${k}`,
                segmentNumber: 5 + (k % 3),
                quality: 'Q1080P',
              },
            }),
          ),
        );
        await ok(at(1), Q.claim, { input: batch0(id) });
        await ok(at(2), Q.complete, { streamSessionId: id, batchNumber: 0 });
        await ok(at(0), Q.update, {
          input: { streamSessionId: id, sessionId: 'a-far', segmentNumber: 40, quality: 'Q720P' },
        });
        await ok(at(1), Q.update, {
          input: { streamSessionId: id, sessionId: 'b-near', segmentNumber: 30, quality: 'Q480P' },
        });
      }),
    );

    // Every session ends (IDLE), heard on every subscriber.
    for (const sub of endings) {
      await eventually(() => ids.every((id) => endingsOf(sub).some((e) => e.id === id)), {
        timeout: 20_000,
      }).catch(() => {
        throw new Error(`not every session ended: ${JSON.stringify(endingsOf(sub))}`);
      });
    }
    for (const instance of cluster.instances) {
      const listed = (await ok(instance, Q.sessions, { limit: 100 })).streamSessions as Array<{
        id: string;
      }>;
      expect(listed.filter((s) => ids.includes(s.id))).toEqual([]);
    }

    // A marker after them: what was heard before it is all there is.
    const marker = `marker-${run}`;
    await ok(b, Q.create, { input: { id: marker, videoSourcePath: '/v/marker.mp4' } });
    expect((await ok(c, Q.end, { id: marker })).endStreamSession).toBe(true);
    for (const [k, sub] of endings.entries()) {
      await waitUntil(sub, endingsOf, (e) => e.id === marker, `ending subscriber ${k}: marker`);
      const heard = endingsOf(sub)
        .slice(heardBefore[k])
        .filter((e) => !e.id.startsWith('warm-'));
      expect(heard.at(-1), `ending subscriber ${k}`).toEqual({ id: marker, reason: 'ENDED' });
      const idle = heard.slice(0, -1);
      expect(idle.map((e) => e.id).sort(), `ending subscriber ${k}`).toEqual([...ids].sort());
      expect(new Set(idle.map((e) => e.reason))).toEqual(new Set(['IDLE']));
    }
    for (const [k, sub] of needs.entries()) {
      await waitUntil(
        sub,
        needsOf,
        (n) => n.streamSession.id === marker,
        `need subscriber ${k}: marker`,
      );
      const heard = needsOf(sub)
        .slice(needsBefore[k])
        .map(brief)
        .filter((n) => ids.includes(n.id) || n.id === marker);
      for (const id of ids) {
        expect(
          heard.filter((n) => n.id === id),
          `need subscriber ${k}: ${id}`,
        ).toEqual([
          { id, reason: 'FIRST_BATCH', batchNumber: 0, startSegment: 0, endSegment: 19 },
          { id, reason: 'SEEK_AHEAD', batchNumber: 1, startSegment: 40, endSegment: 59 },
          { id, reason: 'SEEK_AHEAD', batchNumber: 2, startSegment: 30, endSegment: 49 },
        ]);
      }
      expect(heard).toHaveLength(ids.length * 3 + 1);
    }

    // Each instance logs a line per thing its sweeps did ({"event":"clientExpired",...});
    // over the three, the lines add up to that work: EXTRA + 2 clients and 1 ending a session.
    await eventually(() => swept().total.sessionsEnded - sweptBefore.sessionsEnded >= SESSIONS, {
      timeout: 5_000,
    });
    const after = swept();
    expect(
      {
        clientsExpired: after.total.clientsExpired - sweptBefore.clientsExpired,
        sessionsEnded: after.total.sessionsEnded - sweptBefore.sessionsEnded,
        batchesStalled: after.total.batchesStalled - sweptBefore.batchesStalled,
      },
      `sweep events logged per instance: ${JSON.stringify(after.by)}\n${cluster.instances.map((i) => i.stdout()).join('\n')}`,
    ).toEqual({
      clientsExpired: (EXTRA + 2) * SESSIONS,
      sessionsEnded: SESSIONS,
      batchesStalled: 0,
    });
  });

  // Last in its block: it stops the instances.
  it('every instance exits 0 on SIGTERM, with subscriptions open on each', async () => {
    await expectCleanExitsWhileSubscribed(cluster);
  });
});
