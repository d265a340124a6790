/**
 * Ours: the real service from buildApp (real store, coordinator, event bus,
 * schema, yoga and graphql-ws) in the configuration users run, defaultConfig:
 * access control on (its admin and encoder tokens generated at start and
 * handed to the parent in the ready message, players with their own
 * issueClientToken tokens) and the per-player rate limit on. Two settings
 * differ: client and idle timeouts of an hour, so that clients do not expire
 * (and the sweeper does not run a mass expiry on the shared core) while the
 * other targets take their turn.
 *
 * BENCH_AUTH=off serves the configuration earlier benchmarks measured:
 * authEnabled false (every caller is admin), no per-player rate limit, and
 * the per-token WebSocket caps raised (every caller is the same admin "token").
 * BENCH_RAISE_WS_CAPS=1 raises those caps in the default configuration too
 * (the latency phase's 100 subscribers share one token).
 * Stream sessions bench-0 … bench-(S-1) are created at start.
 *
 * With BENCH_SRC=path it serves that copy of src/ instead (for bench/ab.ts).
 * With BENCH_MARK_NEEDS=1 it also notes, per announced need, the instant the
 * store decided it (epoch milliseconds, sub-millisecond), for the latency
 * phase's server-side figure; src is not changed for that, the store
 * instance's method is wrapped here.
 */
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { pino } from 'pino';
import { streamSessionId, updateInput } from '../lib/operation.js';
import { serveParent } from '../lib/processes.js';
import { settings } from '../lib/settings.js';

// BENCH_SRC: another copy of src/ to serve instead (bench/ab.ts compares two).
const src = process.env.BENCH_SRC
  ? pathToFileURL(resolve(process.env.BENCH_SRC)).href
  : new URL('../../src', import.meta.url).href;
const { defaultConfig } = (await import(
  `${src}/config.js`
)) as typeof import('../../src/config.js');
const { buildApp } = (await import(
  `${src}/server/app.js`
)) as typeof import('../../src/server/app.js');

const authOff = process.env.BENCH_AUTH === 'off';
const raisedWsCaps = { wsMaxConnectionsPerToken: 100_000, wsMaxSubscriptionsPerToken: 100_000 };
const config = {
  ...defaultConfig,
  clientTimeout: 3_600_000,
  idleTimeout: 3_600_000,
  ...(authOff ? { authEnabled: false, positionUpdatesPerSecond: 0, ...raisedWsCaps } : {}),
  ...(process.env.BENCH_RAISE_WS_CAPS === '1' ? raisedWsCaps : {}),
};
// Warnings and errors only, on stderr (stdout is left to the parent).
const logger = pino({ level: 'warn' }, pino.destination(2));
const app = buildApp({ config, logger });

/**
 * The (first) need a store change announced: a list in `announced` since
 * contract v2, one need or null there before, `announcement` before 9ed2b02;
 * reading all three keeps this wrapper working on copies of src/ from before
 * (bench/ab.ts with BENCH_SRC).
 */
function announcedOf(change: object): { batchNumber: number } | null {
  type Need = { batchNumber: number };
  const c = change as { announced?: Need | readonly Need[] | null; announcement?: Need | null };
  const announced = c.announced ?? c.announcement ?? null;
  if (Array.isArray(announced)) return (announced as readonly Need[])[0] ?? null;
  return announced as Need | null;
}

const marks = new Map<string, number>();
if (process.env.BENCH_MARK_NEEDS === '1') {
  const store = app.store;
  const update = store.updateClientPosition.bind(store);
  // As synchronous as the store it wraps: the embedded store's changes take no lock.
  store.updateClientPosition = (input, now) => {
    const mark = (change: Awaited<ReturnType<typeof update>>) => {
      const announced = announcedOf(change);
      if (announced !== null) {
        const key = `${input.streamSessionId}:${announced.batchNumber}`;
        marks.set(key, performance.timeOrigin + performance.now());
      }
      return change;
    };
    const change = update(input, now);
    return change instanceof Promise ? change.then(mark) : mark(change);
  };
}

for (let s = 0; s < settings.sessions; s++) {
  await app.coordinator.createStreamSession({
    id: streamSessionId(s),
    videoSourcePath: `/media/${streamSessionId(s)}.mkv`,
    startSegment: 0,
  });
}
// BENCH_SEED=1: every client of the layout joins before the load (bench/scale.ts).
if (process.env.BENCH_SEED === '1') {
  const clients = settings.sessions * settings.clientsPerSession;
  for (let n = 0; n < clients; n++) {
    const input = updateInput(n, settings.sessions, settings.clientsPerSession);
    await app.coordinator.updateClientPosition({
      ...input,
      quality: input.quality === 'Q1080P' ? '1080p' : input.quality === 'Q720P' ? '720p' : '480p',
    });
  }
}
const { url } = await app.start(0, '127.0.0.1');
process.send?.({
  type: 'ready',
  url,
  wsUrl: url.replace(/^http/, 'ws'),
  auth: authOff ? 'off' : 'on',
  adminToken: app.generatedTokens.adminToken,
  encoderToken: app.generatedTokens.encoderToken,
});

/** The outcomes (ok or an error code) of updateClientPosition so far, from /metrics' counter. */
async function positionOutcomes(): Promise<Record<string, number>> {
  const outcomes: Record<string, number> = {};
  for (const line of (await app.metrics.text()).split('\n')) {
    const match =
      /^hbc_graphql_operations_total\{.*operation="updateClientPosition".*outcome="([^"]+)".*\} (\d+)/.exec(
        line,
      );
    if (match) outcomes[match[1]!] = (outcomes[match[1]!] ?? 0) + Number(match[2]);
  }
  return outcomes;
}

serveParent(
  {
    // Through the store interface (older copies of src/ have it too).
    stats: async () => ({
      sessions: await app.store.countStreamSessions(),
      clients: await app.store.countClients(),
      subscriptions: app.coordinator.subscriptionCount,
      rssBytes: process.memoryUsage().rss,
      positionOutcomes: await positionOutcomes(),
    }),
    positionOutcomes,
    /** The decision instants noted for `keys` (stream session id:batch number). */
    marks: ({ keys }: { keys: string[] }) => {
      const found = keys.map((key) => marks.get(key) ?? null);
      for (const key of keys) marks.delete(key);
      return found;
    },
  },
  () => app.stop(),
);
