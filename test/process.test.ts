/**
 * The real entry point, as a process: `node --import tsx src/main.ts`.
 * It reads its settings from the environment (PORT=0 picks a free port and
 * the URL is read from "listening on ..."), refuses bad ones with a message
 * naming the variable, and exits 0 on SIGTERM.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createClient } from 'graphql-ws';
import { afterAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import {
  createDeferred,
  eventually,
  type GraphQLResponse,
  Q,
  serviceEnv,
  sseSubscribe,
} from './fixtures.js';

const repoRoot = fileURLToPath(new URL('..', import.meta.url));

interface Running {
  child: ChildProcess;
  stdout(): string;
  stderr(): string;
  /** Resolves with the exit code (null when killed by a signal) and signal. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const children: ChildProcess[] = [];
afterAll(() => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
});

/**
 * Spawns the entry point. With `signalOnListening`, sends that signal from the
 * very handler that reads the "listening on" line, as a supervisor that
 * stops a just-started instance would.
 */
function run(env: Record<string, string>, signalOnListening?: NodeJS.Signals): Running {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
    cwd: repoRoot,
    // Process behaviour, not access control (test/auth.test.ts covers that): no tokens needed.
    env: serviceEnv({ AUTH: 'off', ...env }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  let err = '';
  let signalled = false;
  child.stdout?.on('data', (chunk) => {
    out += chunk;
    if (signalOnListening && !signalled && out.includes('listening on')) {
      signalled = true;
      child.kill(signalOnListening);
    }
  });
  child.stderr?.on('data', (chunk) => {
    err += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { child, stdout: () => out, stderr: () => err, exited };
}

/** Starts the server on a free port and resolves with its GraphQL URL. */
async function start(env: Record<string, string> = {}) {
  const running = run({ PORT: '0', HOST: '127.0.0.1', ...env });
  const url = await eventually(
    () => {
      const match = running.stdout().match(/listening on (http:\/\/\S+)/);
      if (match) return new URL(match[1]!);
      throw new Error(
        `the server did not start (exit ${running.child.exitCode}):\n${running.stdout()}\n${running.stderr()}`,
      );
    },
    { timeout: 15_000 },
  );
  return { ...running, url: url.href, baseUrl: url.origin };
}

async function post(url: string, query: string, variables?: Record<string, unknown>) {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()) as GraphQLResponse<any>;
}

// Process starts (tsx compiling on the way) are slow on a busy machine.
describe('the entry point', { timeout: 60_000 }, () => {
  it('listens on the port PORT=0 picks, serves /healthz, /readyz and GraphQL, then exits 0 on SIGTERM', async () => {
    const server = await start();
    expect(server.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/graphql$/);
    expect(Number(new URL(server.url).port)).toBeGreaterThan(0);

    const health = await fetch(`${server.baseUrl}/healthz`);
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${server.baseUrl}/readyz`);
    expect(ready.status).toBe(200);
    await ready.body?.cancel();

    const created = await post(server.url, Q.create, {
      input: { id: 'process-defaults', videoSourcePath: '/v.mp4' },
    });
    expect(created.errors).toBeUndefined();
    expect(created.data?.createStreamSession).toMatchObject({
      segmentDuration: 6,
      batchSize: 20,
      threshold: 5,
      startSegment: 0,
    });

    server.child.kill('SIGTERM');
    const { code, signal } = await server.exited;
    expect(signal).toBeNull();
    expect(code).toBe(0);
  });

  it('exits 0 on SIGTERM with an SSE subscription and a WebSocket open', async () => {
    const server = await start();
    const sse = sseSubscribe<GraphQLResponse<any>>(server.url, Q.batchNeeded, {});
    await sse.ready;
    const connected = createDeferred();
    const closed = createDeferred();
    const ws = createClient({
      url: server.url.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      lazy: false,
      retryAttempts: 0,
      // The close at shutdown is expected: not worth a log line.
      onNonLazyError: () => {},
      on: { connected: () => connected.resolve(), closed: () => closed.resolve() },
    });
    ws.subscribe({ query: Q.batchNeeded }, { next: () => {}, error: () => {}, complete: () => {} });
    await connected.promise;
    await post(server.url, Q.create, { input: { id: 'process-open', videoSourcePath: '/v.mp4' } });
    await sse.waitFor(1);

    server.child.kill('SIGTERM');
    const { code } = await server.exited;
    expect(code).toBe(0);
    await closed.promise;
    sse.stop();
    await ws.dispose();
  });

  it('takes the session defaults from SEGMENT_DURATION, BATCH_SIZE and THRESHOLD; exits 0 on SIGINT', async () => {
    const server = await start({ SEGMENT_DURATION: '2', BATCH_SIZE: '12', THRESHOLD: '4' });
    const created = await post(server.url, Q.create, { input: { videoSourcePath: '/v.mp4' } });
    expect(created.errors).toBeUndefined();
    expect(created.data?.createStreamSession).toMatchObject({
      segmentDuration: 2,
      batchSize: 12,
      threshold: 4,
    });
    server.child.kill('SIGINT');
    const { code, signal } = await server.exited;
    expect(signal).toBeNull();
    expect(code).toBe(0);
  });

  it('exits 0 on a SIGTERM sent as soon as it says it is listening', async () => {
    // A race, so several at once: each must have its handler in place by the time it says so.
    const runs = Array.from({ length: 4 }, () => run({ PORT: '0', HOST: '127.0.0.1' }, 'SIGTERM'));
    const outcomes = await Promise.all(runs.map((r) => r.exited));
    expect(runs.every((r) => r.stdout().includes('listening on'))).toBe(true);
    expect(
      outcomes,
      `exit code and signal of each run: ${JSON.stringify(outcomes)} (a signal instead of code 0 means the default action killed it)`,
    ).toEqual(outcomes.map(() => ({ code: 0, signal: null })));
  });

  it('answers a syntax error over WebSocket without closing the socket', async () => {
    const server = await start();
    let connects = 0;
    let closes = 0;
    const client = createClient({
      url: server.url.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      lazy: false,
      retryAttempts: 0,
      // The close at shutdown is expected: not worth a log line.
      onNonLazyError: () => {},
      on: { connected: () => connects++, closed: () => closes++ },
    });
    const request = (query: string) =>
      new Promise<GraphQLResponse>((resolve, reject) => {
        let result: GraphQLResponse | undefined;
        client.subscribe(
          { query },
          {
            next: (value) => {
              result = value as GraphQLResponse;
            },
            error: (error) =>
              Array.isArray(error)
                ? resolve({ errors: error })
                : reject(new Error('socket closed')),
            complete: () => resolve(result ?? {}),
          },
        );
      });
    const bad = await request('{ streamSessions { id ');
    expect(bad.errors?.[0]?.message).toMatch(/Syntax Error/);
    const good = await request('{ streamSessions { id } }');
    expect(good.data).toEqual({ streamSessions: [] });
    expect(connects).toBe(1);
    expect(closes).toBe(0);
    await client.dispose();
    server.child.kill('SIGTERM');
    expect((await server.exited).code).toBe(0);
  });
});

// Each case is a process start (a second or two): run them side by side.
describe.concurrent('bad configuration', { timeout: 60_000 }, () => {
  it.for<[string, Record<string, string>]>([
    ['BATCH_SIZE', { BATCH_SIZE: 'abc' }],
    ['THRESHOLD', { THRESHOLD: '50' }],
    ['PORT', { PORT: '70000' }],
    ['SEGMENT_DURATION', { SEGMENT_DURATION: '0' }],
  ])(
    'refuses a bad %s (%o): non-zero exit, stderr names it, never listens',
    async ([name, env], { expect }) => {
      const running = run({ PORT: '0', HOST: '127.0.0.1', ...env });
      const { code } = await running.exited;
      expect(code, running.stderr()).not.toBe(0);
      expect(code).not.toBeNull();
      expect(running.stderr()).toContain(name);
      expect(running.stdout()).not.toContain('listening on');
      // A message for a person, not a stack trace.
      expect(running.stderr()).not.toMatch(/\n\s+at /);
    },
  );
});
