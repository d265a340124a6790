/**
 * The WebSocket transport under graphql-ws: what it does beyond
 * graphql-ws/use/ws (see src/server/ws-transport.ts), on a bare schema.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { buildSchema } from 'graphql';
import { createClient } from 'graphql-ws';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { serveGraphQLWs } from '../src/server/ws-transport.js';
import { eventually } from './fixtures.js';

const schema = buildSchema('type Query { hello: String! }');
const rootValue = { hello: () => 'world' };

let server: Server | undefined;
afterEach(async () => {
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

/** Serves the bare schema; counts the writes each server-side TCP socket makes. */
async function serve(onError: (message: string, error: unknown) => void = () => {}) {
  server = createServer();
  const wss = new WebSocketServer({ server });
  const writes: number[] = [];
  wss.on('connection', (socket) => {
    const tcp = (socket as unknown as { _socket: Socket & Record<string, unknown> })._socket;
    const index = writes.push(0) - 1;
    for (const method of ['_write', '_writev'] as const) {
      const original = tcp[method] as (...args: unknown[]) => unknown;
      tcp[method] = (...args: unknown[]) => {
        writes[index]!++;
        return original.apply(tcp, args);
      };
    }
  });
  const transport = serveGraphQLWs({ schema, roots: { query: rootValue } }, wss, {
    keepAlive: 0,
    onError,
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, writes, wss, transport };
}

describe('the WebSocket transport', () => {
  it("sends an operation's next and complete in one write", async () => {
    const { url, writes, transport } = await serve();
    // One connection for every operation (a lazy client reconnects for each).
    const client = createClient({ url, webSocketImpl: WebSocket, retryAttempts: 0, lazy: false });
    const query = () =>
      new Promise<unknown>((resolve, reject) => {
        let result: unknown;
        client.subscribe(
          { query: '{ hello }' },
          { next: (value) => (result = value), error: reject, complete: () => resolve(result) },
        );
      });
    expect(await query()).toEqual({ data: { hello: 'world' } });
    const before = writes[0]!;
    for (let i = 0; i < 20; i++) expect(await query()).toEqual({ data: { hello: 'world' } });
    // Without corking, each operation costs two writes (next, then complete).
    expect(writes[0]! - before).toBe(20);
    await client.dispose();
    await transport.dispose();
  });

  it('closes a client that sends a server-only message with 4400, and logs nothing', async () => {
    const errors: unknown[] = [];
    const { url } = await serve((message, error) => errors.push([message, error]));
    const socket = new WebSocket(url, 'graphql-transport-ws');
    const closed = new Promise<number>((resolve) => socket.on('close', resolve));
    socket.on('open', () => {
      socket.send(JSON.stringify({ type: 'connection_init' }));
      socket.once('message', () => socket.send(JSON.stringify({ type: 'connection_ack' })));
    });
    expect(await closed).toBe(4400);
    expect(errors).toEqual([]);
  });

  it('waits for the write once a reader lags, so its events queue where they are made', async () => {
    const { url, wss } = await serve();
    const socket = new WebSocket(url, 'graphql-transport-ws');
    await new Promise((resolve) => socket.on('open', resolve));
    const [serverSide] = [...wss.clients];
    const tcp = (serverSide as unknown as { _socket: Socket })._socket;
    socket.send(JSON.stringify({ type: 'connection_init' }));
    await new Promise((resolve) => socket.once('message', resolve));
    // Fill the server's send buffer past its high-water mark, then ask again.
    tcp.cork();
    serverSide!.send('x'.repeat(tcp.writableHighWaterMark * 2));
    const full = serverSide!.bufferedAmount;
    socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: '{ hello }' } }));
    const replies: string[] = [];
    socket.on('message', (data) => replies.push(String(data)));
    await eventually(() => serverSide!.bufferedAmount > full);
    // Only the next is queued (a 2-byte frame header and its JSON); the complete waits for
    // it. (Without the wait, the complete would follow in the same turn, so it would show.)
    const next = JSON.stringify({ id: '1', type: 'next', payload: { data: { hello: 'world' } } });
    expect(serverSide!.bufferedAmount - full).toBe(2 + Buffer.byteLength(next));
    tcp.uncork();
    // The next goes out once the buffer drains, and then the complete.
    await eventually(() =>
      expect(replies.slice(1).map((r) => JSON.parse(r).type)).toEqual(['next', 'complete']),
    );
    socket.close();
  });
});
