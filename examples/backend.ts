/**
 * What your backend does, with the admin token: create a stream session
 * when a viewer starts a video, and hand each player a token of its own
 * (bound to that stream session and that viewer) instead of any secret.
 */
import { graphql, httpRequest, type VariablesOf } from './graphql.js';

export const CreateStreamSession = graphql(`
  mutation CreateStreamSession($input: CreateStreamSessionInput!) {
    createStreamSession(input: $input) {
      id
      segmentDuration
      batchSize
      threshold
      lastSegment
    }
  }
`);

export const IssuePlayerToken = graphql(`
  mutation IssuePlayerToken($streamSessionId: ID!, $sessionId: ID!, $ttlSeconds: Int) {
    issueClientToken(streamSessionId: $streamSessionId, sessionId: $sessionId, ttlSeconds: $ttlSeconds)
  }
`);

export const EndStreamSession = graphql(`
  mutation EndStreamSession($id: ID!) {
    endStreamSession(id: $id)
  }
`);

/** An admin's view of the service: its endpoint and token (none with AUTH=off). */
export interface Admin {
  readonly url: string;
  readonly token?: string;
}

export async function createStreamSession(
  admin: Admin,
  input: VariablesOf<typeof CreateStreamSession>['input'],
) {
  const { createStreamSession } = await httpRequest(admin.url, admin.token, CreateStreamSession, {
    input,
  });
  return createStreamSession;
}

/** A token for one player of one stream session, valid for `ttlSeconds` (6 hours by default). */
export async function issuePlayerToken(
  admin: Admin,
  streamSessionId: string,
  sessionId: string,
  ttlSeconds?: number,
): Promise<string> {
  const { issueClientToken } = await httpRequest(admin.url, admin.token, IssuePlayerToken, {
    streamSessionId,
    sessionId,
    ttlSeconds,
  });
  return issueClientToken;
}

export async function endStreamSession(admin: Admin, id: string): Promise<boolean> {
  return (await httpRequest(admin.url, admin.token, EndStreamSession, { id })).endStreamSession;
}
