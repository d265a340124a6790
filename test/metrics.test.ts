/**
 * Issue 7, metrics: /metrics is Prometheus text, and its counters and
 * gauges follow what the service does. Runs once per store (the gauges read
 * the store: Redis answers them with its own counts).
 *
 * Time is a ManualClock and the sweeps are made by hand right after moving
 * it, as in test/lifecycle.test.ts, so stalls and expiries happen exactly
 * when a test says.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/state/clock.js';
import {
  eventually,
  Q,
  sessionDriver,
  sseSubscribe,
  startTestServer,
  type TestServer,
  wsRequest,
  wsSubscribe,
} from './fixtures.js';
import { parsePrometheus, type Scrape } from './prometheus.js';

const BATCH_TIMEOUT = 60_000;
const CLIENT_TIMEOUT = 30_000;
const IDLE_TIMEOUT = 90_000;

let clock: ManualClock;
let server: TestServer;

beforeEach(async () => {
  clock = new ManualClock();
  server = await startTestServer(
    { batchTimeout: BATCH_TIMEOUT, clientTimeout: CLIENT_TIMEOUT, idleTimeout: IDLE_TIMEOUT },
    clock,
  );
});
afterEach(() => server.stop());

async function scrape(target: TestServer = server): Promise<Scrape> {
  const response = await fetch(`${target.baseUrl}/metrics`);
  expect(response.status).toBe(200);
  expect(response.headers.get('content-type')).toBe('text/plain; version=0.0.4; charset=utf-8');
  return parsePrometheus(await response.text());
}

async function ok(query: string, variables: Record<string, unknown> = {}): Promise<any> {
  const response = await server.gql(query, variables);
  expect(response.errors).toBeUndefined();
  return response.data;
}

const session = sessionDriver(() => server, { videoSourcePath: (id) => `/v/${id}.mp4` });
const create = (id: string) => session.create(id, { batchSize: 20, threshold: 5 });
const position = (streamSessionId: string, sessionId: string, segmentNumber: number) =>
  session.move(streamSessionId, sessionId, segmentNumber);
const claim = (streamSessionId: string, batchNumber: number, startSegment: number) =>
  session.claim(streamSessionId, batchNumber, startSegment, startSegment + 19);
const complete = session.complete;

/** Moves the clock and sweeps in the same turn, so no other sweep sees the new time first. */
function advanceAndSweep(ms: number) {
  clock.advance(ms);
  return server.app.coordinator.sweep();
}

const op = (type: string, operation: string, outcome = 'ok') => ({ type, operation, outcome });
const OPS = 'hbc_graphql_operations_total';
const OP_COUNT = 'hbc_graphql_operation_duration_seconds_count';

/** What moved between two scrapes, for one series. */
function moved(before: Scrape, after: Scrape, name: string, labels: Record<string, string> = {}) {
  return after.sum(name, labels) - before.sum(name, labels);
}

