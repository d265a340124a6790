/**
 * Event latency: how long after a position update makes a batch needed each
 * subscriber receives its batchNeeded, for 1, 10 and 100 subscribers over
 * WebSocket and over SSE, while a background load sends updates at a fixed
 * rate from another process and an encoder keeps the background sessions'
 * batches moving.
 *
 * Per sample, on the stream session of the configuration: the driver claims
 * and completes batch i (not timed), then sends the update that moves its
 * viewer within the threshold of batch i's end, and waits until every
 * subscriber has batch i+1.
 * - client-side: from just before that update is written to the socket to
 *   each subscriber's receipt (includes the update's own HTTP request);
 * - server-side: from the instant the store decided the need (noted inside
 *   the server process, see servers/ours.ts) to each receipt, on the epoch
 *   clock both processes share (performance.timeOrigin + now()).
 *
 * In the default configuration, as the rest: the session is created with the
 * admin token, batches claimed and completed with the encoder token, the
 * subscribers subscribe with the encoder token (100 subscriptions on one
 * token: the per-token WebSocket caps are raised for this server), and the
 * threshold-crossing update is sent by one of VIEWERS players with their own
 * tokens in turn, so that no player nears the per-player rate limit.
 */
import http from 'node:http';
import { setPriority } from 'node:os';
import { performance } from 'node:perf_hooks';
import { createParser } from 'eventsource-parser';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { assertNoRefusals, type Ours, positionOutcomes, startOurs } from './lib/ours.js';
import { BENCH_DIR, type Child, startChild } from './lib/processes.js';
import { settings } from './lib/settings.js';
import { LatencyHistogram } from './lib/stats.js';
import { type Encoder, startEncoder } from './load/encoder.js';
import { mintPlayerTokens } from './load/tokens.js';

export const SUBSCRIBER_COUNTS = [1, 10, 100] as const;
export const TRANSPORTS = ['ws', 'sse'] as const;

const CREATE = `mutation($input: CreateStreamSessionInput!) { createStreamSession(input: $input) { id } }`;
const CLAIM = `mutation($input: SetCurrentBatchInput!) { setCurrentBatch(input: $input) { batchNumber } }`;
const COMPLETE = `mutation($id: ID!, $n: Int!) { completeBatch(streamSessionId: $id, batchNumber: $n) { isComplete } }`;
const UPDATE = `mutation($input: UpdateClientPositionInput!) { updateClientPosition(input: $input) { segmentNumber } }`;
const NEEDED = `subscription($id: ID) { batchNeeded(streamSessionId: $id) {
  streamSession { id } reason batchNumber startSegment endSegment
} }`;

const BATCH = 20;
const THRESHOLD = 5;
/**
 * Players taking turns at the threshold-crossing update: a sample takes 2 ms
 * at the very least, so each player sends at most 5 a second (the limit is 10).
 */
const VIEWERS = 100;
const epochNow = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

const agent = new http.Agent({ keepAlive: true, maxSockets: 2 });

function post(
  url: string,
  query: string,
  variables: Record<string, unknown>,
  authorization?: string,
): Promise<any> {
  const body = JSON.stringify({ query, variables });
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: 'POST',
        agent,
        headers: {
          'content-type': 'application/json',
          accept: 'application/json',
          'content-length': Buffer.byteLength(body),
          ...(authorization === undefined ? {} : { authorization }),
        },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk) => {
          text += chunk;
        });
        res.on('end', () => {
          const reply = JSON.parse(text);
          if (reply.errors) reject(new Error(`${query}: ${JSON.stringify(reply.errors)}`));
          else resolve(reply.data);
        });
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

/** Collects, per expected batch number, the epoch instants subscribers received it. */
class Arrivals {
  private expected = -1;
  private times: number[] = [];
  private wanted = 0;
  private resolve: ((times: number[]) => void) | null = null;

  expect(batchNumber: number, count: number, timeoutMs: number): Promise<number[] | null> {
    this.expected = batchNumber;
    this.times = [];
    this.wanted = count;
    return Promise.race([
      new Promise<number[]>((resolve) => {
        this.resolve = resolve;
      }),
      sleep(timeoutMs).then(() => null),
    ]);
  }

