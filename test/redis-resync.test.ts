/**
 * Redis pub/sub keeps nothing for a connection that is away. A need announced
 * by another instance while this instance's subscriber connection reconnects
 * must still reach this instance's encoders, once.
 */
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import {
  eventually,
  Q,
  startTestServer,
  storeUnderTest,
  type TestServer,
  wsSubscribe,
} from './fixtures.js';

const NEEDED = `subscription { batchNeeded { streamSession { id } reason batchNumber } }`;
type Need = { data: { batchNeeded: { streamSession: { id: string }; reason: string } } };

const store = storeUnderTest();
const servers: TestServer[] = [];
const redis = new Redis(store.redisUrl ?? 'redis://127.0.0.1:6379');

afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop()));
  redis.disconnect();
});

describe('Redis events across a reconnection of the subscriber', () => {
  it('delivers, once, the needs announced while the subscriber connection was away', async () => {
    const prefix = store.redisKeyPrefix as string;
    const a = await startTestServer({ ...store });
    const b = await startTestServer({ ...store });
    servers.push(a, b);
    const needs = wsSubscribe<Need>(a.wsClient(), NEEDED);
    const ids = () => needs.events.map((n) => n.data.batchNeeded.streamSession.id);

    // The subscription on A hears what B announces.
    await b.gql(Q.create, { input: { id: 'before', videoSourcePath: '/v/before.mp4' } });
    await eventually(() => ids().includes('before'));

    // Cut A's and B's event connections (named after the prefix; other test files'
    // connections are left alone), and announce at once, before they are back.
    const list = (await redis.call('CLIENT', 'LIST', 'TYPE', 'pubsub')) as string;
    const ours = list
      .split('\n')
      .filter((line) => line.includes(` name=${prefix}events `))
      .map((line) => /(?:^|\s)id=(\d+)/.exec(line)?.[1]);
    expect(ours).toHaveLength(2);
    await Promise.all(ours.map((id) => redis.client('KILL', 'ID', id as string)));
    await b.app.coordinator.createStreamSession({ id: 'during', videoSourcePath: '/v/d.mp4' });
    // Nobody was listening on the channel when it was published.
    expect(await redis.publish(`${prefix}events`, '"probe"')).toBe(0);

    await eventually(() => ids().includes('during'), { timeout: 10_000 });
    // After the resync, live events flow again, and nothing came twice.
    await b.gql(Q.create, { input: { id: 'after', videoSourcePath: '/v/after.mp4' } });
    await eventually(() => ids().includes('after'), { timeout: 10_000 });
    expect(ids()).toEqual(['before', 'during', 'after']);
    expect(needs.events.map((n) => n.data.batchNeeded.reason)).toEqual([
      'FIRST_BATCH',
      'FIRST_BATCH',
      'FIRST_BATCH',
    ]);
  });
});
