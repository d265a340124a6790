import { Redis } from 'ioredis';

/** The Redis half of the suite needs a server: say so plainly when there is none. */
export default async function setup() {
  const url = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const redis = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    connectTimeout: 2_000,
  });
  redis.on('error', () => {});
  try {
    await redis.connect();
    await redis.ping();
  } catch {
    throw new Error(
      `The Redis tests need a Redis server at ${url} (start one with: redis-server --daemonize yes --save "" --appendonly no). To run only the in-memory suite: npm run test:memory`,
    );
  } finally {
    redis.disconnect();
  }
}
