/**
 * The error texts come from one table (src/state/messages.ts): the Lua that
 * Redis runs fills them in exactly as the TypeScript does, and each error
 * the Redis store raises (NOT_FOUND, CONFLICT, BAD_USER_INPUT) reads as the
 * memory store's, with the same code.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../src/config.js';
import { DomainError } from '../src/state/errors.js';
import { LocalEventBus } from '../src/state/events.js';
import { MemoryStore } from '../src/state/memory-store.js';
import { MESSAGES, type MessageName, message } from '../src/state/messages.js';
import type { Quality, SetCurrentBatchInput, StreamSessionSettings } from '../src/state/model.js';
import { luaString, PRELUDE } from '../src/state/redis/lua.js';
import { RedisStore } from '../src/state/redis/redis-store.js';
import type { StreamSessionStore } from '../src/state/store.js';
import { deleteKeys } from './fixtures.js';

const prefix = `hbc-test:${randomUUID()}:`;
const url = process.env.REDIS_URL ?? defaultConfig.redisUrl;
let redis: Redis;
let store: RedisStore;

beforeAll(async () => {
  redis = new Redis(url);
  store = new RedisStore({ url, keyPrefix: prefix, timeouts: defaultConfig });
  await store.connect();
});

afterAll(async () => {
  redis.disconnect();
  await store.close();
  await deleteKeys(url, prefix);
});

/** Runs `body` after the scripts' prelude, with ARGV[1] the prefix. */
const lua = async (body: string, ...args: string[]) =>
  (await redis.eval(`${PRELUDE}\n${body}`, 0, prefix, ...args)) as string;

// Quotes, a backslash, a newline, a Lua pattern's %, a placeholder, and UTF-8.
const awkward = `it's "q" \\ %1 {expected}\n\u00e9 \u{1F3AC} \u00019`;

describe('error messages in Lua', () => {
  it('are the TypeScript table, byte for byte', async () => {
    for (const text of [...Object.values(MESSAGES), awkward]) {
      expect(await lua('return loadstring(ARGV[2])()', `return ${luaString(text)}`)).toBe(text);
    }
  });

  it('are filled in as message() fills them in, for each message', async () => {
    // A value for every placeholder of every message.
    const values = {
      id: awkward,
      batchNumber: 12,
      expected: 11,
      current: 10,
      segmentNumber: -3,
      lastSegment: 49,
      startSegment: 20,
      endSegment: 39,
      videoStartOffset: 999,
      segmentDuration: 6,
      pending: '1, 2',
      qualities: '1080p, 480p',
      other: 7,
    };
    for (const name of Object.keys(MESSAGES) as MessageName[]) {
      const filled = await lua(
        'return message(ARGV[2], cjson.decode(ARGV[3]))',
        name,
        JSON.stringify(values),
      );
      expect(filled, name).toBe(message(name, values as never));
      // Every placeholder was given a value (so every one was filled in here).
      for (const [, key] of MESSAGES[name].matchAll(/\{([A-Za-z0-9]+)\}/g)) {
        expect(Object.keys(values), `${name}: {${key}}`).toContain(key);
      }
    }
  });

  it('keep a placeholder without a value as written, as message() does', async () => {
    const filled = await lua('return message(ARGV[2], { id = "x" })', 'unexpectedBatch');
    expect(filled).toBe(message('unexpectedBatch', { id: 'x' } as never));
  });
});

