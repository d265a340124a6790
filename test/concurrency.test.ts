/**
 * Concurrency: many connections at once (20 graphql-ws sockets, dozens of
 * parallel HTTP requests) against one real server. Each test fires its
 * operations together with Promise.all and checks invariants that hold
 * whatever the interleaving: final positions, one announcement per need,
 * one winner per claim, idempotent completion, one winner per create, and a
 * consistent session after a mix of everything.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type Collected,
  eventually,
  type GraphQLResponse,
  Q,
  sseSubscribe,
  startTestServer,
  type TestServer,
  wsRequest,
  wsSubscribe,
} from './fixtures.js';
import { seededRandom } from './seeded-random.js';

type Vars = Record<string, unknown>;
type Call = (query: string, variables?: Vars) => Promise<GraphQLResponse<any>>;
interface Transport {
  readonly name: string;
  readonly call: Call;
}
type NeedEvent = GraphQLResponse<{ batchNeeded: any }>;

const WS_CONNECTIONS = 20;
const HTTP_ENCODERS = 10;
const QUALITIES = ['Q1080P', 'Q720P', 'Q480P'] as const;

let server: TestServer;
/** WS_CONNECTIONS graphql-ws clients, each on its own socket. */
let sockets: Transport[];
let http: Transport;

beforeAll(async () => {
  // No batch may stall, no client expire and no session idle out while a test runs.
  server = await startTestServer({
    batchTimeout: 600_000,
    clientTimeout: 600_000,
    idleTimeout: 600_000,
  });
  http = { name: 'http', call: (query, variables) => server.gql(query, variables) };
  sockets = Array.from({ length: WS_CONNECTIONS }, (_, i) => {
    const client = server.wsClient();
    return { name: `ws${i}`, call: (query, variables) => wsCall(client, query, variables) };
  });
  // Open every socket now: the tests race operations, not handshakes.
  const opened = await Promise.all(sockets.map((s) => s.call('{ __typename }')));
  for (const r of opened) expect(r.errors).toBeUndefined();
});
afterAll(() => server.stop());

let counter = 0;
const uid = (prefix: string) =>
  `cc-${prefix}-${++counter}-${Math.random().toString(36).slice(2, 8)}`;
const codeOf = (r: GraphQLResponse<unknown>) => r.errors?.[0]?.extensions?.code;

/** wsRequest, failing readably when the socket closes instead of answering. */
async function wsCall(
  client: ReturnType<TestServer['wsClient']>,
  query: string,
  variables?: Vars,
): Promise<GraphQLResponse<any>> {
  try {
    return await wsRequest(client, query, variables);
  } catch (error) {
    const close = error as { code?: number; reason?: string };
    throw new Error(`no answer: socket closed (${close?.code ?? '?'} ${close?.reason ?? error})`);
  }
}

/** Two WebSocket connections for every HTTP client: client i's transport. */
const transportFor = (i: number): Transport => (i % 3 === 2 ? http : sockets[i % WS_CONNECTIONS]!);

/** 20 encoders on their own sockets, then HTTP_ENCODERS over HTTP. */
const encoders = (): Transport[] => [
  ...sockets,
  ...Array.from({ length: HTTP_ENCODERS }, () => http),
];

const rng = seededRandom;
const pick = <T>(rand: () => number, items: readonly T[]): T =>
  items[Math.floor(rand() * items.length)]!;

async function createSession(id: string, extra: Vars = {}) {
  const r = await http.call(Q.create, {
    input: {
      id,
      videoSourcePath: `/videos/${id}.mp4`,
      segmentDuration: 6,
      batchSize: 20,
      threshold: 5,
      ...extra,
    },
  });
  expect(r.errors, JSON.stringify(r.errors)).toBeUndefined();
  return r.data!.createStreamSession;
}

async function getSession(id: string, via: Transport = http) {
  const r = await via.call(Q.session, { id });
  expect(r.errors, JSON.stringify(r.errors)).toBeUndefined();
  return r.data!.streamSession;
}

