/**
 * The texts of the domain's NOT_FOUND and CONFLICT errors, in one table for
 * both stores: the TypeScript throws them through `message`, and the Redis
 * store hands the same table to its Lua (see redis/lua.ts), whose
 * `message(name, values)` fills it in the same way. `{name}` is a value to
 * fill in; names are letters and digits only.
 */
export const MESSAGES = {
  streamSessionNotFound: "Stream session '{id}' not found.",
  streamSessionExists: "Stream session '{id}' already exists.",
  batchStillGenerating:
    "Batch {current} of stream session '{id}' is still being generated; batch {batchNumber} cannot be claimed.",
  unexpectedBatch: "Stream session '{id}' expects batch {expected} next, not batch {batchNumber}.",
  noBatchToComplete: "Stream session '{id}' has no batch; batch {batchNumber} cannot be completed.",
  notCurrentBatch:
    "Batch {batchNumber} is not the current batch of stream session '{id}' (batch {current} is).",
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
