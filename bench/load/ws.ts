/**
 * The WebSocket load, two layouts; an operation counts when its `complete`
 * arrives without an error. A bare protocol client on `ws`, so that the load
 * generator costs as little as the HTTP one does.
 *
 * - Shared connections (auth off): N connections, each keeping K update
 *   operations in flight, for clients n mod C of the layout.
 * - Players (the default configuration): a player token authenticates one
 *   connection, so each simulated player has its own, authenticated with its
 *   token at connection_init, and updates only its own position. The load
 *   keeps N × K operations in flight in all, as the shared layout does, and
 *   hands each next one to the next player in turn (round-robin over P
 *   players, skipping one with an update still in flight); a player sends no
 *   sooner than 1/rate s after its previous update, so it stays under the
 *   per-player rate limit whatever the server's speed (past P × rate a
 *   second the load waits). Thousands of players all in flight at once
 *   would queue thousands of operations in the server: its event loop then
 *   answers the benchmark's CPU readings late, and the per-CPU figures skew.
 */
import WebSocket from 'ws';
import { UPDATE, updateInput } from '../lib/operation.js';
import { settings } from '../lib/settings.js';
import type { Counter } from './http.js';

interface Connection {
  socket: WebSocket;
  nextId: number;
}

function open(url: string, authorization?: string): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, 'graphql-transport-ws', { perMessageDeflate: false });
    socket.once('error', reject);
    socket.once('close', (code) => reject(new Error(`closed with ${code} before connection_ack`)));
    socket.once('open', () =>
      socket.send(
        JSON.stringify({
          type: 'connection_init',
          payload: authorization === undefined ? {} : { authorization },
        }),
      ),
    );
    socket.once('message', (data) => {
      const message = JSON.parse(String(data));
      if (message.type !== 'connection_ack') reject(new Error(`expected connection_ack: ${data}`));
      else {
        socket.removeAllListeners('error');
        socket.removeAllListeners('close');
        resolve({ socket, nextId: 0 });
      }
    });
  });
}

/**
 * The n-th update of the load; for a player connection (`client` set), that
 * client's, at the segment the n-th update of the shared layout would reach
 * (so viewers advance, and needs come, at the same pace per update).
 */
function subscribeMessage(connection: Connection, n: number, client?: number): string {
  const clients = settings.sessions * settings.clientsPerSession;
  const at = client === undefined ? n : Math.floor(n / clients) * clients + client;
  return JSON.stringify({
    id: String(connection.nextId++),
    type: 'subscribe',
    payload: {
      query: UPDATE,
      variables: { input: updateInput(at, settings.sessions, settings.clientsPerSession) },
    },
  });
}

/** Players of the WebSocket load: one connection each, with its own token. */
export interface Players {
  /** `Authorization` values by client number of the layout. */
  readonly tokens: readonly string[];
  /** Player connections (clients 0 … count-1 of the layout). */
  readonly count: number;
  /** Most updates a second one player sends. */
  readonly perSecond: number;
}

/**
 * One update over one connection (client 0's, with its token when `tokens`
 * is given); fails unless its result has data and no errors.
 */
export async function preflightWs(
  url: string,
  counter: Counter,
  tokens?: readonly string[],
): Promise<void> {
  const connection = await open(url, tokens?.[0]);
  try {
    const result = await new Promise<any>((resolve, reject) => {
      let next: unknown;
      connection.socket.on('message', (data) => {
        const message = JSON.parse(String(data));
        if (message.type === 'next') next = message.payload;
        else if (message.type === 'complete') resolve(next);
        else reject(new Error(`unexpected ${data}`));
      });
      connection.socket.send(
        subscribeMessage(connection, counter.next(), tokens === undefined ? undefined : 0),
      );
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

/** Opens `count` connections, a few hundred at a time (each player's token is checked once). */
async function openAll(url: string, count: number, tokens?: readonly string[]) {
  const connections: Connection[] = [];
  for (let first = 0; first < count; first += OPENING_AT_ONCE) {
    const last = Math.min(count, first + OPENING_AT_ONCE);
    const opened = Array.from({ length: last - first }, (_, i) => open(url, tokens?.[first + i]));
    connections.push(...(await Promise.all(opened)));
  }
  return connections;
}

const OPENING_AT_ONCE = 250;

/**
 * Warm-up then a measured window, on the same connections; returns the
 * window's figures. With `players`, the players layout (see the top of this file).
 */
export async function runWs(
  url: string,
  counter: Counter,
  options: {
    warmup: number;
    seconds: number;
    connections?: number;
    inFlight?: number;
    players?: Players;
    onMeasureStart?: () => Promise<void>;
    onMeasureEnd?: () => Promise<void>;
  },
): Promise<WsRun> {
  const players = options.players;
  const shared = options.connections ?? settings.connections;
  const inFlight = options.inFlight ?? settings.wsInFlight;
  const connectionCount = players?.count ?? shared;
  const connections = await openAll(url, connectionCount, players?.tokens);
  let running = true;
  let completed = 0;
  let errorReplies = 0;
  let outstanding = 0;
  let drained: (() => void) | null = null;
  // Players: when each last sent, whether it has an update in flight, whose turn is next.
  const interval = players ? 1000 / players.perSecond : 0;
  const lastSent = new Float64Array(connectionCount).fill(Number.NEGATIVE_INFINITY);
  const busy = new Uint8Array(connectionCount);
  let turn = 0;
  const sendOn = (client: number) => {
    if (!running) return;
    outstanding++;
    lastSent[client] = performance.now();
    const connection = connections[client]!;
    connection.socket.send(
      subscribeMessage(connection, counter.next(), players ? client : undefined),
    );
  };
  /** The next operation: on the next free player in turn, once its interval has passed. */
  const sendNext = () => {
    for (let tries = 0; tries < connectionCount; tries++) {
      const client = turn;
      turn = (turn + 1) % connectionCount;
      if (busy[client]) continue;
      busy[client] = 1;
      const wait = lastSent[client]! + interval - performance.now();
      if (wait <= 0) sendOn(client);
      else setTimeout(() => sendOn(client), wait);
      return;
    }
  };
  for (const [client, connection] of connections.entries()) {
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
      if (!players) {
        if (running) sendOn(client);
        else if (outstanding === 0) drained?.();
        return;
      }
      busy[client] = 0;
      if (running) sendNext();
      else if (outstanding === 0) drained?.();
    });
  }
  // The shared layout's N × K operations in flight in all, over the players too.
  if (players) {
    for (let i = 0; i < shared * inFlight; i++) sendNext();
  } else {
    for (let client = 0; client < connectionCount; client++) {
      for (let i = 0; i < inFlight; i++) sendOn(client);
    }
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
