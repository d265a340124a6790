/**
 * An encoder worker, as in production: it listens to batchNeeded over
 * graphql-ws and claims and completes each batch it hears of at once, so the
 * load's clients keep crossing thresholds and needs keep being announced
 * ("real events") while a target runs. Sessions whose id starts with
 * `ignorePrefix` are left alone (the latency phase drives its own). With
 * access control on it connects with the encoder token, as an encoder does.
 */
import { type Client, createClient } from 'graphql-ws';
import WebSocket from 'ws';

const NEEDED = `subscription { batchNeeded {
  streamSession { id } reason batchNumber startSegment endSegment videoSourcePath videoStartOffset
} }`;
const CLAIM = `mutation Claim($input: SetCurrentBatchInput!) { setCurrentBatch(input: $input) { batchNumber } }`;
const COMPLETE = `mutation Complete($id: ID!, $n: Int!) {
  completeBatch(streamSessionId: $id, batchNumber: $n) { isComplete }
}`;

export interface Encoder {
  readonly counts: { needs: number; completed: number; failed: number };
  stop(): Promise<void>;
}

function request(client: Client, query: string, variables: Record<string, unknown>) {
  return new Promise<any>((resolve, reject) => {
    let result: any;
    client.subscribe(
      { query, variables },
      {
        next: (value) => {
          result = value;
        },
        error: reject,
        complete: () => resolve(result),
      },
    );
  });
}

export function startEncoder(
  wsUrl: string,
  encoderToken: string | undefined,
  ignorePrefix = 'lat-',
): Encoder {
  const client = createClient({
    url: wsUrl,
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    connectionParams: encoderToken === undefined ? {} : { authorization: `Bearer ${encoderToken}` },
  });
  const counts = { needs: 0, completed: 0, failed: 0 };
  const stopSubscription = client.subscribe<any>(
    { query: NEEDED },
    {
      next: async ({ data }) => {
        const need = data?.batchNeeded;
        if (!need || need.streamSession.id.startsWith(ignorePrefix)) return;
        counts.needs++;
        const id = need.streamSession.id;
        try {
          const claimed = await request(client, CLAIM, {
            input: {
              streamSessionId: id,
              batchNumber: need.batchNumber,
              startSegment: need.startSegment,
              endSegment: need.endSegment,
              videoSourcePath: need.videoSourcePath,
              videoStartOffset: need.videoStartOffset,
            },
          });
          if (claimed?.errors) throw new Error(JSON.stringify(claimed.errors));
          const done = await request(client, COMPLETE, { id, n: need.batchNumber });
          if (done?.errors) throw new Error(JSON.stringify(done.errors));
          counts.completed++;
        } catch {
          // A need overtaken by a newer one (a seek) loses its claim: expected now and then.
          counts.failed++;
        }
      },
      error: (error) => console.error('encoder subscription failed', error),
      complete: () => {},
    },
  );
  return {
    counts,
    async stop() {
      stopSubscription();
      await client.dispose();
    },
  };
}
