/**
 * Issue 7, logs: the program (src/main.ts) writes JSON lines on stdout and
 * shows the tokens it generated once, on stderr, never in the log.
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { eventually, serviceEnv } from './fixtures.js';
import type { LogLine } from './log-capture.js';

describe('the program', () => {
  it('logs JSON lines on stdout at LOG_LEVEL, and shows generated tokens once on stderr, never in the log', async () => {
    const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', main], {
      env: serviceEnv({ PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'debug', STORE: 'memory' }),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      err += chunk;
    });
    const exited = once(child, 'exit');
    try {
      await eventually(
        () => {
          expect(child.exitCode, `exited before it started: ${out}\n${err}`).toBeNull();
          return out.includes('listening on') && err.includes('encoder token');
        },
        { timeout: 30_000 },
      );
    } finally {
      child.kill('SIGTERM');
    }
    const [code] = await exited;
    expect(code).toBe(0);
    const admin = /admin token \(generated; set ADMIN_TOKEN to fix it\): (\S+)/.exec(err)?.[1];
    const encoder = /encoder token \(generated; set ENCODER_TOKEN to fix it\): (\S+)/.exec(
      err,
    )?.[1];
    expect(admin).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(encoder).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const logged = out
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as LogLine);
    expect(logged.map((line) => line.msg)).toEqual(
      expect.arrayContaining([
        expect.stringMatching(
          /^hls-batch-coordinator listening on http:\/\/127\.0\.0\.1:\d+\/graphql /,
        ),
        'generated tokens were printed on stderr, once',
        'SIGTERM received: shutting down',
        'shut down cleanly',
      ]),
    );
    expect(out).not.toContain(admin);
    expect(out).not.toContain(encoder);
  });
});
