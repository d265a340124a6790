import { readFileSync } from 'node:fs';

/**
 * The Redis store's atomic steps: one Lua script per change, in ./scripts/,
 * each with a header saying what it does, its ARGV, its reply and the
 * TypeScript it mirrors. scripts/prelude.lua (the helpers, and the legend of
 * the keys) is prepended to each.
 *
 * Read once, when this module loads, relative to this file (not to the
 * working directory): so it works under tsx, vitest, and from a copy of src/
 * elsewhere (the benchmark's BENCH_SRC).
 */
const read = (file: string) => readFileSync(new URL(`./scripts/${file}`, import.meta.url), 'utf8');

const PRELUDE = read('prelude.lua');

const script = (file: string) => `${PRELUDE}\n${read(file)}`;

/** name -> Lua source, for ioredis defineCommand (numberOfKeys 0: keys come from the prefix). */
export const SCRIPTS = {
  hbcCreate: script('create-stream-session.lua'),
  hbcEnd: script('end-stream-session.lua'),
  hbcUpdate: script('update-client-position.lua'),
  hbcRemove: script('remove-client.lua'),
  hbcSetBatch: script('set-current-batch.lua'),
  hbcComplete: script('complete-batch.lua'),
  hbcExpireClient: script('expire-client.lua'),
  hbcStallBatch: script('stall-batch.lua'),
  hbcEndIdle: script('end-idle-session.lua'),
  hbcDueWork: script('due-work.lua'),
  hbcPending: script('pending-needs.lua'),
} as const;
