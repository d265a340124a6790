/**
 * Contract v2 under concurrency (issue 12): 20 clients of one session seek
 * at random at once, half over HTTP and half over graphql-ws, while 3
 * encoders, each with its own batchNeeded subscription on its own socket,
 * claim every need announced (its number and range) and complete each batch
 * they win after a short random delay. Once the clients stop and the
 * encoders have drained what was needed:
 *
 * - no need was lost: nothing is pending, nothing is being made, and every
 *   client is served by what is made (its range runs to the last segment or
 *   has more than `threshold` segments ahead of it);
 * - no range was made twice: the batches of one rendition do not overlap
 *   (nothing was released, so none may);
 * - exactly one encoder won each batch number it claimed, the others got
 *   CONFLICT; and nothing answered with another error.
 *
 * V2_CONCURRENCY_SEED=n replays the clients' moves of one run.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  eventually,
  type GraphQLResponse,
  sleep,
  startTestServer,
  type TestServer,
  wsRequest,
  wsSubscribe,
} from './fixtures.js';
import { seededRandom } from './seeded-random.js';

type Quality = 'Q1080P' | 'Q720P' | 'Q480P';
const QUALITIES: readonly Quality[] = ['Q1080P', 'Q720P', 'Q480P'];

const CLIENTS = 20;
const MOVES = 15;
const ENCODERS = 3;
const BATCH = 10;
const THRESHOLD = 3;
const SEGMENT = 6;
/** Segments 0-149: the video's end is in reach of the seeks. */
const LAST = 149;
const SEED = Number(process.env.V2_CONCURRENCY_SEED ?? 20_261_201);

interface Need {
  reason: string;
  batchNumber: number;
  startSegment: number;
  endSegment: number;
  videoSourcePath: string;
  videoStartOffset: number;
  qualities: Quality[];
  isLastBatch: boolean;
}
type NeedEvent = GraphQLResponse<{ batchNeeded: Need }>;
interface Batch {
  batchNumber: number;
  startSegment: number;
  endSegment: number;
  isComplete: boolean;
  qualities: Quality[];
  isLastBatch: boolean;
}
interface View {
  lastSegment: number | null;
  threshold: number;
  batches: Batch[];
  coverage: Array<{ quality: Quality; startSegment: number; endSegment: number }>;
  clientPositions: Array<{ sessionId: string; segmentNumber: number; quality: Quality }>;
}

const Q = {
  needs: `subscription Needs($streamSessionId: ID) {
    batchNeeded(streamSessionId: $streamSessionId) {
      reason batchNumber startSegment endSegment videoSourcePath videoStartOffset qualities
      isLastBatch
    }
  }`,
  create: `mutation Create($input: CreateStreamSessionInput!) { createStreamSession(input: $input) { id } }`,
  update: `mutation Update($input: UpdateClientPositionInput!) {
    updateClientPosition(input: $input) { sessionId segmentNumber quality }
  }`,
  claim: `mutation Claim($input: SetCurrentBatchInput!) {
    setCurrentBatch(input: $input) { batchNumber startSegment endSegment qualities }
  }`,
  complete: `mutation Complete($streamSessionId: ID!, $batchNumber: Int!) {
    completeBatch(streamSessionId: $streamSessionId, batchNumber: $batchNumber) { isComplete }
  }`,
  session: `query Session($id: ID!) {
    streamSession(id: $id) {
      lastSegment threshold
      batches { batchNumber startSegment endSegment isComplete qualities isLastBatch }
      coverage { quality startSegment endSegment }
      clientPositions { sessionId segmentNumber quality }
    }
  }`,
} as const;

let server: TestServer;
beforeAll(async () => {
  // No batch may stall, no client expire and no session idle out while the test runs.
  server = await startTestServer({
    batchTimeout: 600_000,
    clientTimeout: 600_000,
    idleTimeout: 600_000,
  });
});
afterAll(() => server.stop());

const codeOf = (r: GraphQLResponse<unknown>) => r.errors?.[0]?.extensions?.code;
type Call = (query: string, variables: Record<string, unknown>) => Promise<GraphQLResponse<any>>;

/** wsRequest, failing readably when the socket closes instead of answering. */
function overSocket(client: ReturnType<TestServer['wsClient']>): Call {
  return async (query, variables) => {
    try {
      return await wsRequest(client, query, variables);
    } catch (error) {
      const close = error as { code?: number; reason?: string };
      throw new Error(`no answer: socket closed (${close?.code ?? '?'} ${close?.reason ?? error})`);
    }
  };
}