const claimInput = (
  streamSessionId: string,
  batchNumber: number,
  startSegment: number,
  batchSize = 20,
  videoSourcePath = `/videos/${streamSessionId}.mp4`,
) => ({
  streamSessionId,
  batchNumber,
  startSegment,
  endSegment: startSegment + batchSize - 1,
  videoSourcePath,
  videoStartOffset: startSegment * 6,
});

async function claimAndComplete(id: string, batchNumber: number, startSegment: number) {
  const claimed = await http.call(Q.claim, { input: claimInput(id, batchNumber, startSegment) });
  expect(claimed.errors, JSON.stringify(claimed.errors)).toBeUndefined();
  const done = await http.call(Q.complete, { streamSessionId: id, batchNumber });
  expect(done.errors, JSON.stringify(done.errors)).toBeUndefined();
}

/** What is wrong in one snapshot of a session, judged by itself alone. */
function inconsistencies(s: any): string[] {
  const problems: string[] = [];
  const positions: Array<{ sessionId: string; segmentNumber: number }> = s.clientPositions;
  const segments = positions.map((c) => c.segmentNumber);
  const max = segments.length === 0 ? null : Math.max(...segments);
  const min = segments.length === 0 ? null : Math.min(...segments);
  if (s.furthestSegment !== max)
    problems.push(`furthestSegment ${s.furthestSegment} != max ${max}`);
  if (s.slowestSegment !== min) problems.push(`slowestSegment ${s.slowestSegment} != min ${min}`);
  for (let i = 1; i < positions.length; i++) {
    if (!(positions[i - 1]!.sessionId < positions[i]!.sessionId)) {
      problems.push(`clientPositions not strictly ordered at ${positions[i]!.sessionId}`);
    }
  }
  const b = s.currentBatch;
  const should =
    b?.isComplete === true && max !== null && b.endSegment - max <= (s.threshold as number);
  if (s.shouldGenerateNextBatch !== should) {
    problems.push(`shouldGenerateNextBatch ${s.shouldGenerateNextBatch}, expected ${should}`);
  }
  if (b) {
    if (b.isComplete !== (b.generationEnded !== null)) {
      problems.push(
        `batch ${b.batchNumber}: isComplete ${b.isComplete} but generationEnded ${b.generationEnded}`,
      );
    }
    if (b.startSegment > b.endSegment) problems.push(`batch ${b.batchNumber}: start > end`);
  }
  return problems;
}

/** The batchNeeded events of one session, as [reason, batchNumber, startSegment]. */
const needsOf = (events: NeedEvent[], id: string) =>
  events
    .map((e) => e.data?.batchNeeded)
    .filter((n) => n?.streamSession.id === id)
    .map((n) => [n.reason, n.batchNumber, n.startSegment]);

async function subscriptionsReach(count: number) {
  await eventually(() => server.app.coordinator.subscriptionCount === count, { timeout: 10_000 });
}

/** Resolves once the clock shows a later millisecond than when it was called. */
async function nextMillisecond(): Promise<void> {
  const now = Date.now();
  await eventually(() => Date.now() > now);
}

