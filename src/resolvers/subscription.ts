import { BatchNeeded } from '../schema/batch-needed.js';
import { builder } from '../schema/builder.js';
import { id } from '../schema/validation.js';
import type { BatchNeededEvent } from '../state/model.js';

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
    subscribe: (_root, args, { coordinator }) => coordinator.batchNeeded(args.streamSessionId),
    resolve: (event: BatchNeededEvent) => event,
  }),
}));
