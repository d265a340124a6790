import { BatchNeeded } from '../schema/batch-needed.js';
import { builder } from '../schema/builder.js';
import { StreamSession } from '../schema/stream-session.js';
import { StreamSessionEnded } from '../schema/stream-session-ended.js';
import { id } from '../schema/validation.js';
import type {
  BatchNeededEvent,
  StreamSessionEndedEvent,
  StreamSessionView,
} from '../state/model.js';

builder.subscriptionFields((t) => ({
  batchNeeded: t.field({
    type: BatchNeeded,
    description: [
      'Fires when a stream session (all of them, or the one named) comes to need',
      'a batch: once per need, not on every position update. A new subscription',
      'first receives every need that is pending at that moment, so an encoder',
      'that reconnects misses nothing. A need is pending until claimed; one that',
      'no client needs any more (it left, moved, or the need was covered another',
      'way) is withdrawn and not replayed. v2: several needs of one session may',
      'be pending at once.',
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
  streamSessionUpdated: t.field({
    type: StreamSession,
    description: [
      'The state of every live stream session (or the one named) first, then a',
      "session's state again whenever it changes: at most about 4 times a second",
      'per session (every 250 ms while it keeps changing), and always after its last',
      'change, so the latest state always arrives. Endings are not sent here: use',
      'streamSessionEnded. For dashboards.',
    ].join('\n'),
    args: { id: t.arg.id({ validate: id }) },
    authScopes: { admin: true, encoder: true },
    subscribe: (_root, args, { coordinator }) => coordinator.streamSessionUpdated(args.id),
    resolve: (view: StreamSessionView) => view,
  }),
}));
