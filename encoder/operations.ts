/**
 * The encoder worker's GraphQL operations, typed by gql.tada against
 * schema.graphql (through examples/graphql-env.d.ts; `gql.tada check` in
 * `npm run check:types` validates them).
 */
import { graphql, type ResultOf } from '../examples/graphql.js';

export const BatchNeededSubscription = graphql(`
  subscription EncoderBatchNeeded {
    batchNeeded {
      streamSession {
        id
      }
      reason
      batchNumber
      startSegment
      endSegment
      videoSourcePath
      videoStartOffset
      segmentDuration
      qualities
      isLastBatch
    }
  }
`);

export type Need = ResultOf<typeof BatchNeededSubscription>['batchNeeded'];

export const StreamSessionEndedSubscription = graphql(`
  subscription EncoderStreamSessionEnded {
    streamSessionEnded {
      id
      reason
    }
  }
`);

export const ClaimBatch = graphql(`
  mutation EncoderClaimBatch($input: SetCurrentBatchInput!) {
    setCurrentBatch(input: $input) {
      batchNumber
      startSegment
      endSegment
      qualities
    }
  }
`);

export const CompleteBatch = graphql(`
  mutation EncoderCompleteBatch($streamSessionId: ID!, $batchNumber: Int!) {
    completeBatch(streamSessionId: $streamSessionId, batchNumber: $batchNumber) {
      batchNumber
      isComplete
    }
  }
`);

/** What is made of a session, and where its slowest viewer is: what may be deleted. */
export const SessionProgress = graphql(`
  query EncoderSessionProgress($id: ID!) {
    streamSession(id: $id) {
      slowestSegment
      batches {
        batchNumber
        startSegment
        endSegment
        isComplete
        qualities
      }
    }
  }
`);

export const ReleaseSegments = graphql(`
  mutation EncoderReleaseSegments(
    $streamSessionId: ID!
    $startSegment: Int!
    $endSegment: Int!
    $qualities: [Quality!]
  ) {
    releaseSegments(
      streamSessionId: $streamSessionId
      startSegment: $startSegment
      endSegment: $endSegment
      qualities: $qualities
    )
  }
`);

/**
 * v2 addition (docs/pipeline-interfaces.md): renews the claim of a batch
 * still being made, so that it stalls BATCH_TIMEOUT after the last renewal.
 * CONFLICT when the batch is not being made any more (STALLED, complete).
 */
export const RenewBatchClaim = graphql(`
  mutation EncoderRenewBatchClaim($streamSessionId: ID!, $batchNumber: Int!) {
    renewBatchClaim(streamSessionId: $streamSessionId, batchNumber: $batchNumber) {
      batchNumber
      isStalled
    }
  }
`);