describe('concurrency', () => {
  it('keeps every client at its last reported segment after 2,000 concurrent updates', async () => {
    const CLIENTS = 200;
    const UPDATES = 10;
    const rand = rng(1);
    const sessionIds = ['a', 'b', 'c'].map((x) => uid(`pos-${x}`));
    await Promise.all(sessionIds.map((id) => createSession(id)));
    const clientsBefore = await server.app.store.countClients();

    const plans = Array.from({ length: CLIENTS }, (_, i) => {
      let segment = Math.floor(rand() * 60);
      return {
        streamSessionId: sessionIds[i % sessionIds.length]!,
        sessionId: `player-${String(i).padStart(3, '0')}`,
        transport: transportFor(i),
        // Mostly forward, sometimes a seek back.
        updates: Array.from({ length: UPDATES }, () => {
          segment = Math.max(0, segment + Math.floor(rand() * 10) - 3);
          return { segmentNumber: segment, quality: pick(rand, QUALITIES) };
        }),
      };
    });

    // Each client's updates in order on its own chain; all chains at once.
    const wrong: string[] = [];
    await Promise.all(
      plans.map(async ({ streamSessionId, sessionId, transport, updates }) => {
        for (const update of updates) {
          const r = await transport.call(Q.update, {
            input: { streamSessionId, sessionId, ...update },
          });
          const got = r.data?.updateClientPosition;
          if (
            r.errors ||
            got?.sessionId !== sessionId ||
            got.segmentNumber !== update.segmentNumber ||
            got.quality !== update.quality
          ) {
            wrong.push(`${transport.name} ${sessionId}: ${JSON.stringify(r)}`);
          }
        }
      }),
    );
    expect(wrong).toEqual([]);

    for (const id of sessionIds) {
      const mine = plans.filter((p) => p.streamSessionId === id);
      const last = mine
        .map((p) => ({ sessionId: p.sessionId, ...p.updates.at(-1)! }))
        .sort((a, b) => (a.sessionId < b.sessionId ? -1 : 1));
      const view = await getSession(id);
      expect(view.clientPositions).toHaveLength(mine.length);
      expect(
        view.clientPositions.map((c: any) => ({
          sessionId: c.sessionId,
          segmentNumber: c.segmentNumber,
          quality: c.quality,
        })),
      ).toEqual(last);
      const segments = last.map((c) => c.segmentNumber);
      expect(view.furthestSegment).toBe(Math.max(...segments));
      expect(view.slowestSegment).toBe(Math.min(...segments));
      expect(view.shouldGenerateNextBatch).toBe(false);
      expect(inconsistencies(view)).toEqual([]);
    }
    // The store's own indexes agree: one record per client, no lock left behind.
    expect((await server.app.store.countClients()) - clientsBefore).toBe(CLIENTS);
    await eventually(() => server.app.coordinator.changesInFlight === 0);
  });

  it('announces APPROACHING_END exactly once per session to every subscriber while hundreds of clients cross the threshold', async () => {
    const CLIENTS = 300;
    const UPDATES = 4;
    const rand = rng(2);
    const [a, b] = [uid('need-a'), uid('need-b')] as const;
    for (const id of [a, b]) {
      await createSession(id); // batchSize 20, threshold 5: batch 0 is 0-19, needs at 14
      await claimAndComplete(id, 0, 0);
    }
    const base = server.app.coordinator.subscriptionCount;
    // No client yet: nothing is pending, so nothing is replayed to these.
    const subs: Array<[string, Collected<NeedEvent>, string[]]> = [];
    const wsA = wsSubscribe<NeedEvent>(server.wsClient(), Q.batchNeeded, { streamSessionId: a });
    const sseA = sseSubscribe<NeedEvent>(server.url, Q.batchNeeded, { streamSessionId: a });
    const wsAll = wsSubscribe<NeedEvent>(server.wsClient(), Q.batchNeeded, {});
    const sseAll = sseSubscribe<NeedEvent>(server.url, Q.batchNeeded, {});
    await Promise.all([sseA.ready, sseAll.ready]);
    subs.push(['ws(a)', wsA, [a]], ['sse(a)', sseA, [a]], ['ws(*)', wsAll, [a, b]]);
    subs.push(['sse(*)', sseAll, [a, b]]);
    await subscriptionsReach(base + 4);

    // Every client moves forward only and stays within batch 0, so the need,
    // once there, stays pending and stays the same need.
    const plans = Array.from({ length: CLIENTS }, (_, i) => {
      let segment = Math.floor(rand() * 10);
      const crosses = i % 5 === 0; // in both sessions
      const updates = Array.from({ length: UPDATES }, (_, u) => {
        segment =
          u === UPDATES - 1 && crosses
            ? 14 + Math.floor(rand() * 6)
            : Math.min(13, segment + Math.floor(rand() * 3));
        return segment;
      });
      return {
        streamSessionId: i % 2 === 0 ? a : b,
        sessionId: `viewer-${i}`,
        transport: transportFor(i),
        updates,
      };
    });

    // Two more subscribers join in the middle of the burst: they must get the
    // need once too, by replay or live, never both.
    let late: Array<Collected<NeedEvent>> = [];
    let done = 0;
    const joinMidway = () => {
      const wsLateA = wsSubscribe<NeedEvent>(server.wsClient(), Q.batchNeeded, {
        streamSessionId: a,
      });
      const sseLateB = sseSubscribe<NeedEvent>(server.url, Q.batchNeeded, { streamSessionId: b });
      late = [wsLateA, sseLateB];
      subs.push(['late ws(a)', wsLateA, [a]], ['late sse(b)', sseLateB, [b]]);
    };
    const errors: string[] = [];
    await Promise.all(
      plans.map(async ({ streamSessionId, sessionId, transport, updates }) => {
        for (const segmentNumber of updates) {
          const r = await transport.call(Q.update, {
            input: { streamSessionId, sessionId, segmentNumber, quality: 'Q720P' },
          });
          if (r.errors) errors.push(JSON.stringify(r.errors));
          if (++done === (CLIENTS * UPDATES) / 2) joinMidway();
        }
      }),
    );
    expect(errors).toEqual([]);
    expect(late).toHaveLength(2);
    await subscriptionsReach(base + 6);

    for (const id of [a, b]) {
      const expected = Math.max(
        ...plans.filter((p) => p.streamSessionId === id).map((p) => p.updates.at(-1)!),
      );
      const view = await getSession(id);
      expect(view.furthestSegment).toBe(expected);
      expect(view.shouldGenerateNextBatch).toBe(true);
      // A marker after the burst: batch 1 done, a viewer near its end needs batch 2.
      await claimAndComplete(id, 1, 20);
      // v2: in a rendition batch 1 was made in (the need's, 720p), else QUALITY_CHANGE.
      const marker = await http.call(Q.update, {
        input: { streamSessionId: id, sessionId: 'marker', segmentNumber: 36, quality: 'Q720P' },
      });
      expect(marker.errors).toBeUndefined();
    }
    // Each subscriber's events arrive in publish order: once the marker is there,
    // every announcement of the burst is there too.
    await eventually(() =>
      subs.every(([, c, ids]) => ids.every((id) => needsOf(c.events, id).some(([, n]) => n === 2))),
    );
    for (const [name, c, ids] of subs) {
      for (const id of ids) {
        expect(needsOf(c.events, id), `${name} for ${id}`).toEqual([
          ['APPROACHING_END', 1, 20],
          ['APPROACHING_END', 2, 40],
        ]);
        const need = c.events
          .map((e) => e.data?.batchNeeded)
          .find((n) => n?.batchNumber === 1 && n.streamSession.id === id);
        expect(need.endSegment).toBe(39);
        expect(need.furthestSegment).toBeGreaterThanOrEqual(14);
        expect(need.furthestSegment).toBeLessThanOrEqual(19);
        expect(need.qualities).toEqual(['Q720P']);
      }
    }
    for (const [, c] of subs) c.stop();
    await subscriptionsReach(base);
  });

  it('lets exactly one of 30 racing encoders claim each batch, round after round, on 4 sessions at once', async () => {
    const SESSIONS = 4;
    const ROUNDS = 5;
    const contenders = encoders();
    const ids = Array.from({ length: SESSIONS }, (_, i) => uid(`claim-${i}`));
    await Promise.all(ids.map((id) => createSession(id)));

    await Promise.all(
      ids.map(async (id) => {
        for (let n = 0; n < ROUNDS; n++) {
          const where = `${id} batch ${n}`;
          const start = n * 40;
          // Each encoder names itself in endSegment (start + k), so the stored batch tells
          // who won (v2: videoSourcePath must be the session's).
          const input = (k: number, batchNumber = n) => claimInput(id, batchNumber, start, k + 1);
          const results = await Promise.all(
            contenders.map((t, k) => t.call(Q.claim, { input: input(k) })),
          );
          const winners = results.flatMap((r, k) => (r.errors ? [] : [k]));
          expect(winners, where).toHaveLength(1);
          const winner = winners[0]!;
          const losers = results.filter((_, k) => k !== winner).map(codeOf);
          expect(losers, where).toEqual(Array(contenders.length - 1).fill('CONFLICT'));
          const won = results[winner]!.data!.setCurrentBatch;
          expect(won.endSegment).toBe(start + winner);
          expect((await getSession(id)).currentBatch, where).toEqual(won);

          // While it is being generated, nobody may claim it or the next one.
          const again = await Promise.all(
            contenders.map((t, k) => t.call(Q.claim, { input: input(k, n + (k % 2)) })),
          );
          expect(again.map(codeOf), where).toEqual(Array(contenders.length).fill('CONFLICT'));
          expect((await getSession(id)).currentBatch, where).toEqual(won);

          const done = await contenders[winner]!.call(Q.complete, {
            streamSessionId: id,
            batchNumber: n,
          });
          expect(done.errors, where).toBeUndefined();
        }
      }),
    );
    for (const id of ids) {
      const view = await getSession(id);
      expect(view.currentBatch.batchNumber).toBe(ROUNDS - 1);
      expect(view.currentBatch.isComplete).toBe(true);
    }
  });

  it('completes a batch idempotently under 30 racing completeBatch calls, racing claims of the next', async () => {
    const SESSIONS = 3;
    const ROUNDS = 3;
    const contenders = encoders();
    const ids = Array.from({ length: SESSIONS }, (_, i) => uid(`complete-${i}`));
    await Promise.all(ids.map((id) => createSession(id)));

    await Promise.all(
      ids.map(async (id) => {
        let previousEnded: string | null = null;
        for (let n = 0; n < ROUNDS; n++) {
          const where = `${id} batch ${n}`;
          // Claims of batch n race late completions of batch n - 1.
          const claims = contenders.map((t) =>
            t.call(Q.claim, { input: claimInput(id, n, n * 20) }),
          );
          const stale =
            n === 0
              ? []
              : sockets
                  .slice(0, 10)
                  .map((t) => t.call(Q.complete, { streamSessionId: id, batchNumber: n - 1 }));
          const claimed = await Promise.all(claims);
          const claimWinners = claimed.filter((r) => !r.errors);
          expect(claimWinners, where).toHaveLength(1);
          expect(claimed.filter((r) => r.errors).map(codeOf), where).toEqual(
            Array(contenders.length - 1).fill('CONFLICT'),
          );
          for (const r of await Promise.all(stale)) {
            // Before the new claim: the same completed batch; after: not the current batch.
            if (r.errors) expect(codeOf(r), where).toBe('CONFLICT');
            else expect(r.data!.completeBatch.generationEnded, where).toBe(previousEnded);
          }
          const started = claimWinners[0]!.data!.setCurrentBatch.generationStarted;

          // Completions in three waves, all in flight at once, each on a later millisecond
          // than the last (so a completion that set generationEnded again would show), the
          // third once the batch is complete; and completions of a batch that is not current.
          const calls: Array<Promise<GraphQLResponse<any>>> = [];
          const wrong: Array<Promise<GraphQLResponse<any>>> = [];
          for (const wave of [0, 1, 2]) {
            if (wave === 2) await Promise.race(calls);
            if (wave > 0) await nextMillisecond();
            for (const t of contenders.filter((_, k) => k % 3 === wave)) {
              calls.push(t.call(Q.complete, { streamSessionId: id, batchNumber: n }));
            }
            wrong.push(http.call(Q.complete, { streamSessionId: id, batchNumber: n + 1 }));
            wrong.push(
              sockets[wave]!.call(Q.complete, { streamSessionId: id, batchNumber: n + 1 }),
            );
          }
          const completed = await Promise.all(calls);
          expect(
            completed.filter((r) => r.errors).map((r) => r.errors),
            where,
          ).toEqual([]);
          const ended = new Set(completed.map((r) => r.data!.completeBatch.generationEnded));
          expect(ended.size, where).toBe(1);
          const [generationEnded] = [...ended];
          expect(generationEnded, where).not.toBeNull();
          for (const r of completed) {
            expect(r.data!.completeBatch, where).toEqual({
              batchNumber: n,
              isComplete: true,
              generationStarted: started,
              generationEnded,
            });
          }
          expect((await Promise.all(wrong)).map(codeOf), where).toEqual(Array(6).fill('CONFLICT'));
          const stored = (await getSession(id)).currentBatch;
          expect(stored, where).toMatchObject({
            batchNumber: n,
            isComplete: true,
            generationEnded,
          });
          previousEnded = generationEnded as string;
        }
      }),
    );
  });

  it('lets exactly one of 30 concurrent creates with the same id succeed, and one of 30 ends', async () => {
    const IDS = 5;
    const ANONYMOUS = 40;
    const contenders = encoders();
    const base = server.app.coordinator.subscriptionCount;
    const all = wsSubscribe<NeedEvent>(server.wsClient(), Q.batchNeeded, {});
    await subscriptionsReach(base + 1);
    const ids = Array.from({ length: IDS }, (_, i) => uid(`create-${i}`));

    const raceCreates = () =>
      Promise.all(
        ids.map(async (id) => {
          const results = await Promise.all(
            contenders.map((t, k) =>
              t.call(Q.create, { input: { id, videoSourcePath: `/videos/${id}/${k}.mp4` } }),
            ),
          );
          const winners = results.flatMap((r, k) => (r.errors ? [] : [k]));
          expect(winners, id).toHaveLength(1);
          expect(results.filter((r) => r.errors).map(codeOf), id).toEqual(
            Array(contenders.length - 1).fill('CONFLICT'),
          );
          const view = await getSession(id);
          expect(view.videoSourcePath).toBe(`/videos/${id}/${winners[0]}.mp4`);
          expect(view.createdAt).toBe(results[winners[0]!]!.data!.createStreamSession.createdAt);
        }),
      );
    const [anonymous] = await Promise.all([
      Promise.all(
        Array.from({ length: ANONYMOUS }, (_, i) =>
          transportFor(i).call(Q.create, { input: { videoSourcePath: `/videos/anon-${i}.mp4` } }),
        ),
      ),
      raceCreates(),
    ]);
    expect(anonymous.filter((r) => r.errors).map((r) => r.errors)).toEqual([]);
    const anonymousIds = anonymous.map((r) => r.data!.createStreamSession.id as string);
    expect(new Set(anonymousIds).size).toBe(ANONYMOUS);

    const listed = await http.call(Q.sessions, { limit: 1000 });
    const listedIds: string[] = listed.data!.streamSessions.map((s: any) => s.id);
    for (const id of [...ids, ...anonymousIds]) {
      expect(
        listedIds.filter((x) => x === id),
        id,
      ).toHaveLength(1);
    }

    // One FIRST_BATCH per session created, seen once the marker's has arrived.
    const marker = uid('create-marker');
    await createSession(marker);
    await eventually(() => needsOf(all.events, marker).length > 0, { timeout: 10_000 });
    for (const id of [...ids, ...anonymousIds]) {
      expect(needsOf(all.events, id), id).toEqual([['FIRST_BATCH', 0, 0]]);
    }
    all.stop();

    // Racing ends: exactly one true per id; then creates race again on the freed ids.
    await Promise.all(
      ids.map(async (id) => {
        const ended = await Promise.all(contenders.map((t) => t.call(Q.end, { id })));
        expect(
          ended.filter((r) => r.errors).map((r) => r.errors),
          id,
        ).toEqual([]);
        expect(
          ended.filter((r) => r.data!.endStreamSession === true),
          id,
        ).toHaveLength(1);
        expect(await getSession(id)).toBeNull();
      }),
    );
    await raceCreates();
    await subscriptionsReach(base);
  });

  it('stays consistent under concurrent updates, removals, claims, completions and queries', async () => {
    const PLAYERS = 80;
    const OPS = 12;
    const ENCODER_LOOPS = 8;
    const ENCODER_STEPS = 20;
    const QUERY_LOOPS = 4;
    const QUERY_STEPS = 25;
    const BATCH = 10;
    const rand = rng(6);
    const id = uid('chaos');
    await createSession(id, { batchSize: BATCH, threshold: 3 });
    const clientsBefore = await server.app.store.countClients();
    const base = server.app.coordinator.subscriptionCount;
    const needs = wsSubscribe<NeedEvent>(server.wsClient(), Q.batchNeeded, { streamSessionId: id });
    await subscriptionsReach(base + 1);

    const problems: string[] = [];
    const unexpected: string[] = [];

    // Players: each one's operations in order on one chain; what it ends as is known.
    const expected = new Map<string, { segmentNumber: number; quality: string }>();
    const players = Array.from({ length: PLAYERS }, (_, i) => {
      const sessionId = `chaos-${String(i).padStart(2, '0')}`;
      let segment = Math.floor(rand() * 30);
      let present = false;
      const ops = Array.from({ length: OPS }, () => {
        if (present && rand() < 0.2) {
          present = false;
          return { kind: 'remove' as const, was: true };
        }
        if (!present && rand() < 0.1) return { kind: 'remove' as const, was: false };
        present = true;
        segment = Math.max(0, segment + Math.floor(rand() * 8) - 2);
        return { kind: 'update' as const, segmentNumber: segment, quality: pick(rand, QUALITIES) };
      });
      const last = ops.at(-1)!;
      if (last.kind === 'update') {
        expected.set(sessionId, { segmentNumber: last.segmentNumber, quality: last.quality });
      }
      return { sessionId, ops, transport: transportFor(i) };
    });
    const playing = players.map(async ({ sessionId, ops, transport }) => {
      for (const op of ops) {
        if (op.kind === 'update') {
          const r = await transport.call(Q.update, {
            input: {
              streamSessionId: id,
              sessionId,
              segmentNumber: op.segmentNumber,
              quality: op.quality,
            },
          });
          if (r.errors || r.data?.updateClientPosition.segmentNumber !== op.segmentNumber) {
            unexpected.push(`update ${sessionId}: ${JSON.stringify(r)}`);
          }
        } else {
          const r = await transport.call(Q.remove, { streamSessionId: id, sessionId });
          if (r.errors || r.data?.removeClient !== op.was) {
            unexpected.push(`remove ${sessionId} (expected ${op.was}): ${JSON.stringify(r)}`);
          }
        }
      }
    });

    // Encoders: read, then claim the need announced last or complete the current batch
    // (v2: a claim takes an announced need's number and a range containing its start).
    const claimed: number[] = [];
    const endedAt = new Map<number, string>();
    const encoding = Array.from({ length: ENCODER_LOOPS }, async (_, e) => {
      const t = e % 2 === 0 ? sockets[e]! : http;
      for (let step = 0; step < ENCODER_STEPS; step++) {
        const read = await t.call(Q.session, { id });
        const batch = read.data?.streamSession?.currentBatch;
        if (read.errors) unexpected.push(`read: ${JSON.stringify(read.errors)}`);
        if (batch == null || batch.isComplete) {
          const need = needs.events.at(-1)?.data?.batchNeeded;
          if (need == null) continue;
          const { batchNumber: n, startSegment: start, endSegment: end } = need;
          const r = await t.call(Q.claim, { input: claimInput(id, n, start, end - start + 1) });
          if (!r.errors) claimed.push(r.data!.setCurrentBatch.batchNumber);
          else if (codeOf(r) !== 'CONFLICT') unexpected.push(`claim: ${JSON.stringify(r)}`);
        } else {
          const n = batch.batchNumber;
          const r = await t.call(Q.complete, { streamSessionId: id, batchNumber: n });
          if (r.errors) {
            if (codeOf(r) !== 'CONFLICT') unexpected.push(`complete: ${JSON.stringify(r)}`);
            continue;
          }
          const ended = r.data!.completeBatch.generationEnded;
          if (!r.data!.completeBatch.isComplete || ended === null) {
            unexpected.push(`complete ${n} not complete: ${JSON.stringify(r)}`);
          }
          if (endedAt.has(n) && endedAt.get(n) !== ended) {
            problems.push(`batch ${n} ended at ${endedAt.get(n)} and at ${ended}`);
          }
          endedAt.set(n, ended);
        }
      }
    });

    // Dashboards: every snapshot must be consistent in itself.
    const querying = Array.from({ length: QUERY_LOOPS }, async (_, q) => {
      const t = q % 2 === 0 ? sockets[10 + q]! : http;
      for (let step = 0; step < QUERY_STEPS; step++) {
        const [one, list] = await Promise.all([
          t.call(Q.session, { id }),
          t.call(Q.sessions, { limit: 1000 }),
        ]);
        if (one.errors || list.errors) {
          unexpected.push(`query: ${JSON.stringify([one.errors, list.errors])}`);
          continue;
        }
        for (const p of inconsistencies(one.data!.streamSession)) problems.push(`snapshot: ${p}`);
        if (!list.data!.streamSessions.some((s: any) => s.id === id)) {
          problems.push('session missing from streamSessions');
        }
      }
    });

    await Promise.all([...playing, ...encoding, ...querying]);
    expect(unexpected).toEqual([]);
    expect(problems).toEqual([]);

    // Every batch number was claimed once, none twice (v2: not all in order: a need
    // withdrawn before its claim leaves its number unused).
    const numbers = [...claimed].sort((x, y) => x - y);
    expect(numbers.length).toBeGreaterThan(0);
    expect(new Set(numbers).size).toBe(numbers.length);

    const final = await getSession(id);
    expect(inconsistencies(final)).toEqual([]);
    // v2: the batch claimed most recently, among those claimed.
    expect(numbers).toContain(final.currentBatch.batchNumber);
    if (final.currentBatch.isComplete) {
      expect(final.currentBatch.generationEnded).toBe(endedAt.get(final.currentBatch.batchNumber));
    }
    const want = [...expected.entries()]
      .sort(([x], [y]) => (x < y ? -1 : 1))
      .map(([sessionId, v]) => ({ sessionId, ...v }));
    expect(
      final.clientPositions.map((c: any) => ({
        sessionId: c.sessionId,
        segmentNumber: c.segmentNumber,
        quality: c.quality,
      })),
    ).toEqual(want);
    expect((await server.app.store.countClients()) - clientsBefore).toBe(want.length);

    // Every announcement was well formed.
    const events = needs.events.map((e) => e.data?.batchNeeded);
    expect(events.length).toBeGreaterThan(0);
    let announcedHigh = -1;
    events.forEach((n) => {
      expect(n.streamSession.id).toBe(id);
      // v2: cut short before the next covered range of its renditions.
      expect(n.endSegment - n.startSegment + 1).toBeGreaterThanOrEqual(1);
      expect(n.endSegment - n.startSegment + 1).toBeLessThanOrEqual(BATCH);
      expect(n.videoStartOffset).toBe(n.startSegment * 6);
      // v2: several needs may be pending, so numbers run ahead of claims, one at a time.
      expect(n.batchNumber).toBeLessThanOrEqual(Math.max(numbers.at(-1)!, announcedHigh) + 1);
      announcedHigh = Math.max(announcedHigh, n.batchNumber);
      // (v1 also checked that no announcement repeats the previous one. In v2 a
      // need whose client moves away before a claim is withdrawn, and the same
      // need, same number and start, is announced again when a client needs it
      // again: a random walk does that. "Once per need" is checked where the
      // moves are known: test/stream-session.test.ts and the model test.)
    });
    needs.stop();

    const health = await fetch(`${server.baseUrl}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    expect((await fetch(`${server.baseUrl}/readyz`)).status).toBe(200);
    await eventually(() => server.app.coordinator.changesInFlight === 0);
    await subscriptionsReach(base);
  });
});
