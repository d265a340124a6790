import type { BatchNeed } from '../model.js';

/**
 * A need as the scripts encode it, made whole: cjson leaves out nil fields
 * and writes an empty list as {}. Used by the store (what a change
 * announced) and by the event bus (what arrives on the channel).
 */
export function normalize<T extends BatchNeed & { sequence: number }>(need: T): T {
  return {
    ...need,
    furthestSegment: need.furthestSegment ?? null,
    qualities: Array.isArray(need.qualities) ? need.qualities : [],
  };
}
