/**
 * The WebSocket load: N graphql-transport-ws connections, each keeping K
 * update operations in flight; an operation counts when its `complete`
 * arrives without an error. A bare protocol client on `ws`, so that the load
 * generator costs as little as the HTTP one does.
 */
import WebSocket from 'ws';
import { UPDATE, updateInput } from '../lib/operation.js';
import { settings } from '../lib/settings.js';
import type { Counter } from './http.js';

interface Connection {
  socket: WebSocket;
  nextId: number;
}

function open(url: string): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, 'graphql-transport-ws', { perMessageDeflate: false });
    socket.once('error', reject);
    socket.once('open', () =>
      socket.send(JSON.stringify({ type: 'connection_init', payload: {} })),
    );
    socket.once('message', (data) => {
      const message = JSON.parse(String(data));
      if (message.type !== 'connection_ack') reject(new Error(`expected connection_ack: ${data}`));
      else {
        socket.off('error', reject);
        resolve({ socket, nextId: 0 });
      }
    });
  });
}

function subscribeMessage(connection: Connection, n: number): string {
  return JSON.stringify({
    id: String(connection.nextId++),
    type: 'subscribe',
    payload: {
      query: UPDATE,
      variables: { input: updateInput(n, settings.sessions, settings.clientsPerSession) },
    },
  });
}

/** One update over one connection; fails unless its result has data and no errors. */
export async function preflightWs(url: string, counter: Counter): Promise<void> {
  const connection = await open(url);
  try {
    const result = await new Promise<any>((resolve, reject) => {
      let next: unknown;
      connection.socket.on('message', (data) => {
        const message = JSON.parse(String(data));
        if (message.type === 'next') next = message.payload;
        else if (message.type === 'complete') resolve(next);
        else reject(new Error(`unexpected ${data}`));
      });
      connection.socket.send(subscribeMessage(connection, counter.next()));
    });
    if (result?.errors !== undefined || !result?.data?.updateClientPosition) {
      throw new Error(`WebSocket pre-flight of ${url} failed: ${JSON.stringify(result)}`);
    }
  } finally {
    connection.socket.close();
  }
}

export interface WsRun {
  requests: number;
  seconds: number;
  rps: number;
  /** Operations answered with `errors` or an `error` message, in the whole run. */
  errorReplies: number;
}

/** Warm-up then a measured window, on the same connections; returns the window's figures. */
export async function runWs(
  url: string,
  counter: Counter,
  options: {
    warmup: number;
    seconds: number;
    connections?: number;
    inFlight?: number;
    onMeasureStart?: () => Promise<void>;
    onMeasureEnd?: () => Promise<void>;
  },
): Promise<WsRun> {
  const connectionCount = options.connections ?? settings.connections;
  const inFlight = options.inFlight ?? settings.wsInFlight;
  const connections = await Promise.all(Array.from({ length: connectionCount }, () => open(url)));
  let running = true;
  let completed = 0;
  let errorReplies = 0;
  let outstanding = 0;
  let drained: (() => void) | null = null;
  for (const connection of connections) {
    const send = () => {
      outstanding++;
      connection.socket.send(subscribeMessage(connection, counter.next()));
    };
    connection.socket.on('message', (data) => {
      // `next` carries the result; `complete` (or `error`) ends the operation.
      const { type, payload } = JSON.parse(String(data));
      if (type === 'next') {
        if (payload?.errors !== undefined) errorReplies++;
        return;
      }
      if (type === 'error') errorReplies++;
      else if (type !== 'complete') return;
      else completed++;
      outstanding--;
      if (running) send();
      else if (outstanding === 0) drained?.();
    });
    for (let i = 0; i < inFlight; i++) send();
  }
  await sleep(options.warmup * 1000);
  await options.onMeasureStart?.();
  const startCount = completed;
  const started = performance.now();
  await sleep(options.seconds * 1000);
  const endCount = completed;
  const elapsed = (performance.now() - started) / 1000;
  await options.onMeasureEnd?.();
  running = false;
  if (outstanding > 0) {
    await Promise.race([new Promise<void>((resolve) => (drained = resolve)), sleep(5_000)]);
  }
  await Promise.all(
    connections.map(
      ({ socket }) =>
        new Promise<void>((resolve) => {
          socket.once('close', () => resolve());
          socket.close();
        }),
    ),
  );
  const requests = endCount - startCount;
  return { requests, seconds: elapsed, rps: requests / elapsed, errorReplies };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
