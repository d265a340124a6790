/**
 * The error texts both stores share (src/state/messages.ts). That the Lua
 * fills them in the same way is test/redis-messages.test.ts.
 */
import { describe, expect, it } from 'vitest';
import { MESSAGES, type MessageName, message } from '../src/state/messages.js';

describe('message', () => {
  it('fills in every value of every message', () => {
    const values = { id: 'abc', batchNumber: 3, expected: 2, current: 1 };
    const filled = Object.fromEntries(
      (Object.keys(MESSAGES) as MessageName[]).map((name) => [name, message(name, values)]),
    );
    expect(filled).toEqual({
      streamSessionNotFound: "Stream session 'abc' not found.",
      streamSessionExists: "Stream session 'abc' already exists.",
      batchStillGenerating:
        "Batch 1 of stream session 'abc' is still being generated; batch 3 cannot be claimed.",
      unexpectedBatch: "Stream session 'abc' expects batch 2 next, not batch 3.",
      noBatchToComplete: "Stream session 'abc' has no batch; batch 3 cannot be completed.",
      notCurrentBatch: "Batch 3 is not the current batch of stream session 'abc' (batch 1 is).",
    });
  });

  it('puts a value in as it is, even one that looks like a placeholder', () => {
    expect(
      message('unexpectedBatch', { id: '{expected} $& \\', expected: 0, batchNumber: 1 }),
    ).toBe("Stream session '{expected} $& \\' expects batch 0 next, not batch 1.");
  });

  it('leaves a placeholder without a value as written', () => {
    const values = { id: 'x' } as unknown as Parameters<typeof message<'unexpectedBatch'>>[1];
    expect(message('unexpectedBatch', values)).toBe(
      "Stream session 'x' expects batch {expected} next, not batch {batchNumber}.",
    );
  });
});
