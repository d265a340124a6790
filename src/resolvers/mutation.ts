import { BatchState } from '../schema/batch-state.js';
import { builder } from '../schema/builder.js';
import { ClientPosition } from '../schema/client-position.js';
import {
  CreateStreamSessionInput,
  SetCurrentBatchInput,
  UpdateClientPositionInput,
} from '../schema/inputs.js';
import { Quality } from '../schema/quality.js';
import { StreamSession } from '../schema/stream-session.js';
import { between, id, limits, nonNegative, qualities, segmentRange } from '../schema/validation.js';

const admin = { admin: true } as const;
const encoder = { admin: true, encoder: true } as const;
const player = (streamSessionId: string, sessionId: string) => ({
  admin: true,
  player: { streamSessionId, sessionId },
});

builder.mutationFields((t) => ({
  createStreamSession: t.field({
    type: StreamSession,
    args: { input: t.arg({ type: CreateStreamSessionInput, required: true }) },
    authScopes: admin,
    resolve: (_root, { input }, { coordinator }) => coordinator.createStreamSession(input),
  }),
  endStreamSession: t.boolean({
    description: 'True when the session existed. Its clients and batch go with it.',
    args: { id: t.arg.id({ required: true, validate: id }) },
    authScopes: admin,
    resolve: (_root, args, { coordinator }) => coordinator.endStreamSession(args.id),
  }),
  updateClientPosition: t.field({
    type: ClientPosition,
    description:
      "Creates or moves the client's position. NOT_FOUND for an unknown stream session; v2: BAD_USER_INPUT past the video's last segment.",
    args: { input: t.arg({ type: UpdateClientPositionInput, required: true }) },
    authScopes: (_root, { input }) => player(input.streamSessionId, input.sessionId),
    resolve: (_root, { input }, { coordinator, positionRateLimiter }) =>
      positionRateLimiter.within(input.streamSessionId, input.sessionId, () =>
        coordinator.updateClientPosition(input),
      ),
  }),
  removeClient: t.boolean({
    description: 'True when the client was in the session.',
    args: {
      streamSessionId: t.arg.id({ required: true, validate: id }),
      sessionId: t.arg.id({ required: true, validate: id }),
    },
    authScopes: (_root, args) => player(args.streamSessionId, args.sessionId),
    resolve: (_root, args, { coordinator }) =>
      coordinator.removeClient(args.streamSessionId, args.sessionId),
  }),
  setCurrentBatch: t.field({
    type: BatchState,
    description: [
      'Claims and starts a batch. v2: batchNumber is that of a need announced and',
      "not yet claimed (its range must contain the need's startSegment), or of a",
      'batch that has STALLED (its range again), or, with no need pending, the',
      'next unused number (a claim ahead of need). Several batches of one session',
      'may be generated at once. Anything else, including a second encoder racing',
      'for the same batch, and a range that overlaps a batch of the same',
      'renditions (any shared) still being generated, or a claim ahead of need',
      'while a need is pending, is CONFLICT. BAD_USER_INPUT when',
      'startSegment > endSegment, a value is negative, endSegment is past the',
      "video's last segment, videoStartOffset is not startSegment *",
      "segmentDuration, or videoSourcePath is not the session's.",
    ].join('\n'),
    args: { input: t.arg({ type: SetCurrentBatchInput, required: true }) },
    authScopes: encoder,
    resolve: (_root, { input }, { coordinator }) => coordinator.setCurrentBatch(input),
  }),
  completeBatch: t.field({
    type: BatchState,
    description:
      'Marks a batch being generated complete. Idempotent; CONFLICT when batchNumber is not a batch of the session (v1: not the current batch).',
    args: {
      streamSessionId: t.arg.id({ required: true, validate: id }),
      batchNumber: t.arg.int({ required: true, validate: nonNegative }),
    },
    authScopes: encoder,
    resolve: (_root, args, { coordinator }) =>
      coordinator.completeBatch(args.streamSessionId, args.batchNumber),
  }),
  renewBatchClaim: t.field({
    type: BatchState,
    description: [
      'Addition to v2: the encoder making a batch says it is still at work, so a',
      'slow but live encode is not STALLED. The batch then stalls BATCH_TIMEOUT',
      'after the last renewal instead of after its claim. Renew well within',
      'BATCH_TIMEOUT, and only while the encode makes progress: a hung encoder',
      'must still stall. Returns the batch, unchanged. NOT_FOUND for an unknown',
      'stream session; CONFLICT when the batch is not being made (no such batch,',
      'complete, or STALLED: announced again, it is for whoever claims it next).',
    ].join('\n'),
    args: {
      streamSessionId: t.arg.id({ required: true, validate: id }),
      batchNumber: t.arg.int({ required: true, validate: nonNegative }),
    },
    authScopes: encoder,
    resolve: (_root, args, { coordinator }) =>
      coordinator.renewBatchClaim(args.streamSessionId, args.batchNumber),
  }),
  releaseSegments: t.boolean({
    description: [
      'v2: an encoder deleted these segments (all renditions, or those named):',
      'made segments there are no longer covered (a batch still being made is',
      'untouched). Clients there make needs at once, and clients coming there',
      'later make needs, by the rules of BatchNeededReason. True when any made',
      'segment was there.',
    ].join('\n'),
    args: {
      streamSessionId: t.arg.id({ required: true, validate: id }),
      startSegment: t.arg.int({ required: true, validate: nonNegative }),
      endSegment: t.arg.int({ required: true, validate: nonNegative }),
      qualities: t.arg({ type: [Quality], validate: qualities }),
    },
    validate: segmentRange,
    authScopes: encoder,
    resolve: (_root, { streamSessionId, startSegment, endSegment, qualities }, { coordinator }) =>
      coordinator.releaseSegments({ streamSessionId, startSegment, endSegment, qualities }),
  }),
  issueClientToken: t.string({
    description: [
      'Issues a player token: a signed JWT that lets one client (sessionId) of one',
      'stream session report and remove its own position and read its session,',
      'for ttlSeconds (default 6 hours, at most 7 days). Admin only; NOT_FOUND for',
      'an unknown stream session.',
    ].join('\n'),
    args: {
      streamSessionId: t.arg.id({ required: true, validate: id }),
      sessionId: t.arg.id({ required: true, validate: id }),
      ttlSeconds: t.arg.int({ validate: between(1, limits.tokenTtlSeconds) }),
    },
    authScopes: admin,
    resolve: async (_root, args, { coordinator, authenticator }) => {
      await coordinator.requireStreamSession(args.streamSessionId);
      return authenticator.issueClientToken(
        args.streamSessionId,
        args.sessionId,
        args.ttlSeconds ?? limits.defaultTokenTtlSeconds,
      );
    },
  }),
}));
