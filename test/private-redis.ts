/**
 * A redis-server of the tests' own: a child process in the foreground on
 * 127.0.0.1, saving nothing to disk. The Redis project's global setup starts
 * one when no Redis answers at REDIS_URL; test/redis-fault.test.ts starts its
 * own to stop and kill.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';

/** A TCP port that is free on 127.0.0.1 now. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

/** True when a Redis server at `url` answers PING within `timeoutMs`. */
export async function answersPing(url: string, timeoutMs = 2_000): Promise<boolean> {
  const redis = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    connectTimeout: timeoutMs,
    retryStrategy: () => null,
  });
  redis.on('error', () => {});
  try {
    await redis.connect();
    return (await redis.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    redis.disconnect();
  }
}

/**
 * Spawns redis-server on `port` and resolves once it answers PING.
 *
 * Rejects when it exits first or is not ready within `timeoutMs` (it is
 * killed then), and with the spawn error (`code: 'ENOENT'`) when
 * redis-server is not on the PATH.
 */
export async function spawnRedisServer(port: number, timeoutMs = 10_000): Promise<ChildProcess> {
  const child = spawn(
    'redis-server',
    ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  let timer: NodeJS.Timeout | undefined;
  const ready = new Promise<void>((resolve, reject) => {
    // Read its output for as long as it runs: a full pipe would block it.
    const read = (chunk: Buffer) => {
      if (output.length > 100_000) return;
      output += chunk;
      if (output.includes('Ready to accept connections')) resolve();
    };
    child.stdout?.on('data', read);
    child.stderr?.on('data', read);
    child.once('error', reject);
    child.once('exit', (code, signal) =>
      reject(new Error(`redis-server on port ${port} exited (${code ?? signal}):\n${output}`)),
    );
    timer = setTimeout(
      () =>
        reject(new Error(`redis-server on port ${port} not ready in ${timeoutMs} ms:\n${output}`)),
      timeoutMs,
    );
  });
  try {
    await ready;
    if (!(await answersPing(`redis://127.0.0.1:${port}`))) {
      throw new Error(`redis-server on port ${port} does not answer PING:\n${output}`);
    }
    return child;
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
