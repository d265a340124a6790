import type { IncomingMessage, ServerResponse } from 'node:http';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Authenticator } from '../auth/principal.js';
import type { Activity } from '../state/activity.js';
import { BatchNeededReason, StreamSessionEndReason } from '../state/model.js';

export const METRICS_PATH = '/metrics';

/** Where the gauges read what is live now, at each scrape. */
export interface MetricsSources {
  /** Live stream sessions: of every instance on one Redis. */
  countStreamSessions(): Promise<number>;
  /** Clients in all live sessions: of every instance on one Redis. */
  countClients(): Promise<number>;
  isReady(): Promise<boolean>;
  /** Open subscriptions of this instance, over every transport. */
  subscriptions(): number;
  /** WebSockets of this instance whose connection_init was accepted. */
  webSocketConnections(): number;
  /** Subscriptions open over those WebSockets. */
  webSocketSubscriptions(): number;
}

/** The two series one operation with one outcome feeds, bound once. */
export interface OutcomeSeries {
  readonly count: Counter.Internal;
  readonly duration: Histogram.Internal<string>;
}

/** The series of one operation: `ok`, and one pair per error code, made at first sight. */
export interface OperationSeries {
  readonly ok: OutcomeSeries;
  failed(code: string): OutcomeSeries;
}

// Execution of one operation: from well under a millisecond (a position
// update in memory) to the store's command timeout (2 s with Redis).
const OPERATION_BUCKETS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
];
// From the change that decided a need to a subscriber: ~0 in one process,
// a Redis round trip and a read with several instances.
const DELIVERY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];
// Claim to completion: a batch of 20 six-second segments is minutes of video.
const GENERATION_BUCKETS = [1, 5, 10, 30, 60, 120, 300, 600, 1_800];

/**
 * The process's own metrics (CPU, memory, event loop, GC), on one registry
 * made at first use and shared by every app of the process: they describe
 * the process, and prom-client's collectors (a GC observer, an event-loop
 * monitor) are never stopped, so one set per app would pile up in a test
 * process that builds hundreds of apps. Never prom-client's global registry.
 */
