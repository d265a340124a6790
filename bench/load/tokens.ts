/**
 * Player tokens, minted as an operator would: the `issueClientToken`
 * mutation with the admin token, one token per player (its stream session
 * and session id). Over one graphql-transport-ws connection with a few
 * hundred operations in flight, so 10,000 tokens take about a second.
 */
import WebSocket from 'ws';

const ISSUE = `mutation Issue($s: ID!, $c: ID!) { issueClientToken(streamSessionId: $s, sessionId: $c) }`;

/** The first players of a layout of `sessions` × `clientsPerSession`, by client number. */
export interface Player {
  readonly streamSessionId: string;
  readonly sessionId: string;
}

/** `Authorization` header values, one per player, in the order of `players`; throws on any error. */
export async function mintPlayerTokens(
  wsUrl: string,
  adminToken: string,
  players: readonly Player[],
  inFlight = 256,
): Promise<string[]> {
  const socket = new WebSocket(wsUrl, 'graphql-transport-ws', { perMessageDeflate: false });
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject);
    socket.once('open', () =>
      socket.send(
        JSON.stringify({
          type: 'connection_init',
          payload: { authorization: `Bearer ${adminToken}` },
        }),
      ),
    );
    socket.once('message', (data) => {
      const { type } = JSON.parse(String(data));
      if (type === 'connection_ack') resolve();
      else reject(new Error(`minting tokens: expected connection_ack, got ${data}`));
    });
  });
  const tokens = new Array<string>(players.length);
  try {
    await new Promise<void>((resolve, reject) => {
      let sent = 0;
      let done = 0;
      const send = () => {
        const player = players[sent]!;
        socket.send(
          JSON.stringify({
            id: String(sent++),
            type: 'subscribe',
            payload: {
              query: ISSUE,
              variables: { s: player.streamSessionId, c: player.sessionId },
            },
          }),
        );
      };
      socket.on('message', (data) => {
        const { id, type, payload } = JSON.parse(String(data));
        if (type === 'next') {
          const token = payload?.data?.issueClientToken;
          if (typeof token !== 'string') {
            reject(new Error(`issueClientToken failed: ${JSON.stringify(payload)}`));
            return;
          }
          tokens[Number(id)] = `Bearer ${token}`;
        } else if (type === 'error') {
          reject(new Error(`issueClientToken failed: ${JSON.stringify(payload)}`));
        } else if (type === 'complete') {
          done++;
          if (done === players.length) resolve();
          else if (sent < players.length) send();
        }
      });
      socket.once('close', (code) => reject(new Error(`minting tokens: socket closed (${code})`)));
      if (players.length === 0) resolve();
      while (sent < Math.min(inFlight, players.length)) send();
    });
  } finally {
    socket.close();
  }
  return tokens;
}
