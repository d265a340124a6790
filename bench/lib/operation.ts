/**
 * The one operation the throughput targets answer: a player reporting its
 * position. The query string is constant; the variables vary per request.
 */
export const UPDATE = `mutation Update($input: UpdateClientPositionInput!) {
  updateClientPosition(input: $input) { sessionId segmentNumber quality lastUpdated }
}`;

export const QUALITIES = ['Q1080P', 'Q720P', 'Q480P'] as const;

/** What the floor and the peer resolve to, and the limit answers byte for byte. */
export const CONSTANT_POSITION = {
  sessionId: 'client-0',
  segmentNumber: 15,
  quality: 'Q720P',
  lastUpdated: '2026-01-01T00:00:00.000Z',
} as const;

export const CONSTANT_REPLY = JSON.stringify({ data: { updateClientPosition: CONSTANT_POSITION } });

/** The one-field schema of the floor and the peer: the same input and output shapes as ours. */
export const ONE_FIELD_SDL = /* GraphQL */ `
  enum Quality { Q1080P Q720P Q480P }
  input UpdateClientPositionInput {
    streamSessionId: ID!
    sessionId: ID!
    segmentNumber: Int!
    quality: Quality!
  }
  type ClientPosition { sessionId: ID! segmentNumber: Int! quality: Quality! lastUpdated: String! }
  type Query { ok: Boolean! }
  type Mutation { updateClientPosition(input: UpdateClientPositionInput!): ClientPosition! }
`;

export const streamSessionId = (s: number) => `bench-${s}`;

/**
 * The n-th update of a load: client `n mod C` of session `client mod S`, whose
 * segment advances one per pass over all clients (plus a small per-client
 * spread), so every session's furthest viewer keeps moving and crosses the
 * threshold of its batches: needs are announced all along, as in production.
 */
export function updateInput(n: number, sessions: number, clientsPerSession: number) {
  const clients = sessions * clientsPerSession;
  const client = n % clients;
  return {
    ...playerOf(client, sessions),
    segmentNumber: Math.floor(n / clients) + (client % 7),
    quality: QUALITIES[client % 3] as string,
  };
}

/** Client `client` of the layout as a player: its stream session and session id, as updateInput names them. */
export function playerOf(client: number, sessions: number) {
  return { streamSessionId: streamSessionId(client % sessions), sessionId: `client-${client}` };
}

/** Every client of a layout as a player, by client number (the n-th update is client n mod clients). */
export function playersOf(sessions: number, clientsPerSession: number) {
  return Array.from({ length: sessions * clientsPerSession }, (_, client) =>
    playerOf(client, sessions),
  );
}
