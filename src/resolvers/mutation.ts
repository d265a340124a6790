import { BatchState } from '../schema/batch-state.js';
import { builder } from '../schema/builder.js';
import { ClientPosition } from '../schema/client-position.js';
import {
  CreateStreamSessionInput,
  SetCurrentBatchInput,
  UpdateClientPositionInput,
} from '../schema/inputs.js';
import { StreamSession } from '../schema/stream-session.js';
import { between, id, limits, nonNegative } from '../schema/validation.js';

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
    description: "Creates or moves the client's position. NOT_FOUND for an unknown stream session.",
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
      'Claims and starts a batch. batchNumber must be the next one: 0 when the',
      'session has none, currentBatch.batchNumber + 1 when the current batch is',
      'complete, or the current number again when that batch has STALLED.',
      'Anything else, including a second encoder racing for the same batch, is',
      'CONFLICT. startSegment <= endSegment, all values >= 0.',
    ].join('\n'),
    args: { input: t.arg({ type: SetCurrentBatchInput, required: true }) },
    authScopes: encoder,
    resolve: (_root, { input }, { coordinator }) => coordinator.setCurrentBatch(input),
  }),
  completeBatch: t.field({
    type: BatchState,
    description:
      'Marks the current batch complete. Idempotent; CONFLICT when batchNumber is not the current batch.',
    args: {
      streamSessionId: t.arg.id({ required: true, validate: id }),
      batchNumber: t.arg.int({ required: true, validate: nonNegative }),
    },
    authScopes: encoder,
    resolve: (_root, args, { coordinator }) =>
      coordinator.completeBatch(args.streamSessionId, args.batchNumber),
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
