import {
  StreamSessionEndReason as EndReasonValues,
  type StreamSessionEndedEvent,
} from '../state/model.js';
import { builder } from './builder.js';
import { DateTime } from './date-time.js';

export const StreamSessionEndReason = builder.enumType('StreamSessionEndReason', {
  values: {
    [EndReasonValues.ENDED]: { description: 'endStreamSession was called.' },
    [EndReasonValues.IDLE]: {
      description: 'The session had no clients for the idle timeout (SESSION_IDLE_TIMEOUT).',
    },
  } as const,
});

export const StreamSessionEnded = builder
  .objectRef<StreamSessionEndedEvent>('StreamSessionEnded')
  .implement({
    description:
      'A stream session has ended: its clients and batch are gone, and an encoder may stop work on it and delete its segments.',
    fields: (t) => ({
      id: t.exposeID('id'),
      reason: t.field({ type: StreamSessionEndReason, resolve: (e) => e.reason }),
      endedAt: t.field({ type: DateTime, resolve: (e) => e.endedAt }),
    }),
  });
