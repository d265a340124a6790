/**
 * Issue 13, `npm run encoder` as a process: its environment is checked with
 * messages that name the variable, and SIGTERM stops its ffmpeg children and
 * exits 0.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readEnv, renewIntervalMs } from '../encoder/config.js';
import { sessionDir } from '../encoder/paths.js';
import { FFMPEG, FFPROBE, makeSource, pgrep, script } from './encoder-media.js';
import {
  ADMIN_TOKEN,
  authOverrides,
  ENCODER_TOKEN,
  eventually,
  startTestServer,
  type TestServer,
} from './fixtures.js';

describe('the encoder’s environment', () => {
  it('has the documented defaults', () => {
    expect(readEnv({})).toMatchObject({
      COORDINATOR_URL: 'http://127.0.0.1:4000/graphql',
      OUTPUT_DIR: './output',
      ENCODER_CONCURRENCY: 1,
      FFMPEG_PATH: 'ffmpeg',
      SEGMENT_PORT: 4100,
      SEGMENT_SERVER: 'on',
      SEGMENT_HOLD_SECONDS: 20,
      RELEASE_MARGIN: 10,
    });
    expect(renewIntervalMs(readEnv({}))).toBe(10_000);
    expect(renewIntervalMs(readEnv({ BATCH_TIMEOUT: '30' }))).toBe(10_000);
    expect(renewIntervalMs(readEnv({ BATCH_TIMEOUT: '3' }))).toBe(1_000);
    expect(renewIntervalMs(readEnv({ BATCH_TIMEOUT: '3', RENEW_INTERVAL: '0.5' }))).toBe(500);
    expect(
      readEnv({ SEGMENT_PORT: '0', ENCODER_CONCURRENCY: '3', SEGMENT_SERVER: 'off' }),
    ).toMatchObject({
      SEGMENT_PORT: 0,
      ENCODER_CONCURRENCY: 3,
      SEGMENT_SERVER: 'off',
    });
  });

  it('refuses bad values, naming each variable', () => {
    expect(() => readEnv({ ENCODER_CONCURRENCY: '0' })).toThrow(
      /ENCODER_CONCURRENCY must be at least 1/,
    );
    expect(() => readEnv({ ENCODER_CONCURRENCY: 'two' })).toThrow(
      /ENCODER_CONCURRENCY must be a whole number/,
    );
    expect(() => readEnv({ SEGMENT_PORT: '70000' })).toThrow(/SEGMENT_PORT must be at most 65535/);
    expect(() => readEnv({ COORDINATOR_URL: 'ftp://x/graphql' })).toThrow(
      /COORDINATOR_URL must be an http/,
    );
    expect(() => readEnv({ SEGMENT_SERVER: 'maybe' })).toThrow(/SEGMENT_SERVER must be on or off/);
    expect(() => readEnv({ RELEASE_MARGIN: '-1', RENEW_INTERVAL: '0' })).toThrow(
      /RELEASE_MARGIN[\s\S]*RENEW_INTERVAL/,
    );
  });
});

describe('npm run encoder as a process', () => {
  let dir: string;
  let source: string;
  let server: TestServer;
  let child: ChildProcess | undefined;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'encoder-main-test-'));
    source = await makeSource(dir, 30);
    server = await startTestServer({ ...authOverrides });
  }, 60_000);
  afterAll(async () => {
    if (child?.exitCode === null) child.kill('SIGKILL');
    await server.stop();
    await rm(dir, { recursive: true, force: true });
  });

  async function admin(query: string, variables: Record<string, unknown>) {
    const response = await server.gql(query, variables, { authorization: `Bearer ${ADMIN_TOKEN}` });
    expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
  }

  it('SIGTERM while the service is unreachable: exits 0 at once, not after a reconnection backoff', async () => {
    const lone = spawn(process.execPath, ['--import', 'tsx', 'encoder/main.ts'], {
      env: {
        ...process.env,
        // Nothing listens on port 1: it keeps reconnecting.
        COORDINATOR_URL: 'http://127.0.0.1:1/graphql',
        OUTPUT_DIR: path.join(dir, 'lone'),
        FFMPEG_PATH: FFMPEG,
        SEGMENT_SERVER: 'off',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    lone.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    const exited = new Promise<number | null>((resolve) =>
      lone.on('exit', (code) => resolve(code)),
    );
    try {
      // Six failed attempts: the backoff is now at its cap, at least 2.5 s to the next.
      await eventually(() => stdout.split('reconnecting').length > 6, { timeout: 30_000 });
      const signalled = Date.now();
      lone.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(Date.now() - signalled).toBeLessThan(2_000);
    } finally {
      if (lone.exitCode === null) lone.kill('SIGKILL');
    }
  });

  it('SIGTERM stops its ffmpeg and exits 0', async () => {
    const out = path.join(dir, 'output');
    // Real ffmpeg at the source's own pace (-re): a 10 s batch takes 10 s.
    const slow = await script(dir, 'slow-ffmpeg', `exec ${FFMPEG} -re "$@"`);
    child = spawn(process.execPath, ['--import', 'tsx', 'encoder/main.ts'], {
      env: {
        ...process.env,
        COORDINATOR_URL: server.url,
        ENCODER_TOKEN,
        OUTPUT_DIR: out,
        FFMPEG_PATH: slow,
        FFPROBE_PATH: FFPROBE,
        SEGMENT_SERVER: 'off',
        LOG_LEVEL: 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<number | null>((resolve) =>
      child?.on('exit', (code) => resolve(code)),
    );

    await eventually(() => stdout.includes('encoder started'), { timeout: 30_000 });
    const started = stdout.split('\n').find((line) => line.includes('encoder started')) ?? '';
    expect(JSON.parse(started)).toMatchObject({ outputDir: out, segmentServer: null });

    await admin(
      `mutation ($input: CreateStreamSessionInput!) { createStreamSession(input: $input) { id } }`,
      {
        input: {
          id: 'term',
          videoSourcePath: source,
          durationSeconds: 30,
          segmentDuration: 2,
          batchSize: 5,
          qualities: ['Q480P'],
        },
      },
    );
    // ffmpeg runs (its command line names the output folder).
    await eventually(async () => (await pgrep(out)).length > 0, { timeout: 20_000 });
    expect(existsSync(sessionDir(out, 'term'))).toBe(true);

    child.kill('SIGTERM');
    expect(await exited, stderr).toBe(0);
    expect(await pgrep(out)).toEqual([]);
    expect(stdout).toContain('stopping: ffmpeg children first');
    // Stopped, not made: the batch is not completed.
    const view = await server.app.coordinator.getStreamSession('term');
    expect(view?.batches[0]?.isComplete).toBe(false);
  });
});
