/**
 * The Redis store on its own: one round trip per position update, and keys
 * that go with their session. (The shared integration suite runs on it too.)
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { defaultConfig } from '../src/config.js';
import { RedisStore } from '../src/state/redis/redis-store.js';
import { deleteKeys } from './fixtures.js';

const prefix = `hbc-test:${randomUUID()}:`;
const url = process.env.REDIS_URL ?? defaultConfig.redisUrl;
let store: RedisStore;
/** The store's own client, made here so that the test can count what it sends. */
let redis: Redis;
let roundTrips = 0;
let commands: string[] = [];

beforeAll(async () => {
  redis = new Redis(url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
  // Every command the client sends is one round trip (scripts run as one EVALSHA).
  const send = redis.sendCommand.bind(redis);
  redis.sendCommand = ((...args: Parameters<typeof send>) => {
    roundTrips++;
    commands.push(args[0].name);
    return send(...args);
  }) as typeof send;
  store = new RedisStore({ url, client: redis, keyPrefix: prefix, timeouts: defaultConfig });
  await store.connect();
});

afterAll(async () => {
  await store.close();
  await deleteKeys(url, prefix);
});

const settings = (id: string) => ({
  id,
  videoSourcePath: '/v.mp4',
  segmentDuration: 6,
  batchSize: 20,
  threshold: 5,
  startSegment: 0,
});

describe('RedisStore', () => {
  it('takes exactly one round trip per position update that announces nothing', async () => {
    await store.createStreamSession(settings('rt'), 1);
    // Warm the script cache: the very first call of a script may need a second trip (NOSCRIPT).
    await store.updateClientPosition(
      { streamSessionId: 'rt', sessionId: 'warm', segmentNumber: 0, quality: '720p' },
      2,
    );
    roundTrips = 0;
    const updates = 200;
    for (let i = 0; i < updates; i++) {
      const change = await store.updateClientPosition(
        { streamSessionId: 'rt', sessionId: `p${i % 20}`, segmentNumber: i % 7, quality: '480p' },
        10 + i,
      );
      expect(change.announced).toBeNull();
    }
    expect(roundTrips).toBe(updates);
  });

  it('decides and publishes the need in the same trip as the update', async () => {
    await store.createStreamSession(settings('rt2'), 1);
    await store.setCurrentBatch(
      {
        streamSessionId: 'rt2',
        batchNumber: 0,
        startSegment: 0,
        endSegment: 19,
        videoSourcePath: '/v.mp4',
        videoStartOffset: 0,
      },
      2,
    );
    await store.completeBatch('rt2', 0, 3);
    const listener = new Redis(url);
    const published: unknown[] = [];
    // Needs and endings; the scripts also tell dashboards of every change (streamSessionChanged).
    listener.on('message', (_channel, message) => {
      const event = JSON.parse(message);
      if (event.type !== 'streamSessionChanged') published.push(event);
    });
    await listener.subscribe(`${prefix}events`);
    try {
      commands = [];
      const change = await store.updateClientPosition(
        { streamSessionId: 'rt2', sessionId: 'p', segmentNumber: 15, quality: '1080p' },
        4,
      );
      // The script changed, decided and published: one command, one round trip.
      expect(commands).toEqual(['evalsha']);
      expect(change.announced).toMatchObject({ reason: 'APPROACHING_END', startSegment: 20 });
      await vi.waitFor(() => expect(published).toHaveLength(1));
      expect(published[0]).toMatchObject({
        type: 'batchNeeded',
        streamSessionId: 'rt2',
        need: {
          reason: 'APPROACHING_END',
          batchNumber: 1,
          startSegment: 20,
          endSegment: 39,
          furthestSegment: 15,
          qualities: ['1080p'],
        },
      });
      // A further update of the same need publishes nothing.
      await store.updateClientPosition(
        { streamSessionId: 'rt2', sessionId: 'p', segmentNumber: 16, quality: '1080p' },
        5,
      );
      await store.endStreamSession('rt2', 6);
      await vi.waitFor(() => expect(published).toHaveLength(2));
      expect(published[1]).toMatchObject({
        type: 'streamSessionEnded',
        event: { id: 'rt2', reason: 'ENDED' },
      });
    } finally {
      listener.disconnect();
    }
  });

  it('deletes every key of a session when it ends, so Redis does not grow', async () => {
    await store.createStreamSession(settings('gone'), 1);
    for (let i = 0; i < 5; i++) {
      await store.updateClientPosition(
        { streamSessionId: 'gone', sessionId: `p${i}`, segmentNumber: i, quality: '720p' },
        2,
      );
    }
    const keysOf = async () => (await redis.keys(`${prefix}*gone*`)).length;
    expect(await keysOf()).toBeGreaterThan(0);
    const members = async () =>
      (await redis.zrange(`${prefix}dl:c`, '0', '-1')).filter((m) => m.startsWith('gone\n'));
    expect(await members()).toHaveLength(5);
    expect((await store.endStreamSession('gone', 3)).result).toBe(true);
    expect(await keysOf()).toBe(0);
    expect(await members()).toHaveLength(0);
    expect(await redis.zscore(`${prefix}sessions`, 'gone')).toBeNull();
  });

  it('answers NOT_FOUND and CONFLICT from the script as the domain errors', async () => {
    await expect(
      store.updateClientPosition(
        { streamSessionId: 'nope', sessionId: 'p', segmentNumber: 1, quality: '720p' },
        1,
      ),
    ).rejects.toMatchObject({ code: 'NOT_FOUND', message: "Stream session 'nope' not found." });
    await store.createStreamSession(settings('dup'), 1);
    await expect(store.createStreamSession(settings('dup'), 2)).rejects.toMatchObject({
      code: 'CONFLICT',
    });
    await expect(
      store.setCurrentBatch(
        {
          streamSessionId: 'dup',
          batchNumber: 3,
          startSegment: 0,
          endSegment: 19,
          videoSourcePath: '/v.mp4',
          videoStartOffset: 0,
        },
        3,
      ),
    ).rejects.toMatchObject({ code: 'CONFLICT' });
  });
});
