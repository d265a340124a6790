import autocannon from 'autocannon';
import { UPDATE, updateInput } from '../lib/operation.js';
import { settings } from '../lib/settings.js';

/** Hands out request numbers; one per target, so each target's clients advance on their own. */
export class Counter {
  constructor(private n = 0) {}
  next(): number {
    return this.n++;
  }
}

/** How the load spreads over stream sessions and their clients. */
export interface Layout {
  sessions: number;
  clientsPerSession: number;
}

const defaultLayout = (): Layout => ({
  sessions: settings.sessions,
  clientsPerSession: settings.clientsPerSession,
});

export function updateBody(n: number, layout: Layout = defaultLayout()): string {
  return JSON.stringify({
    query: UPDATE,
    variables: { input: updateInput(n, layout.sessions, layout.clientsPerSession) },
  });
}

const HEADERS = { 'content-type': 'application/json', accept: 'application/json' };

/**
 * The headers of the n-th update: with `tokens` (one `Authorization` value
 * per client of the layout), those of the player the update is for.
 */
export function updateHeaders(
  n: number,
  tokens: readonly string[] | undefined,
  layout: Layout = defaultLayout(),
): Record<string, string> {
  if (tokens === undefined) return HEADERS;
  const authorization = tokens[n % (layout.sessions * layout.clientsPerSession)];
  if (authorization === undefined) throw new Error(`no token for update ${n}`);
  return { ...HEADERS, authorization };
}

/** POSTs one update and fails unless the reply is 200 with data and no `errors`. */
export async function preflightHttp(
  url: string,
  counter: Counter,
  tokens?: readonly string[],
): Promise<void> {
  const n = counter.next();
  const response = await fetch(url, {
    method: 'POST',
    headers: updateHeaders(n, tokens),
    body: updateBody(n),
  });
  const text = await response.text();
  const body = JSON.parse(text) as { data?: { updateClientPosition?: unknown }; errors?: unknown };
  if (response.status !== 200 || body.errors !== undefined || !body.data?.updateClientPosition) {
    throw new Error(`pre-flight of ${url} failed: ${response.status} ${text}`);
  }
}

export interface HttpRun {
  requests: number;
  seconds: number;
  rps: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  /** Replies that carried `errors` (counted only when `checkReplies`). */
  errorReplies: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
}

/**
 * Runs autocannon against `url` for `seconds` with varied update bodies.
 * `checkReplies` reads every reply for `errors` (costs the load generator
 * some CPU, so it is used in warm-ups, not in measured windows).
 * `overallRate` turns it into a fixed-rate load. With `tokens` (one
 * `Authorization` value per client of the layout), each request carries the
 * token of the player it updates.
 */
export async function runHttp(
  url: string,
  counter: Counter,
  options: {
    seconds: number;
    checkReplies?: boolean;
    overallRate?: number;
    connections?: number;
    layout?: Layout;
    tokens?: readonly string[];
  },
): Promise<HttpRun> {
  let errorReplies = 0;
  const started = performance.now();
  const result = await autocannon({
    url,
    connections: options.connections ?? settings.connections,
    duration: options.seconds,
    ...(options.overallRate ? { overallRate: options.overallRate } : {}),
    requests: [
      {
        method: 'POST',
        path: new URL(url).pathname,
        headers: HEADERS,
        setupRequest: (request) => {
          const n = counter.next();
          return {
            ...request,
            ...(options.tokens
              ? { headers: updateHeaders(n, options.tokens, options.layout) }
              : {}),
            body: updateBody(n, options.layout),
          };
        },
        ...(options.checkReplies
          ? {
              onResponse: (_status: number, body: string) => {
                if (body.includes('"errors"')) errorReplies++;
              },
            }
          : {}),
      },
    ],
  });
  const elapsed = (performance.now() - started) / 1000;
  const ok = result['2xx'];
  return {
    requests: ok,
    seconds: result.duration ?? elapsed,
    rps: ok / (result.duration || elapsed),
    non2xx: result.non2xx,
    errors: result.errors,
    timeouts: result.timeouts,
    errorReplies,
    latencyP50Ms: result.latency.p50,
    latencyP99Ms: result.latency.p99,
  };
}