  deliver(batchNumber: number, at: number): void {
    if (batchNumber !== this.expected) return;
    this.times.push(at);
    if (this.times.length === this.wanted) this.resolve?.(this.times);
  }
}

interface Subscriber {
  close(): void;
}

function wsSubscriber(
  wsUrl: string,
  id: string,
  arrivals: Arrivals,
  authorization: string | undefined,
): Subscriber {
  const client = createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    connectionParams: authorization === undefined ? {} : { authorization },
  });
  client.subscribe<any>(
    { query: NEEDED, variables: { id } },
    {
      next: ({ data }) => {
        const at = epochNow();
        if (data?.batchNeeded) arrivals.deliver(data.batchNeeded.batchNumber, at);
      },
      error: (error) => console.error('WebSocket subscriber failed', error),
      complete: () => {},
    },
  );
  return { close: () => void client.dispose() };
}

function sseSubscriber(
  url: string,
  id: string,
  arrivals: Arrivals,
  authorization: string | undefined,
): Subscriber {
  const body = JSON.stringify({ query: NEEDED, variables: { id } });
  const parser = createParser({
    onEvent: (event) => {
      const at = epochNow();
      if (event.event !== 'next') return;
      const need = JSON.parse(event.data)?.data?.batchNeeded;
      if (need) arrivals.deliver(need.batchNumber, at);
    },
  });
  const req = http.request(url, {
    method: 'POST',
    agent: false,
    headers: {
      'content-type': 'application/json',
      accept: 'text/event-stream',
      'content-length': Buffer.byteLength(body),
      ...(authorization === undefined ? {} : { authorization }),
    },
  });
  req.on('response', (res) => {
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => parser.feed(chunk));
    res.on('error', () => {});
  });
  req.on('error', () => {});
  req.end(body);
  return { close: () => req.destroy() };
}

export interface LatencyFigures {
  subscribers: number;
  transport: 'ws' | 'sse';
  samples: number;
  lost: number;
  client: ReturnType<LatencyHistogram['summary']>;
  server: ReturnType<LatencyHistogram['summary']>;
}