/** Why a client at s in q is not served by what is made (null when it is). */
function unserved(view: View, s: number, q: Quality): string | null {
  const range = view.coverage.find(
    (r) => r.quality === q && r.startSegment <= s && s <= r.endSegment,
  );
  if (range === undefined) return 'not made';
  if (range.endSegment === view.lastSegment || range.endSegment - s > view.threshold) return null;
  return `made up to ${range.endSegment} only`;
}

describe('contract v2 under concurrency', () => {
  it(`serves ${CLIENTS} clients seeking at once while ${ENCODERS} encoders race for every need`, async () => {
    const id = `v2cc-${Math.random().toString(36).slice(2, 10)}`;
    const path = `/videos/${id}.mp4`;
    const rand = seededRandom(SEED);
    const unexpected: string[] = [];
    /** Per batch number: claims won and refused with CONFLICT. */
    const claims = new Map<number, { won: number; conflict: number }>();
    const tally = (n: number) => {
      const t = claims.get(n) ?? { won: 0, conflict: 0 };
      claims.set(n, t);
      return t;
    };

    // Encoders first, so that every one hears every need from FIRST_BATCH on.
    const base = server.app.coordinator.subscriptionCount;
    let stopping = false;
    const encoders = Array.from({ length: ENCODERS }, (_, k) => {
      const socket = server.wsClient();
      const call = overSocket(socket);
      const needs = wsSubscribe<NeedEvent>(socket, Q.needs, { streamSessionId: id });
      const jobs: Array<Promise<void>> = [];
      const loop = (async () => {
        for (let next = 0; ; ) {
          if (next >= needs.events.length) {
            if (stopping) break;
            try {
              await needs.waitFor(next + 1, 100);
            } catch (error) {
              if (!(error instanceof Error && error.message.startsWith('timed out'))) {
                unexpected.push(`encoder ${k} subscription: ${JSON.stringify(error)}`);
                break;
              }
            }
            continue;
          }
          const event = needs.events[next++]!;
          const need = event.data?.batchNeeded;
          if (event.errors || need == null) {
            unexpected.push(`encoder ${k} need: ${JSON.stringify(event)}`);
            continue;
          }
          const r = await call(Q.claim, {
            input: {
              streamSessionId: id,
              batchNumber: need.batchNumber,
              startSegment: need.startSegment,
              endSegment: need.endSegment,
              videoSourcePath: need.videoSourcePath,
              videoStartOffset: need.videoStartOffset,
            },
          });
          if (r.errors) {
            if (codeOf(r) === 'CONFLICT') tally(need.batchNumber).conflict++;
            else unexpected.push(`encoder ${k} claim: ${JSON.stringify(r.errors)}`);
            continue;
          }
          tally(need.batchNumber).won++;
          // The batch takes a while to make; meanwhile the encoder takes the next need.
          const delay = 5 + Math.floor(Math.random() * 40);
          jobs.push(
            sleep(delay).then(async () => {
              const done = await call(Q.complete, {
                streamSessionId: id,
                batchNumber: need.batchNumber,
              });
              if (done.errors || done.data?.completeBatch.isComplete !== true) {
                unexpected.push(`encoder ${k} complete: ${JSON.stringify(done)}`);
              }
            }),
          );
        }
        await Promise.all(jobs);
      })();
      return { needs, loop };
    });
    await eventually(
      () => unexpected.length > 0 || server.app.coordinator.subscriptionCount === base + ENCODERS,
      { timeout: 10_000 },
    );
    expect(unexpected, 'the encoders subscribed').toEqual([]);

    const created = await server.gql(Q.create, {
      input: {
        id,
        videoSourcePath: path,
        segmentDuration: SEGMENT,
        batchSize: BATCH,
        threshold: THRESHOLD,
        durationSeconds: (LAST + 1) * SEGMENT,
      },
    });
    expect(created.errors, JSON.stringify(created.errors)).toBeUndefined();

    // Clients: mostly playing on, often seeking anywhere, now and then switching rendition.
    const plans = Array.from({ length: CLIENTS }, (_, i) => {
      let segment = Math.floor(rand() * (LAST + 1));
      let quality = QUALITIES[Math.floor(rand() * QUALITIES.length)]!;
      const moves = Array.from({ length: MOVES }, () => {
        const r = rand();
        if (r < 0.5) segment = Math.min(LAST, segment + 1 + Math.floor(rand() * 3));
        else if (r < 0.8) segment = Math.floor(rand() * (LAST + 1));
        else quality = QUALITIES[Math.floor(rand() * QUALITIES.length)]!;
        return { segmentNumber: segment, quality, pause: Math.floor(rand() * 20) };
      });
      const call: Call =
        i % 2 === 0 ? (query, v) => server.gql(query, v) : overSocket(server.wsClient());
      return { sessionId: `viewer-${String(i).padStart(2, '0')}`, moves, call };
    });
    await Promise.all(
      plans.map(async ({ sessionId, moves, call }) => {
        for (const { segmentNumber, quality, pause } of moves) {
          const r = await call(Q.update, {
            input: { streamSessionId: id, sessionId, segmentNumber, quality },
          });
          if (r.errors || r.data?.updateClientPosition.segmentNumber !== segmentNumber) {
            unexpected.push(`update ${sessionId}: ${JSON.stringify(r)}`);
          }
          // Paced as players report, so that encoders work between the moves.
          await sleep(pause);
        }
      }),
    );
    expect(unexpected).toEqual([]);

    // The clients stand still; the encoders drain what they need.
    const read = async (): Promise<View> => {
      const r = await server.gql(Q.session, { id });
      expect(r.errors, JSON.stringify(r.errors)).toBeUndefined();
      return r.data!.streamSession as View;
    };
    await read(); // fails at once, not after the drain's timeout, if the view lacks v2's fields
    const final = await eventually(
      async () => {
        const view = await read();
        const pending = await server.app.store.pendingNeeds(id);
        const making = view.batches.filter((b) => !b.isComplete).map((b) => b.batchNumber);
        const waiting = view.clientPositions
          .map((c) => [c, unserved(view, c.segmentNumber, c.quality)] as const)
          .filter(([, why]) => why !== null)
          .map(([c, why]) => `${c.sessionId} at ${c.segmentNumber} ${c.quality}: ${why}`);
        expect(
          { pending: pending.map((n) => `${n.reason} ${n.batchNumber}`), making, waiting },
          'no need lost: nothing pending, nothing being made, every client served',
        ).toEqual({ pending: [], making: [], waiting: [] });
        return view;
      },
      { timeout: 30_000 },
    );
    // Every encoder heard every need.
    await eventually(() =>
      encoders.every((e) => e.needs.events.length === encoders[0]!.needs.events.length),
    );
    stopping = true;
    await Promise.all(encoders.map((e) => e.loop));
    for (const e of encoders) e.needs.stop();
    expect(unexpected).toEqual([]);

    // Every encoder was told the same needs.
    const told = encoders.map((e) =>
      e.needs.events
        .map((event) => {
          const n = event.data!.batchNeeded;
          return `${n.reason} ${n.batchNumber}@${n.startSegment}-${n.endSegment} ${n.qualities}`;
        })
        .sort(),
    );
    for (const other of told.slice(1)) expect(other).toEqual(told[0]);
    const needs = encoders[0]!.needs.events.map((e) => e.data!.batchNeeded);
    expect(needs.length).toBeGreaterThan(CLIENTS / 2);

    // Exactly one winner per batch number; the others lost with CONFLICT.
    const won = [...claims].filter(([, t]) => t.won > 0).map(([n]) => n);
    const twice = [...claims].filter(([, t]) => t.won > 1);
    expect(twice, 'batch numbers won more than once').toEqual([]);
    expect(final.batches.map((b) => b.batchNumber)).toEqual([...won].sort((a, b) => a - b));
    const untried = needs.filter((n) => {
      const t = claims.get(n.batchNumber);
      return t === undefined || t.won + t.conflict < ENCODERS;
    });
    expect(untried, 'needs some encoder did not try to claim').toEqual([]);

    // Nothing past the end, no rendition made twice.
    for (const x of [...needs, ...final.batches]) {
      expect(x.endSegment, JSON.stringify(x)).toBeLessThanOrEqual(LAST);
      expect(x.isLastBatch, JSON.stringify(x)).toBe(x.endSegment === LAST);
      expect(x.qualities.length, JSON.stringify(x)).toBeGreaterThan(0);
    }
    const overlapping: string[] = [];
    for (const q of QUALITIES) {
      const mine = final.batches
        .filter((b) => b.qualities.includes(q))
        .sort((a, b) => a.startSegment - b.startSegment);
      mine.forEach((b, i) => {
        const previous = mine[i - 1];
        if (previous !== undefined && b.startSegment <= previous.endSegment) {
          overlapping.push(
            `${q}: batch ${previous.batchNumber} (${previous.startSegment}-${previous.endSegment}) and ${b.batchNumber} (${b.startSegment}-${b.endSegment})`,
          );
        }
      });
    }
    expect(overlapping, 'segments made twice').toEqual([]);
    await eventually(() => server.app.coordinator.subscriptionCount === base, { timeout: 10_000 });
  });
});
