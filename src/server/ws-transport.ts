import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import { CloseCode, handleProtocols, makeServer, type ServerOptions } from 'graphql-ws';
import type { WebSocket, WebSocketServer } from 'ws';

/** What each graphql-ws context carries in `extra`, as with graphql-ws/use/ws. */
export interface SocketExtra {
  readonly socket: WebSocket;
  readonly request: IncomingMessage;
}

export interface TransportOptions {
  /** Milliseconds between pings; a socket that has not answered within as long is dropped. */
  readonly keepAlive: number;
  /** Where faults of the server itself are reported (never a client's bad message). */
  readonly onError: (message: string, error: unknown) => void;
}

/**
 * The graphql-transport-ws protocol (graphql-ws' `makeServer`) on a `ws`
 * server. It does what graphql-ws/use/ws does, with three differences:
 *
 * - A frame is handed to the socket without waiting for it to reach the
 *   kernel while the socket's buffer is below its high-water mark.
 *   graphql-ws awaits each send before the next; the socket keeps the order
 *   anyway. Past the mark, sends wait for the write as before, so a lagging
 *   reader's events queue where they are made (and are bounded there).
 * - The frames one turn of the event loop sends on a socket (an
 *   operation's `next` and `complete`) leave in one write: the socket is
 *   corked at the first and uncorked once that turn's callbacks and
 *   microtasks have run. Two writes per operation were a quarter of the
 *   server's CPU over WebSocket (bench/README.md).
 * - A client that sends a message only a server may send (`next`,
 *   `connection_ack`) is closed with 4400 Bad Request, without a stack trace
 *   in the logs: it is the client's fault, not the server's.
 */
export function serveGraphQLWs<E extends Record<PropertyKey, unknown>>(
  // biome-ignore lint/suspicious/noExplicitAny: connection params of any shape.
  options: ServerOptions<any, SocketExtra & E>,
  wss: WebSocketServer,
  { keepAlive, onError }: TransportOptions,
): { dispose(): Promise<void> } {
  const server = makeServer(options);
  wss.options.handleProtocols = handleProtocols;
  wss.on('error', (error) => {
    onError('WebSocket server error', error);
    for (const client of wss.clients)
      client.close(CloseCode.InternalServerError, 'Internal server error');
  });

  wss.on('connection', (socket, request) => {
    socket.once('error', (error) => {
      onError('WebSocket error', error);
      socket.close(CloseCode.InternalServerError, 'Internal server error');
    });

    let pongWait: NodeJS.Timeout | null = null;
    const pingInterval =
      keepAlive > 0 && Number.isFinite(keepAlive)
        ? setInterval(() => {
            if (socket.readyState !== socket.OPEN) return;
            pongWait = setTimeout(() => socket.terminate(), keepAlive);
            socket.once('pong', () => {
              if (pongWait) clearTimeout(pongWait);
              pongWait = null;
            });
            socket.ping();
          }, keepAlive)
        : null;

    const send = corkedSender(socket);
    const highWaterMark = tcpOf(socket)?.writableHighWaterMark ?? 16_384;
    const closed = server.opened(
      {
        protocol: socket.protocol,
        send: (data) => {
          if (socket.readyState !== socket.OPEN) return Promise.resolve();
          // A socket with room goes on at once; one whose reader lags makes the
          // sender wait for the write, so that unread events queue (and are
          // bounded) where they are made rather than in the socket's buffer.
          if (socket.bufferedAmount < highWaterMark) {
            send(data);
            return Promise.resolve();
          }
          return new Promise<void>((resolve, reject) =>
            send(data, (error) => (error ? reject(error) : resolve())),
          );
        },
        close: (code, reason) => socket.close(code, reason),
        onMessage: (handle) =>
          socket.on('message', async (data) => {
            try {
              await handle(String(data));
            } catch (error) {
              if (isUnexpectedMessage(error)) {
                socket.close(CloseCode.BadRequest, closeReason(error));
                return;
              }
              onError('GraphQL over WebSocket: a message failed', error);
              socket.close(CloseCode.InternalServerError, 'Internal server error');
            }
          }),
      },
      { socket, request } as SocketExtra & E,
    );

    socket.once('close', (code, reason) => {
      if (pongWait) clearTimeout(pongWait);
      if (pingInterval) clearInterval(pingInterval);
      void closed(code, String(reason));
    });
  });

  return {
    async dispose() {
      for (const client of wss.clients) client.close(1001, 'Going away');
      wss.removeAllListeners();
    },
  };
}

/**
 * Sends frames on a socket, corking its TCP socket at the first frame of a
 * turn and uncorking it after the turn: everything sent in between leaves
 * in one write. Without a TCP socket to cork (none is documented by `ws`),
 * frames go out one by one, as before.
 */
function corkedSender(socket: WebSocket): (data: string, done?: (error?: Error) => void) => void {
  const tcp = tcpOf(socket);
  if (tcp === undefined) return (data, done) => socket.send(data, done);
  let corked = false;
  const uncork = () => {
    corked = false;
    tcp.uncork();
  };
  return (data, done) => {
    if (!corked) {
      corked = true;
      tcp.cork();
      // After the microtasks of this turn: an operation's `complete` follows its
      // `next` a few awaits later, all in microtasks.
      process.nextTick(uncork);
    }
    socket.send(data, done);
  };
}

/** The TCP socket under a WebSocket, when `ws` keeps it where it has for years. */
function tcpOf(socket: WebSocket): Socket | undefined {
  const tcp = (socket as unknown as { _socket?: Socket })._socket;
  return tcp !== undefined && typeof tcp.cork === 'function' ? tcp : undefined;
}

/** graphql-ws throws this for a message only a server may send. */
function isUnexpectedMessage(error: unknown): error is Error {
  return error instanceof Error && error.message.startsWith('Unexpected message of type');
}

/** A close reason fits in 123 bytes. */
function closeReason(error: Error): string {
  return Buffer.byteLength(error.message) <= 123 ? error.message : 'Bad request';
}