let processRegistry: Registry | null = null;
function processMetrics(): Registry {
  if (processRegistry === null) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/**
 * The service's metrics on a registry of its own (so that two apps in one
 * process never share a counter), with the process metrics merged in.
 * Counters count what this instance did; the gauges of sessions and clients
 * read the store, so with several instances on one Redis every instance
 * reports the same totals (take the max, not the sum).
 */
export class Metrics {
  /** What /metrics serves. */
  readonly registry: Registry;
  private readonly operationsTotal: Counter<'type' | 'operation' | 'outcome'>;
  private readonly operationDuration: Histogram<'type' | 'operation' | 'outcome'>;
  private readonly operations = new Map<string, OperationSeries>();
  private readonly batchesNeeded: Record<BatchNeededReason, Counter.Internal>;
  private readonly batchesClaimed: Counter;
  private readonly batchesCompleted: Counter;
  private readonly batchesStalled: Counter;
  private readonly clientsExpired: Counter;
  private readonly sessionsCreated: Counter;
  private readonly sessionsEnded: Record<StreamSessionEndReason, Counter.Internal>;
  private readonly generation: Histogram;
  private readonly delivery: Histogram;

  constructor(sources: MetricsSources) {
    const own = new Registry();
    const registers = [own];
    this.operationsTotal = new Counter({
      name: 'hbc_graphql_operations_total',
      help: 'GraphQL operations executed, by type, root field and outcome (ok or the error code).',
      labelNames: ['type', 'operation', 'outcome'],
      registers,
    });
    this.operationDuration = new Histogram({
      name: 'hbc_graphql_operation_duration_seconds',
      help: 'Time to execute a GraphQL operation (a subscription: to set it up), by type, root field and outcome.',
      labelNames: ['type', 'operation', 'outcome'],
      buckets: OPERATION_BUCKETS,
      registers,
    });
    const needed = new Counter({
      name: 'hbc_batches_needed_total',
      help: 'Needs this instance announced on batchNeeded, by reason.',
      labelNames: ['reason'],
      registers,
    });
    this.batchesNeeded = bind(Object.values(BatchNeededReason), (reason) => needed.labels(reason));
    this.batchesClaimed = new Counter({
      name: 'hbc_batches_claimed_total',
      help: 'Batches claimed with setCurrentBatch (a re-claim after a stall included).',
      registers,
    });
    this.batchesCompleted = new Counter({
      name: 'hbc_batches_completed_total',
      help: 'Batches completed with completeBatch (a repeated completion not counted).',
      registers,
    });
    this.batchesStalled = new Counter({
      name: 'hbc_batches_stalled_total',
      help: 'Claimed batches not completed within BATCH_TIMEOUT, announced STALLED.',
      registers,
    });
    this.clientsExpired = new Counter({
      name: 'hbc_clients_expired_total',
      help: 'Clients removed for staying silent past CLIENT_TIMEOUT.',
      registers,
    });
    this.sessionsCreated = new Counter({
      name: 'hbc_stream_sessions_created_total',
      help: 'Stream sessions created.',
      registers,
    });
    const ended = new Counter({
      name: 'hbc_stream_sessions_ended_total',
      help: 'Stream sessions ended, by reason: ENDED (endStreamSession) or IDLE (no clients for SESSION_IDLE_TIMEOUT).',
      labelNames: ['reason'],
      registers,
    });
    this.sessionsEnded = bind(Object.values(StreamSessionEndReason), (reason) =>
      ended.labels(reason),
    );
    this.generation = new Histogram({
      name: 'hbc_batch_generation_seconds',
      help: 'From the claim (setCurrentBatch) of a batch to its completion (completeBatch).',
      buckets: GENERATION_BUCKETS,
      registers,
    });
    this.delivery = new Histogram({
      name: 'hbc_batch_needed_delivery_seconds',
      help: 'From the change that decided a need to its hand-over to a batchNeeded subscriber of this instance (live needs; not the replay a new subscriber gets).',
      buckets: DELIVERY_BUCKETS,
      registers,
    });

    // Read at each scrape: nothing is counted on the hot path for them.
    new Gauge({
      name: 'hbc_stream_sessions',
      help: 'Live stream sessions (in the store: every instance on one Redis reports the same).',
      registers,
      collect() {
        return settle(sources.countStreamSessions(), (n) => this.set(n));
      },
    });
    new Gauge({
      name: 'hbc_clients',
      help: 'Clients in live stream sessions (in the store: every instance on one Redis reports the same).',
      registers,
      collect() {
        return settle(sources.countClients(), (n) => this.set(n));
      },
    });
    new Gauge({
      name: 'hbc_store_ready',
      help: '1 while the store answers (as /readyz), else 0.',
      registers,
      collect() {
        return settle(sources.isReady(), (up) => this.set(up ? 1 : 0), false);
      },
    });
    new Gauge({
      name: 'hbc_subscriptions',
      help: 'Open subscriptions on this instance, over SSE and WebSocket.',
      registers,
      collect() {
        this.set(sources.subscriptions());
      },
    });
    new Gauge({
      name: 'hbc_websocket_connections',
      help: 'Open WebSockets on this instance whose connection_init was accepted.',
      registers,
      collect() {
        this.set(sources.webSocketConnections());
      },
    });
    new Gauge({
      name: 'hbc_websocket_subscriptions',
      help: 'Subscriptions open over WebSocket on this instance.',
      registers,
      collect() {
        this.set(sources.webSocketSubscriptions());
      },
    });

    this.registry = Registry.merge([own, processMetrics()]);
  }

  /**
   * The series of one operation, bound once: the hot path only finds them
   * (see useOperationMetrics) and increments.
   */
  operation(type: string, operation: string): OperationSeries {
    const key = `${type}\n${operation}`;
    let series = this.operations.get(key);
    if (series === undefined) {
      const bound = (outcome: string): OutcomeSeries => ({
        count: this.operationsTotal.labels(type, operation, outcome),
        duration: this.operationDuration.labels(type, operation, outcome),
      });
      const failures = new Map<string, OutcomeSeries>();
      series = {
        ok: bound('ok'),
        failed(code) {
          let failure = failures.get(code);
          if (failure === undefined) {
            failure = bound(code);
            failures.set(code, failure);
          }
          return failure;
        },
      };
      this.operations.set(key, series);
    }
    return series;
  }

  /** Counts what the coordinator did (its observer, with the logs). */
  record(activity: Activity): void {
    switch (activity.type) {
      case 'streamSessionCreated':
        this.sessionsCreated.inc();
        break;
      case 'streamSessionEnded':
        this.sessionsEnded[activity.reason].inc();
        break;
      case 'batchNeeded':
        this.batchesNeeded[activity.reason].inc();
        break;
      case 'batchClaimed':
        this.batchesClaimed.inc();
        break;
      case 'batchCompleted':
        this.batchesCompleted.inc();
        this.generation.observe(activity.generationMs / 1_000);
        break;
      case 'batchStalled':
        this.batchesStalled.inc();
        break;
      case 'clientExpired':
        this.clientsExpired.inc();
        break;
      case 'batchNeededDelivered':
        // A clock set back (or another instance's) must not make it negative.
        this.delivery.observe(Math.max(0, activity.latencyMs) / 1_000);
        break;
    }
  }

  /** The text Prometheus scrapes. */
  async text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

/** A counter's child per label value, each shown (at 0) before its first increment. */
function bind<K extends string>(
  keys: readonly K[],
  make: (key: K) => Counter.Internal,
): Record<K, Counter.Internal> {
  return Object.fromEntries(
    keys.map((key) => {
      const child = make(key);
      child.inc(0);
      return [key, child];
    }),
  ) as Record<K, Counter.Internal>;
}

/** Sets a gauge from what the store says; a store that cannot say leaves it `otherwise` (NaN). */
async function settle<T>(
  reading: Promise<T>,
  set: (value: T) => void,
  otherwise: T = Number.NaN as T,
): Promise<void> {
  let value: T;
  try {
    value = await reading;
  } catch {
    value = otherwise;
  }
  set(value);
}

/**
 * Serves /metrics. With auth on it needs `Authorization: Bearer <token>`
 * with the admin token or METRICS_TOKEN (the scraper): no or a bad token is
 * 401, a valid token of another role (encoder, player) is 403. With
 * AUTH=off every caller is admin, so it is open.
 */
export function serveMetrics(metrics: Metrics, authenticator: Authenticator) {
  return async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
      res.end('Only GET and HEAD.\n');
      return;
    }
    const principal = await authenticator.authenticate(req.headers.authorization);
    if (principal.role === 'anonymous' || principal.role === 'invalid') {
      res.writeHead(401, {
        'www-authenticate': 'Bearer realm="metrics"',
        'content-type': 'text/plain; charset=utf-8',
      });
      res.end('The metrics need the admin token or METRICS_TOKEN as a bearer token.\n');
      return;
    }
    if (principal.role !== 'admin' && principal.role !== 'scraper') {
      res.writeHead(403, { 'content-type': 'text/plain; charset=utf-8' });
      res.end('The metrics are for the admin token or METRICS_TOKEN.\n');
      return;
    }
    let text: string;
    try {
      text = await metrics.text();
    } catch (error) {
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`The metrics could not be collected: ${(error as Error).message}\n`);
      return;
    }
    res.writeHead(200, {
      'content-type': metrics.contentType,
      'content-length': Buffer.byteLength(text),
      'cache-control': 'no-store',
    });
    res.end(req.method === 'HEAD' ? undefined : text);
  };
}
