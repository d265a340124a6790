import { readFileSync } from 'node:fs';
import { MESSAGES } from '../messages.js';

/**
 * The Redis store's atomic steps: one Lua script per change, in ./scripts/,
 * each with a header saying what it does, its ARGV, its reply and the
 * TypeScript it mirrors. scripts/prelude.lua (the helpers, and the legend of
 * the keys) is prepended to each, after the error texts of messages.ts
 * written as a Lua table.
 *
 * Read once, when this module loads, relative to this file (not to the
 * working directory): so it works under tsx, vitest, and from a copy of src/
 * elsewhere (the benchmark's BENCH_SRC).
 */
const read = (file: string) => readFileSync(new URL(`./scripts/${file}`, import.meta.url), 'utf8');

/**
 * `text` as a Lua string literal. Every byte of its UTF-8 but printable
 * ASCII (and the quote and backslash) is written as a decimal escape, the
 * one escape Lua 5.1 reads for any byte, three digits so that a digit after
 * it is not taken in.
 */
export function luaString(text: string): string {
  let literal = '"';
  for (const byte of Buffer.from(text, 'utf8')) {
    const plain = byte >= 0x20 && byte < 0x7f && byte !== 0x22 && byte !== 0x5c;
    literal += plain ? String.fromCharCode(byte) : `\\${String(byte).padStart(3, '0')}`;
  }
  return `${literal}"`;
}

const messagesTable = Object.entries(MESSAGES)
  .map(([name, text]) => `  [${luaString(name)}] = ${luaString(text)},\n`)
  .join('');

/** The helpers every script starts with: MESSAGES, then scripts/prelude.lua. */
export const PRELUDE = `-- The error texts of src/state/messages.ts, written by lua.ts.
local MESSAGES = {
${messagesTable}}

${read('prelude.lua')}`;

const script = (file: string) => `${PRELUDE}\n${read(file)}`;

/** name -> Lua source, for ioredis defineCommand (numberOfKeys 0: keys come from the prefix). */
export const SCRIPTS = {
  hbcCreate: script('create-stream-session.lua'),
  hbcEnd: script('end-stream-session.lua'),
  hbcUpdate: script('update-client-position.lua'),
  hbcRemove: script('remove-client.lua'),
  hbcSetBatch: script('set-current-batch.lua'),
  hbcComplete: script('complete-batch.lua'),
  hbcRelease: script('release-segments.lua'),
  hbcRenew: script('renew-batch-claim.lua'),
  hbcExpireClient: script('expire-client.lua'),
  hbcStallBatch: script('stall-batch.lua'),
  hbcEndIdle: script('end-idle-session.lua'),
  hbcDueWork: script('due-work.lua'),
  hbcPending: script('pending-needs.lua'),
} as const;
