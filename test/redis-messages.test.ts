/**
 * The error texts come from one table (src/state/messages.ts): the Lua that
 * Redis runs fills them in exactly as the TypeScript does, and each error
 * the Redis store raises reads as the memory store's.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defaultConfig } from '../src/config.js';
import { DomainError } from '../src/state/errors.js';
import { LocalEventBus } from '../src/state/events.js';
import { MemoryStore } from '../src/state/memory-store.js';
import { MESSAGES, type MessageName, message } from '../src/state/messages.js';
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
    const values = { id: awkward, batchNumber: 12, expected: 11, current: 10 };
    for (const name of Object.keys(MESSAGES) as MessageName[]) {
      const filled = await lua(
        'return message(ARGV[2], cjson.decode(ARGV[3]))',
        name,
        JSON.stringify(values),
      );
      expect(filled, name).toBe(message(name, values));
    }
  });

  it('keep a placeholder without a value as written, as message() does', async () => {
    const filled = await lua('return message(ARGV[2], { id = "x" })', 'unexpectedBatch');
    expect(filled).toBe(message('unexpectedBatch', { id: 'x' } as never));
  });
});

describe('each NOT_FOUND and CONFLICT', () => {
  const claim = (streamSessionId: string, batchNumber: number) => ({
    streamSessionId,
    batchNumber,
    startSegment: 0,
    endSegment: 19,
    videoSourcePath: '/v.mp4',
    videoStartOffset: 0,
  });
  // The server's default settings; the messages only quote the id.
  const { segmentDuration, batchSize, threshold } = defaultConfig;
  const session = {
    id: 'm1',
    videoSourcePath: '/v.mp4',
    segmentDuration,
    batchSize,
    threshold,
    startSegment: 0,
  };

  /** What each failing change raises, on one store, as code and text. */
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
    return {
      streamSessionNotFound: await raised(() => s.completeBatch('absent', 0, 2)),
      streamSessionExists: await raised(() => s.createStreamSession(session, 2)),
      noBatchToComplete: await raised(() => s.completeBatch('m1', 4, 2)),
      unexpectedBatch: await raised(() => s.setCurrentBatch(claim('m1', 3), 2)),
      batchStillGenerating: await raised(async () => {
        await s.setCurrentBatch(claim('m1', 0), 3);
        return s.setCurrentBatch(claim('m1', 1), 4);
      }),
      notCurrentBatch: await raised(() => s.completeBatch('m1', 5, 5)),
    };
  }

  it('reads the same from Redis as from memory', async () => {
    const fromRedis = await errors(store);
    expect(fromRedis).toEqual(await errors(new MemoryStore(defaultConfig, new LocalEventBus())));
    expect(Object.keys(fromRedis).sort()).toEqual(Object.keys(MESSAGES).sort());
  });
});
