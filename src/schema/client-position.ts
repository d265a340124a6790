import type { ClientPosition as ClientPositionData } from '../state/model.js';
import { builder } from './builder.js';
import { DateTime } from './date-time.js';
import { Quality } from './quality.js';

export const ClientPosition = builder.objectRef<ClientPositionData>('ClientPosition').implement({
  description: 'Where one client (one player, keyed by sessionId) is in the stream.',
  fields: (t) => ({
    sessionId: t.exposeID('sessionId'),
    segmentNumber: t.exposeInt('segmentNumber'),
    quality: t.field({ type: Quality, resolve: (p) => p.quality }),
    lastUpdated: t.field({ type: DateTime, resolve: (p) => p.lastUpdated }),
  }),
});