describe('/metrics', () => {
  it('is Prometheus text with every metric the README names, and the process metrics', async () => {
    const metrics = await scrape();
    const expected: Record<string, string> = {
      hbc_graphql_operations_total: 'counter',
      hbc_graphql_operation_duration_seconds: 'histogram',
      hbc_stream_sessions: 'gauge',
      hbc_clients: 'gauge',
      hbc_store_ready: 'gauge',
      hbc_subscriptions: 'gauge',
      hbc_websocket_connections: 'gauge',
      hbc_websocket_subscriptions: 'gauge',
      hbc_batches_needed_total: 'counter',
      hbc_batches_claimed_total: 'counter',
      hbc_batches_completed_total: 'counter',
      hbc_batches_stalled_total: 'counter',
      hbc_clients_expired_total: 'counter',
      hbc_stream_sessions_created_total: 'counter',
      hbc_stream_sessions_ended_total: 'counter',
      hbc_batch_generation_seconds: 'histogram',
      hbc_batch_needed_delivery_seconds: 'histogram',
      // Default process metrics, on the same page.
      process_cpu_user_seconds_total: 'counter',
      process_resident_memory_bytes: 'gauge',
      nodejs_eventloop_lag_seconds: 'gauge',
      nodejs_heap_size_used_bytes: 'gauge',
    };
    for (const [name, type] of Object.entries(expected)) {
      expect(metrics.type(name), name).toBe(type);
    }
    expect(metrics.families.find((f) => f.name === 'hbc_clients')?.help).toMatch(/Clients/);
    // Labelled counters show every label value at 0 before it first happens.
    for (const reason of ['FIRST_BATCH', 'APPROACHING_END', 'SEEK_AHEAD', 'STALLED']) {
      expect(metrics.value('hbc_batches_needed_total', { reason }), reason).toBe(0);
    }
    for (const reason of ['ENDED', 'IDLE']) {
      expect(metrics.value('hbc_stream_sessions_ended_total', { reason }), reason).toBe(0);
    }
    expect(metrics.value('hbc_store_ready')).toBe(1);
  });

  it('counts and times each operation by type, root field and outcome, over HTTP and WebSocket', async () => {
    const before = await scrape();
    await create('m');
    await position('m', 'a', 1);
    await position('m', 'b', 2);
    const missing = await server.gql(Q.update, {
      input: { streamSessionId: 'nope', sessionId: 'a', segmentNumber: 1, quality: 'Q720P' },
    });
    expect(missing.errors?.[0]?.extensions?.code).toBe('NOT_FOUND');
    await ok(Q.sessions);
    const ws = server.wsClient();
    const overWs = await wsRequest(ws, Q.update, {
      input: { streamSessionId: 'm', sessionId: 'c', segmentNumber: 3, quality: 'Q480P' },
    });
    expect(overWs.errors).toBeUndefined();
    const conflict = await wsRequest(ws, Q.claim, {
      input: {
        streamSessionId: 'm',
        batchNumber: 7,
        startSegment: 0,
        endSegment: 19,
        videoSourcePath: '/v/m.mp4',
        videoStartOffset: 0,
      },
    });
    expect(conflict.errors?.[0]?.extensions?.code).toBe('CONFLICT');
    const after = await scrape();

    const update = op('mutation', 'updateClientPosition');
    expect(moved(before, after, OPS, update)).toBe(3);
    expect(moved(before, after, OP_COUNT, update)).toBe(3);
    expect(after.sum('hbc_graphql_operation_duration_seconds_sum', update)).toBeGreaterThan(0);
    const notFound = op('mutation', 'updateClientPosition', 'NOT_FOUND');
    expect(moved(before, after, OPS, notFound)).toBe(1);
    expect(moved(before, after, OP_COUNT, notFound)).toBe(1);
    expect(moved(before, after, OPS, op('mutation', 'createStreamSession'))).toBe(1);
    expect(moved(before, after, OPS, op('query', 'streamSessions'))).toBe(1);
    expect(moved(before, after, OPS, op('mutation', 'setCurrentBatch', 'CONFLICT'))).toBe(1);
    // Nothing else was counted: 7 operations in all.
    expect(moved(before, after, OPS)).toBe(7);
  });

  it('counts a subscription once, when it starts', async () => {
    const before = await scrape();
    const needs = wsSubscribe(server.wsClient(), Q.batchNeeded);
    await create('s');
    await needs.waitFor(1);
    await create('t');
    await needs.waitFor(2);
    const after = await scrape();
    expect(moved(before, after, OPS, op('subscription', 'batchNeeded'))).toBe(1);
    needs.stop();
  });

  it('counts batches needed, claimed and completed, and sessions created and ended', async () => {
    const before = await scrape();
    await create('b'); // FIRST_BATCH
    await position('b', 'a', 0);
    await claim('b', 0, 0);
    clock.advance(30_000);
    await complete('b', 0);
    await complete('b', 0); // idempotent: not a second completion
    await position('b', 'a', 15); // within the threshold of 19: APPROACHING_END
    await position('b', 'a', 15); // a heartbeat announces nothing
    await ok(Q.end, { id: 'b' });
    const after = await scrape();

    expect(moved(before, after, 'hbc_stream_sessions_created_total')).toBe(1);
    const needed = (reason: string) => moved(before, after, 'hbc_batches_needed_total', { reason });
    expect(needed('FIRST_BATCH')).toBe(1);
    expect(needed('APPROACHING_END')).toBe(1);
    expect(needed('SEEK_AHEAD')).toBe(0);
    expect(moved(before, after, 'hbc_batches_claimed_total')).toBe(1);
    expect(moved(before, after, 'hbc_batches_completed_total')).toBe(1);
    expect(moved(before, after, 'hbc_batch_generation_seconds_count')).toBe(1);
    expect(moved(before, after, 'hbc_batch_generation_seconds_sum')).toBe(30);
    expect(after.value('hbc_batch_generation_seconds_bucket', { le: '30' })).toBe(1);
    expect(after.value('hbc_batch_generation_seconds_bucket', { le: '10' })).toBe(0);
    expect(moved(before, after, 'hbc_stream_sessions_ended_total', { reason: 'ENDED' })).toBe(1);
    expect(moved(before, after, 'hbc_stream_sessions_ended_total', { reason: 'IDLE' })).toBe(0);
  });

  it('counts a client expired, a batch stalled and a session ended idle, as the sweeper acts', async () => {
    await create('x');
    await position('x', 'quiet', 3);
    await claim('x', 0, 0);
    const before = await scrape();

    await advanceAndSweep(CLIENT_TIMEOUT); // the client is silent: it leaves
    const expired = await scrape();
    expect(moved(before, expired, 'hbc_clients_expired_total')).toBe(1);
    expect(moved(before, expired, 'hbc_batches_stalled_total')).toBe(0);

    await advanceAndSweep(BATCH_TIMEOUT - CLIENT_TIMEOUT); // the claim times out
    const stalled = await scrape();
    expect(moved(before, stalled, 'hbc_batches_stalled_total')).toBe(1);
    expect(moved(before, stalled, 'hbc_batches_needed_total', { reason: 'STALLED' })).toBe(1);
    expect(moved(before, stalled, 'hbc_clients_expired_total')).toBe(1);

    await advanceAndSweep(IDLE_TIMEOUT); // no clients since the expiry: the session ends
    const idle = await scrape();
    expect(moved(before, idle, 'hbc_stream_sessions_ended_total', { reason: 'IDLE' })).toBe(1);
    expect(idle.value('hbc_stream_sessions')).toBe(0);
  });

  it('gauges live sessions and clients from the store, and open connections and subscriptions', async () => {
    await create('g1');
    await create('g2');
    await position('g1', 'a', 1);
    await position('g1', 'b', 1);
    await position('g2', 'c', 1);
    const ws = server.wsClient();
    const needs = wsSubscribe(ws, Q.batchNeeded);
    const ended = wsSubscribe(ws, 'subscription { streamSessionEnded { id reason } }');
    const sse = sseSubscribe(server.url, Q.batchNeeded);
    await sse.ready;
    await needs.waitFor(2); // both sessions' FIRST_BATCH, replayed
    await eventually(() => server.app.coordinator.subscriptionCount === 3);

    const busy = await scrape();
    expect(busy.value('hbc_stream_sessions')).toBe(2);
    expect(busy.value('hbc_clients')).toBe(3);
    expect(busy.value('hbc_subscriptions')).toBe(3);
    expect(busy.value('hbc_websocket_connections')).toBe(1);
    expect(busy.value('hbc_websocket_subscriptions')).toBe(2);

    await ok(Q.remove, { streamSessionId: 'g1', sessionId: 'a' });
    await ok(Q.end, { id: 'g2' });
    needs.stop();
    sse.stop();
    // The server hears of the two ends in its own time.
    await eventually(async () => {
      const now = await scrape();
      return now.value('hbc_subscriptions') === 1 && now.value('hbc_websocket_subscriptions') === 1;
    });
    const quieter = await scrape();
    expect(quieter.value('hbc_stream_sessions')).toBe(1);
    expect(quieter.value('hbc_clients')).toBe(1);
    expect(quieter.value('hbc_subscriptions')).toBe(1);
    expect(quieter.value('hbc_websocket_subscriptions')).toBe(1);

    ended.stop();
    await ws.dispose();
    await eventually(async () => (await scrape()).value('hbc_websocket_connections') === 0);
    expect((await scrape()).value('hbc_websocket_subscriptions')).toBe(0);
  });

  it('observes the delivery of each live need to each subscriber, not the replay a new one gets', async () => {
    const first = wsSubscribe(server.wsClient(), Q.batchNeeded);
    const second = sseSubscribe(server.url, Q.batchNeeded);
    await second.ready;
    await eventually(() => server.app.coordinator.subscriptionCount === 2);
    const before = await scrape();

    await create('d'); // FIRST_BATCH, live to both
    await first.waitFor(1);
    await second.waitFor(1);
    const delivered = await scrape();
    expect(moved(before, delivered, 'hbc_batch_needed_delivery_seconds_count')).toBe(2);
    // The clock did not move between the decision and the hand-over.
    expect(moved(before, delivered, 'hbc_batch_needed_delivery_seconds_sum')).toBe(0);

    const late = wsSubscribe(server.wsClient(), Q.batchNeeded);
    await late.waitFor(1); // the pending FIRST_BATCH, replayed
    const replayed = await scrape();
    expect(moved(before, replayed, 'hbc_batch_needed_delivery_seconds_count')).toBe(2);
    for (const sub of [first, second, late]) sub.stop();
  });

  it('leaves a gauge NaN when the store cannot answer, and still serves the rest', async () => {
    const store = server.app.store;
    const countClients = store.countClients.bind(store);
    store.countClients = () => Promise.reject(new Error('store away'));
    try {
      const metrics = await scrape();
      expect(metrics.value('hbc_clients')).toBeNaN();
      expect(metrics.value('hbc_stream_sessions')).toBe(0);
    } finally {
      store.countClients = countClients;
    }
    expect((await scrape()).value('hbc_clients')).toBe(0);
  });

  it('keeps each app its own counts, two apps in one process', async () => {
    const other = await startTestServer();
    try {
      await create('mine');
      const theirs = await scrape(other);
      const mine = await scrape();
      expect(mine.value('hbc_stream_sessions_created_total')).toBe(1);
      expect(theirs.value('hbc_stream_sessions_created_total')).toBe(0);
      expect(theirs.sum(OPS)).toBe(0);
    } finally {
      await other.stop();
    }
  });
});
