import type { CoveredRange as CoveredRangeData } from '../state/model.js';
import { builder } from './builder.js';
import { Quality } from './quality.js';

export const CoveredRange = builder.objectRef<CoveredRangeData>('CoveredRange').implement({
  description: 'v2: consecutive segments of one rendition that are made or being made.',
  fields: (t) => ({
    quality: t.field({ type: Quality, resolve: (r) => r.quality }),
    startSegment: t.exposeInt('startSegment'),
    endSegment: t.exposeInt('endSegment', { description: 'Inclusive.' }),
  }),
});