describe('each NOT_FOUND, CONFLICT and BAD_USER_INPUT', () => {
  const claim = (
    batchNumber: number,
    startSegment: number,
    endSegment: number,
    more: Partial<SetCurrentBatchInput> = {},
  ): SetCurrentBatchInput => ({
    streamSessionId: 'm1',
    batchNumber,
    startSegment,
    endSegment,
    videoSourcePath: '/v.mp4',
    videoStartOffset: startSegment * 6,
    ...more,
  });
  // 300 s in segments of 6 s: the last segment is 49.
  const session: StreamSessionSettings = {
    id: 'm1',
    videoSourcePath: '/v.mp4',
    segmentDuration: 6,
    batchSize: 20,
    threshold: 5,
    startSegment: 0,
    durationSeconds: 300,
    lastSegment: 49,
    qualities: ['1080p', '720p'],
  };
  const at = (sessionId: string, segmentNumber: number, quality: Quality) => ({
    streamSessionId: 'm1',
    sessionId,
    segmentNumber,
    quality,
  });

  /** What each failing change raises, on one store, as code and text: one of each message. */
  async function errors(s: StreamSessionStore): Promise<Record<MessageName, [string, string]>> {
    const raised = async (change: () => unknown): Promise<[string, string]> => {
      try {
        await change();
      } catch (error) {
        if (error instanceof DomainError) return [error.code, error.message];
        throw error;
      }
      throw new Error('no error');
    };
    await s.createStreamSession(session, 1);
    const early = {
      streamSessionNotFound: await raised(() => s.completeBatch('absent', 0, 2)),
      streamSessionExists: await raised(() => s.createStreamSession(session, 2)),
      pastLastSegment: await raised(() => s.updateClientPosition(at('p', 50, '720p'), 2)),
      claimBackwards: await raised(() => s.setCurrentBatch(claim(0, 5, 4), 2)),
      claimPastEnd: await raised(() => s.setCurrentBatch(claim(0, 0, 50), 2)),
      claimOffset: await raised(() =>
        s.setCurrentBatch(claim(0, 0, 19, { videoStartOffset: 1 }), 2),
      ),
      claimSource: await raised(() =>
        s.setCurrentBatch(claim(0, 0, 19, { videoSourcePath: '/x.mp4' }), 2),
      ),
      claimNoQualities: await raised(() =>
        s.setCurrentBatch(claim(0, 0, 19, { qualities: [] }), 2),
      ),
      // FIRST_BATCH (0, segments 0-19) is pending.
      needsPending: await raised(() => s.setCurrentBatch(claim(1, 0, 19), 2)),
      claimMissesNeed: await raised(() => s.setCurrentBatch(claim(0, 1, 19), 2)),
      claimMissesQualities: await raised(() =>
        s.setCurrentBatch(claim(0, 0, 19, { qualities: ['480p'] }), 2),
      ),
    };
    await s.setCurrentBatch(claim(0, 0, 19), 3);
    const inFlight = {
      batchStillGenerating: await raised(() => s.setCurrentBatch(claim(0, 0, 19), 4)),
      unexpectedBatch: await raised(() => s.setCurrentBatch(claim(5, 40, 49), 4)),
      claimOverlapsBatch: await raised(() => s.setCurrentBatch(claim(1, 10, 29), 4)),
    };
    const deadline = 3 + defaultConfig.batchTimeout;
    expect((await s.stallBatch('m1', 0, deadline)).result).toBe(true);
    const renewStalled = await raised(() => s.renewBatchClaim('m1', 0, deadline));
    const stalledRange = await raised(() => s.setCurrentBatch(claim(0, 0, 18), deadline));
    const stalledQualities = await raised(() =>
      s.setCurrentBatch(claim(0, 0, 19, { qualities: ['480p'] }), deadline),
    );
    await s.completeBatch('m1', 0, deadline + 1);
    const done = {
      batchComplete: await raised(() => s.setCurrentBatch(claim(0, 0, 19), deadline + 2)),
      notABatch: await raised(() => s.completeBatch('m1', 7, deadline + 2)),
      renewComplete: await raised(() => s.renewBatchClaim('m1', 0, deadline + 2)),
    };
    // Two needs: 30-49 in 720p, 25-44 in 1080p; a claim of the second in both renditions overlaps the first.
    await s.updateClientPosition(at('p', 30, '720p'), deadline + 3);
    await s.updateClientPosition(at('q', 25, '1080p'), deadline + 4);
    const claimOverlapsNeed = await raised(() =>
      s.setCurrentBatch(claim(2, 25, 44, { qualities: ['1080p', '720p'] }), deadline + 5),
    );
    return {
      ...early,
      ...inFlight,
      renewStalled,
      stalledRange,
      stalledQualities,
      ...done,
      claimOverlapsNeed,
    };
  }

  it('reads the same from Redis as from memory, one of each message', async () => {
    const fromRedis = await errors(store);
    const fromMemory = await errors(new MemoryStore(defaultConfig, new LocalEventBus()));
    expect(fromRedis).toEqual(fromMemory);
    expect(Object.keys(fromRedis).sort()).toEqual(Object.keys(MESSAGES).sort());
    const codes = Object.fromEntries(
      Object.entries(fromRedis).map(([name, [code]]) => [name, code]),
    );
    expect(codes).toMatchObject({
      streamSessionNotFound: 'NOT_FOUND',
      pastLastSegment: 'BAD_USER_INPUT',
      claimSource: 'BAD_USER_INPUT',
      claimOverlapsNeed: 'CONFLICT',
    });
  });
});
