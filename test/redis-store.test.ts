/**
 * The Redis store on its own: one round trip per position update, a move
 * inside the client's safe range that reads nothing of the session, and keys
 * that go with their session. (The shared integration suite runs on it too;
 * test/store-parity.test.ts holds it to the memory store's behaviour.)
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { defaultConfig } from '../src/config.js';
import { InvalidInputError } from '../src/state/errors.js';
import { QUALITIES } from '../src/state/model.js';
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
  durationSeconds: null,
  lastSegment: null,
  qualities: QUALITIES,
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
      expect(change.announced).toEqual([]);
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
      expect(change.announced).toMatchObject([{ reason: 'APPROACHING_END', startSegment: 20 }]);
      await vi.waitFor(() => expect(published).toHaveLength(1));
      // One message per change, its needs in order (the bus reads one view for them).
      expect(published[0]).toEqual({
        type: 'batchNeeded',
        streamSessionId: 'rt2',
        needs: [
          {
            reason: 'APPROACHING_END',
            batchNumber: 1,
            startSegment: 20,
            endSegment: 39,
            videoSourcePath: '/v.mp4',
            videoStartOffset: 120,
            furthestSegment: 15,
            qualities: ['1080p'],
            segmentDuration: 6,
            isLastBatch: false,
            sequence: 2,
          },
        ],
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

  it('stores a move inside the safe range without reading the session (the hot path)', async () => {
    await store.createStreamSession(settings('hot'), 1);
    const claim = {
      streamSessionId: 'hot',
      batchNumber: 0,
      startSegment: 0,
      endSegment: 19,
      videoSourcePath: '/v.mp4',
      videoStartOffset: 0,
    };
    await store.setCurrentBatch(claim, 2);
    await store.completeBatch('hot', 0, 3);
    // Decided once (slow path): served by 0-19, safe while in 0..13 in 720p.
    await store.updateClientPosition(
      { streamSessionId: 'hot', sessionId: 'p', segmentNumber: 2, quality: '720p' },
      4,
    );
    // MONITOR shows what scripts run, as "lua" commands; only this session's keys are kept.
    const monitor = await new Redis(url).monitor();
    const seen: string[][] = [];
    monitor.on('monitor', (_time: string, args: string[], source: string) => {
      const ours = args.some((a) => a.startsWith(prefix)) && args.some((a) => a.includes('hot'));
      if (source.includes('lua') && ours) {
        seen.push(args.map((a) => a.replace(prefix, '')));
      }
    });
    try {
      for (const [i, segmentNumber] of [3, 13, 0, 7].entries()) {
        const change = await store.updateClientPosition(
          { streamSessionId: 'hot', sessionId: 'p', segmentNumber, quality: '720p' },
          10 + i,
        );
        expect(change).toEqual({
          result: { sessionId: 'p', segmentNumber, quality: '720p', lastUpdated: 10 + i },
          announced: [],
        });
      }
      // The marker: a move out of the range (slow path) comes after them on the monitor.
      await store.updateClientPosition(
        { streamSessionId: 'hot', sessionId: 'p', segmentNumber: 14, quality: '720p' },
        20,
      );
      // MONITOR's feed may lag on a loaded machine: wait for it (a hang guard, not a bound).
      await vi.waitFor(
        () => expect(seen.some((c) => c[0]?.toUpperCase() === 'HGETALL')).toBe(true),
        { timeout: 15_000 },
      );
      const hot = seen.slice(0, seen.findIndex((c) => c[0]?.toUpperCase() === 'HGETALL') - 1);
      const expected = [3, 13, 0, 7].flatMap((segment, i) => [
        ['HGET', 'c:hot', 'p'],
        ['HSET', 'c:hot', 'p', `${segment}|720p|${10 + i}|0|13|`],
        ['ZADD', 'z:hot', String(segment), 'p'],
        // As MONITOR quotes it: "hot\np".
        ['ZADD', 'dl:c', String(10 + i), 'hot\\np'],
        ['HSET', 's:hot', 'updatedAt', String(10 + i)],
        ['PUBLISH', 'events', { type: 'streamSessionChanged', event: { id: 'hot' } }],
      ]);
      const read = ([name, ...args]: string[]) =>
        name?.toUpperCase() === 'PUBLISH'
          ? ['PUBLISH', args[0], JSON.parse(args[1] as string)]
          : [name?.toUpperCase(), ...args];
      expect(hot.map(read)).toEqual(expected);
    } finally {
      monitor.disconnect();
    }
  });

  it('deletes every key of a session when it ends, so Redis does not grow', async () => {
    await store.createStreamSession(settings('gone'), 1);
    // A batch in flight: its stall deadline goes too.
    await store.setCurrentBatch(
      {
        streamSessionId: 'gone',
        batchNumber: 0,
        startSegment: 0,
        endSegment: 19,
        videoSourcePath: '/v.mp4',
        videoStartOffset: 0,
      },
      1,
    );
    const claims = async () =>
      (await redis.zrange(`${prefix}dl:b`, '0', '-1')).filter((m) => m.startsWith('gone\n'));
    expect(await claims()).toEqual(['gone\n0']);
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
    expect(await claims()).toHaveLength(0);
    expect(await redis.zscore(`${prefix}sessions`, 'gone')).toBeNull();
  });

  it('answers NOT_FOUND, CONFLICT and BAD_USER_INPUT from the script as the domain errors', async () => {
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
    const wrongOffset = store.setCurrentBatch(
      {
        streamSessionId: 'dup',
        batchNumber: 0,
        startSegment: 0,
        endSegment: 19,
        videoSourcePath: '/v.mp4',
        videoStartOffset: 999,
      },
      3,
    );
    await expect(wrongOffset).rejects.toBeInstanceOf(InvalidInputError);
    await expect(wrongOffset).rejects.toMatchObject({ code: 'BAD_USER_INPUT' });
  });
});
