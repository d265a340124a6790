import { builder } from '../schema/builder.js';
import { StreamSession } from '../schema/stream-session.js';
import { between, id, limits, nonNegative } from '../schema/validation.js';

builder.queryFields((t) => ({
  streamSession: t.field({
    type: StreamSession,
    nullable: true,
    args: { id: t.arg.id({ required: true, validate: id }) },
    authScopes: (_root, args) => ({
      admin: true,
      encoder: true,
      player: { streamSessionId: args.id },
    }),
    resolve: (_root, args, { coordinator }) => coordinator.getStreamSession(args.id),
  }),
  streamSessions: t.field({
    type: [StreamSession],
    description: 'Oldest first.',
    authScopes: { admin: true, encoder: true },
    args: {
      limit: t.arg.int({
        defaultValue: 100,
        validate: between(0, limits.pageSize),
      }),
      offset: t.arg.int({ defaultValue: 0, validate: nonNegative }),
    },
    resolve: (_root, args, { coordinator }) =>
      coordinator.listStreamSessions(args.limit ?? 100, args.offset ?? 0),
  }),
}));
