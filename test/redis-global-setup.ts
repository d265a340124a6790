import type { ChildProcess } from 'node:child_process';
import { defaultConfig } from '../src/config.js';
import { answersPing, freePort, spawnRedisServer } from './private-redis.js';

/**
 * The Redis half of the suite needs a server. The one at REDIS_URL (default
 * redis://127.0.0.1:6379) when it answers; else, with redis-server on the
 * PATH, a private one on a free port for this run, stopped after it; else
 * the run stops with a message saying what to do.
 *
 * The private server reaches the tests as REDIS_URL: vitest starts its
 * workers after the global setups, with this process's environment.
 */
export default async function setup(): Promise<(() => Promise<void>) | undefined> {
  const url = process.env.REDIS_URL ?? defaultConfig.redisUrl;
  if (await answersPing(url)) return undefined;
  const port = await freePort();
  let server: ChildProcess;
  try {
    server = await spawnRedisServer(port);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    throw new Error(
      `The Redis tests need a Redis server: none answers at ${url}, and redis-server is not on the PATH to start one for the run. Install Redis (e.g. apt-get install redis-server), or start one and set REDIS_URL. To run only the in-memory suite: npm run test:memory`,
    );
  }
  const previous = process.env.REDIS_URL;
  process.env.REDIS_URL = `redis://127.0.0.1:${port}`;
  console.info(
    `No Redis at ${url}: the Redis tests use a redis-server of their own on port ${port}.`,
  );
  return async () => {
    if (previous === undefined) delete process.env.REDIS_URL;
    else process.env.REDIS_URL = previous;
    if (server.exitCode !== null || server.signalCode !== null) return;
    const exited = new Promise((resolve) => server.once('exit', resolve));
    server.kill('SIGTERM');
    await exited;
  };
}
