/**
 * Memory and scale, in one process with the coordinator used directly (no
 * GraphQL, no sockets): run with --expose-gc; the heap is read after two
 * forced collections. Sends its figures to the parent as its `ready` message.
 *
 * 1. Heap bytes per client position: 10 clients in each of S = N/10 sessions;
 *    heap after the N clients joined minus heap after the S sessions alone.
 *    Client ids are 36-character UUID-shaped strings (what a player sends).
 * 2. Update throughput through coordinator.updateClientPosition at 100 clients
 *    (10 sessions) and at N clients (S sessions), one update in flight
 *    (BENCH_MEMORY_IN_FLIGHT; more in flight only lets the 10 sessions of the
 *    small case reuse their busy mutexes, which the large case cannot), each
 *    moving a client within the first batch window, so both cases do the same
 *    work per update and announce nothing new (only the size differs).
 * 3. Lifecycle: from an empty coordinator, S sessions and N clients join; the
 *    ManualClock passes the client timeout and coordinator.sweep() expires
 *    them all, then the idle timeout and the sweeps end the sessions; the
 *    heap must come back within 10% of where it started.
 */
import { performance } from 'node:perf_hooks';
import { defaultConfig } from '../src/config.js';
import { ManualClock } from '../src/state/clock.js';
import { BatchCoordinator } from '../src/state/coordinator.js';
import { LocalEventBus } from '../src/state/events.js';
import { MemoryStore } from '../src/state/memory-store.js';
import type { Quality } from '../src/state/model.js';
import { settings } from './lib/settings.js';

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc');

function heap(): number {
  gc!();
  gc!();
  return process.memoryUsage().heapUsed;
}

const QUALITIES: Quality[] = ['1080p', '720p', '480p'];
const CLIENTS_PER_SESSION = 10;
const IN_FLIGHT = Number(process.env.BENCH_MEMORY_IN_FLIGHT ?? 1);
const N = settings.memoryClients;
const S = Math.max(1, Math.floor(N / CLIENTS_PER_SESSION));
const clock = new ManualClock(Date.UTC(2026, 0, 1));

/** UUID-shaped and unique per index, made on demand so that only the store holds them. */
const clientId = (i: number) =>
  `${i.toString(16).padStart(8, '0')}-7e57-4b1d-9c0f-${((i * 2654435761) >>> 0).toString(16).padStart(12, '0')}`;
const sessionId = (s: number) => `stream-${s.toString(16).padStart(8, '0')}`;

function makeCoordinator() {
  const events = new LocalEventBus();
  const store = new MemoryStore(defaultConfig, events);
  const coordinator = new BatchCoordinator({
    store,
    events,
    clock,
    defaults: defaultConfig,
  });
  return { store, coordinator };
}

async function createSessions(coordinator: BatchCoordinator, sessions: number) {
  for (let s = 0; s < sessions; s++) {
    await coordinator.createStreamSession({ id: sessionId(s), videoSourcePath: `/media/${s}.mkv` });
  }
}

async function join(coordinator: BatchCoordinator, sessions: number, clients: number) {
  for (let i = 0; i < clients; i++) {
    await coordinator.updateClientPosition({
      streamSessionId: sessionId(i % sessions),
      sessionId: clientId(i),
      segmentNumber: i % 15,
      quality: QUALITIES[i % 3]!,
    });
  }
}

/**
 * Updates per second over `seconds` (after a 1 s warm-up), IN_FLIGHT at a time.
 * The store answers in microtasks, so the workers watch the clock themselves
 * (a timer would never get its turn).
 */
async function throughput(
  coordinator: BatchCoordinator,
  sessions: number,
  clients: number,
  seconds: number,
) {
  let n = 0;
  const run = async (ms: number) => {
    const deadline = performance.now() + ms;
    let done = 0;
    const worker = async () => {
      while (performance.now() < deadline) {
        const i = n++;
        // A stride coprime with `clients` visits every client, not in memory order.
        const c = (i * 7919) % clients;
        await coordinator.updateClientPosition({
          streamSessionId: sessionId(c % sessions),
          sessionId: clientId(c),
          segmentNumber: (i * 31 + c) % 15,
          quality: QUALITIES[c % 3]!,
        });
        done++;
      }
    };
    const t0 = performance.now();
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    return done / ((performance.now() - t0) / 1000);
  };
  await run(1_000);
  return run(seconds * 1_000);
}

async function sweepAll(coordinator: BatchCoordinator) {
  const total = { clientsExpired: 0, batchesStalled: 0, sessionsEnded: 0 };
  for (;;) {
    const report = await coordinator.sweep();
    total.clientsExpired += report.clientsExpired;
    total.batchesStalled += report.batchesStalled;
    total.sessionsEnded += report.sessionsEnded;
    if (report.clientsExpired + report.batchesStalled + report.sessionsEnded === 0) return total;
  }
}

const seconds = settings.seconds;

// 1. Bytes per client position, and throughput at N clients on the same coordinator.
let large: ReturnType<typeof makeCoordinator> | null = makeCoordinator();
await createSessions(large.coordinator, S);
const withSessions = heap();
await join(large.coordinator, S, N);
const withClients = heap();
if (large.store.clientCount !== N)
  throw new Error(`expected ${N} clients, got ${large.store.clientCount}`);
const bytesPerClient = (withClients - withSessions) / N;
const atLarge = await throughput(large.coordinator, S, N, seconds);
large = null;

// 2. Throughput at 100 clients.
const small = makeCoordinator();
await createSessions(small.coordinator, 10);
await join(small.coordinator, 10, 100);
const atSmall = await throughput(small.coordinator, 10, 100, seconds);

// 3. Lifecycle.
let life: ReturnType<typeof makeCoordinator> | null = makeCoordinator();
const start = heap();
await createSessions(life.coordinator, S);
const sessionsOnly = heap();
await join(life.coordinator, S, N);
const peak = heap();
clock.advance(defaultConfig.clientTimeout + 1);
const expired = await sweepAll(life.coordinator);
const clientsGone = heap();
clock.advance(defaultConfig.idleTimeout + 1);
const ended = await sweepAll(life.coordinator);
const end = heap();
const leftover = {
  sessions: life.store.size,
  clients: life.store.clientCount,
  locks: life.coordinator.changesInFlight,
};
life = null;

process.send?.({
  type: 'ready',
  result: {
    clients: N,
    sessions: S,
    clientIds: '36-character UUID-shaped strings',
    bytesPerClient: Math.round(bytesPerClient),
    heapWithSessionsBytes: withSessions,
    heapWithClientsBytes: withClients,
    throughput: {
      how: `in-process, coordinator.updateClientPosition, ${IN_FLIGHT} in flight, one core`,
      at100: Math.round(atSmall),
      atN: Math.round(atLarge),
      ratio: atLarge / atSmall,
    },
    lifecycle: {
      startBytes: start,
      sessionsOnlyBytes: sessionsOnly,
      peakBytes: peak,
      clientsGoneBytes: clientsGone,
      endBytes: end,
      expired: expired.clientsExpired,
      ended: ended.sessionsEnded,
      leftover,
      /** end / start - 1 */
      endVsStart: end / start - 1,
      /** after the clients expired, against the same sessions before they joined */
      clientsGoneVsSessionsOnly: clientsGone / sessionsOnly - 1,
    },
  },
});