async function measure(
  server: Ours,
  transport: 'ws' | 'sse',
  count: number,
  log: (line: string) => void,
): Promise<LatencyFigures> {
  const id = `lat-${transport}-${count}`;
  const bearer = (token: string | undefined) => token && `Bearer ${token}`;
  const admin = bearer(server.adminToken);
  const encoder = bearer(server.encoderToken);
  await post(
    server.url,
    CREATE,
    { input: { id, videoSourcePath: `/media/${id}.mkv`, batchSize: BATCH, threshold: THRESHOLD } },
    admin,
  );
  const viewers = Array.from({ length: VIEWERS }, (_, v) => ({
    streamSessionId: id,
    sessionId: `viewer-${v}`,
  }));
  const viewerTokens =
    server.auth === 'on'
      ? await mintPlayerTokens(server.wsUrl, server.adminToken!, viewers)
      : viewers.map(() => undefined);
  // Every viewer joins at segment 0 first (far from batch 0's threshold), so
  // that each sample's update moves a client rather than adds one.
  for (const [v, viewer] of viewers.entries()) {
    await post(
      server.url,
      UPDATE,
      { input: { ...viewer, segmentNumber: 0, quality: 'Q720P' } },
      viewerTokens[v],
    );
  }
  const arrivals = new Arrivals();
  const first = arrivals.expect(0, count, 30_000);
  const subscribers = Array.from({ length: count }, () =>
    transport === 'ws'
      ? wsSubscriber(server.wsUrl, id, arrivals, encoder)
      : sseSubscriber(server.url, id, arrivals, encoder),
  );
  if ((await first) === null) throw new Error(`${id}: not every subscriber heard FIRST_BATCH`);

  const client = new LatencyHistogram();
  const serverSide = new LatencyHistogram();
  const warmup = Math.min(20, Math.floor(settings.latencySamples / 10));
  const received: Array<{ key: string; times: number[] }> = [];
  let lost = 0;
  for (let i = 0; i < warmup + settings.latencySamples; i++) {
    const start = i * BATCH;
    await post(
      server.url,
      CLAIM,
      {
        input: {
          streamSessionId: id,
          batchNumber: i,
          startSegment: start,
          endSegment: start + BATCH - 1,
          videoSourcePath: `/media/${id}.mkv`,
          videoStartOffset: start * 6,
        },
      },
      encoder,
    );
    await post(server.url, COMPLETE, { id, n: i }, encoder);
    // A few milliseconds apart, so samples do not fall into step with the background.
    await sleep(1 + Math.random() * 4);
    const arrived = arrivals.expect(i + 1, count, 5_000);
    const sent = epochNow();
    const updated = post(
      server.url,
      UPDATE,
      {
        input: {
          ...viewers[i % VIEWERS]!,
          segmentNumber: start + BATCH - 1 - (THRESHOLD - 1),
          quality: 'Q720P',
        },
      },
      viewerTokens[i % VIEWERS],
    );
    const times = await arrived;
    await updated;
    if (i < warmup) continue;
    if (times === null) {
      lost++;
      continue;
    }
    for (const at of times) client.recordMs(at - sent);
    received.push({ key: `${id}:${i + 1}`, times });
  }
  const marks = await server.child.ask<(number | null)[]>({
    type: 'marks',
    keys: received.map((r) => r.key),
  });
  received.forEach(({ times }, k) => {
    const mark = marks[k];
    if (mark == null) return;
    for (const at of times) serverSide.recordMs(at - mark);
  });
  for (const s of subscribers) s.close();
  const figures: LatencyFigures = {
    subscribers: count,
    transport,
    samples: settings.latencySamples - lost,
    lost,
    client: client.summary(),
    server: serverSide.summary(),
  };
  log(
    `latency ${transport.padEnd(3)} ${String(count).padStart(3)} subscribers: client p50 ${figures.client.p50} ms p99 ${figures.client.p99} ms; server p50 ${figures.server.p50} ms p99 ${figures.server.p99} ms${lost ? `; ${lost} lost` : ''}`,
  );
  return figures;
}

export interface LatencyResult {
  background: { targetRate: number; achievedRate: number; non2xx: number; errors: number } | null;
  figures: LatencyFigures[];
}

export async function runLatency(
  backgroundRate: number,
  log: (line: string) => void,
): Promise<LatencyResult> {
  const server = await startOurs({ BENCH_MARK_NEEDS: '1', BENCH_RAISE_WS_CAPS: '1' });
  const child = server.child;
  const outcomesBefore = await positionOutcomes(server);
  let encoder: Encoder | null = null;
  let background: Child | null = null;
  try {
    encoder = startEncoder(server.wsUrl, server.encoderToken);
    if (backgroundRate > 0) {
      ({ child: background } = await startChild(`${BENCH_DIR}load/background.ts`, {
        core: 1,
        env: { BENCH_BG_URL: server.url, BENCH_BG_RATE: String(Math.round(backgroundRate)) },
      }));
      // The load generator shares core 1 with this process, which timestamps every
      // arrival: at the lowest priority, it cannot hold the core while an arrival
      // waits to be read (the scheduler's time slice is milliseconds long).
      if (background.process.pid !== undefined) setPriority(background.process.pid, 19);
      await background.ask({ type: 'start', tokens: server.tokens });
      log(`background load: ${Math.round(backgroundRate)} updates/s (nice 19)`);
      await sleep(1_000);
    }
    const figures: LatencyFigures[] = [];
    for (const transport of TRANSPORTS) {
      for (const count of SUBSCRIBER_COUNTS) {
        figures.push(await measure(server, transport, count, log));
      }
    }
    const bg = background
      ? await background.ask<LatencyResult['background']>({ type: 'stop' })
      : null;
    if (bg) log(`background load achieved ${Math.round(bg.achievedRate)} updates/s`);
    assertNoRefusals(outcomesBefore, await positionOutcomes(server), 'latency phase');
    return { background: bg, figures };
  } finally {
    await background?.stop();
    await encoder?.stop();
    await child.stop();
    agent.destroy();
  }
}
