/**
 * The texts of the domain's NOT_FOUND, CONFLICT and BAD_USER_INPUT errors, in one table for
 * both stores: the TypeScript throws them through `message`, and the Redis
 * store hands the same table to its Lua (see redis/lua.ts), whose
 * `message(name, values)` fills it in the same way. `{name}` is a value to
 * fill in; names are letters and digits only.
 */
export const MESSAGES = {
  streamSessionNotFound: "Stream session '{id}' not found.",
  streamSessionExists: "Stream session '{id}' already exists.",
  // BAD_USER_INPUT: what contradicts the session itself.
  pastLastSegment:
    "Segment {segmentNumber} is past the last segment ({lastSegment}) of stream session '{id}'.",
  claimBackwards:
    'startSegment ({startSegment}) must not be greater than endSegment ({endSegment}).',
  claimPastEnd:
    "endSegment {endSegment} is past the last segment ({lastSegment}) of stream session '{id}'.",
  claimOffset:
    'videoStartOffset must be startSegment * segmentDuration = {startSegment} * {segmentDuration} = {expected}, not {videoStartOffset}.',
  claimSource: "videoSourcePath is not that of stream session '{id}'.",
  claimNoQualities: 'qualities must name at least one rendition when given.',
  // CONFLICT: what contradicts the session's state now.
  batchStillGenerating:
    "Batch {batchNumber} of stream session '{id}' was already claimed and is still being generated.",
  batchComplete:
    "Batch {batchNumber} of stream session '{id}' was already claimed and is complete.",
  unexpectedBatch: "Stream session '{id}' expects batch {expected} next, not batch {batchNumber}.",
  needsPending:
    "Stream session '{id}' has needs pending (batches {pending}): claim one of them, not batch {batchNumber}.",
  claimMissesNeed:
    "Batch {batchNumber} of stream session '{id}' was announced from segment {startSegment}: the claimed range must contain it.",
  claimMissesQualities:
    "Batch {batchNumber} of stream session '{id}' must make the renditions it was announced for ({qualities}).",
  stalledRange:
    "Batch {batchNumber} of stream session '{id}' stalled: claim its range {startSegment}-{endSegment} again.",
  stalledQualities:
    "Batch {batchNumber} of stream session '{id}' stalled: claim it again in its renditions ({qualities}).",
  claimOverlapsBatch:
    "Batch {batchNumber} of stream session '{id}' overlaps batch {other} (segments {startSegment}-{endSegment}), still being generated in a shared rendition.",
  claimOverlapsNeed:
    "Batch {batchNumber} of stream session '{id}' overlaps batch {other} (segments {startSegment}-{endSegment}), announced for a shared rendition.",
  notABatch: "Stream session '{id}' has no batch {batchNumber}.",
  renewComplete:
    "Batch {batchNumber} of stream session '{id}' is complete: there is no claim to renew.",
  renewStalled:
    "Batch {batchNumber} of stream session '{id}' stalled and was announced again: claim it anew to make it.",
} as const;

export type MessageName = keyof typeof MESSAGES;

/** The `{name}`s of a template, as a union of their names. */
type Placeholders<T extends string> = T extends `${string}{${infer Name}}${infer Rest}`
  ? Name | Placeholders<Rest>
  : never;

/** The values a message needs, by name. */
export type MessageValues<N extends MessageName> = Record<
  Placeholders<(typeof MESSAGES)[N]>,
  string | number
>;

// The same pattern as the Lua's '{(%w+)}'; one pass, so a value that itself
// looks like `{name}` is left as it is.
const PLACEHOLDER = /\{([A-Za-z0-9]+)\}/g;

/** The message `name` with its values filled in; a `{name}` without a value stays as written. */
export function message<N extends MessageName>(name: N, values: MessageValues<N>): string {
  const given: Record<string, string | number> = values;
  return MESSAGES[name].replace(PLACEHOLDER, (placeholder, key: string) =>
    Object.hasOwn(given, key) ? String(given[key]) : placeholder,
  );
}
