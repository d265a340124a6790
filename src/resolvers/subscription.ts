import { BatchNeeded } from '../schema/batch-needed.js';
import { builder } from '../schema/builder.js';
import { StreamSessionEnded } from '../schema/stream-session-ended.js';
import { id } from '../schema/validation.js';
import type { BatchNeededEvent, StreamSessionEndedEvent } from '../state/model.js';

builder.subscriptionFields((t) => ({
  batchNeeded: t.field({
    type: BatchNeeded,
    description: [
      'Fires when a stream session (all of them, or the one named) comes to need',
      'a batch: once per need, not on every position update. A new subscription',
      'first receives every need that is pending at that moment, so an encoder',
      'that reconnects misses nothing.',
    ].join('\n'),
    args: { streamSessionId: t.arg.id({ validate: id }) },
    authScopes: { admin: true, encoder: true },
    subscribe: (_root, args, { coordinator }) => coordinator.batchNeeded(args.streamSessionId),
    resolve: (event: BatchNeededEvent) => event,
  }),
  streamSessionEnded: t.field({
    type: StreamSessionEnded,
    description: [
      'Fires when a stream session (any, or the one named) ends, by endStreamSession',
      '(ENDED) or for want of clients (IDLE). Only endings after the subscription',
      'starts are sent.',
    ].join('\n'),
    args: { streamSessionId: t.arg.id({ validate: id }) },
    authScopes: { admin: true, encoder: true },
    subscribe: (_root, args, { coordinator }) =>
      coordinator.streamSessionEnded(args.streamSessionId),
    resolve: (event: StreamSessionEndedEvent) => event,
  }),
}));
