/**
 * Issue 7: `npm run demo` starts, says where the dashboard is and which
 * token to paste, serves simulated viewers and an encoder whose batches
 * complete, and stops cleanly on SIGTERM. Issue 13: that is the fallback
 * without ffmpeg, after saying how to install it (the demo with ffmpeg:
 * test/demo-video.e2e.test.ts).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { eventually, serviceEnv } from './fixtures.js';
import { parsePrometheus } from './prometheus.js';

let demo: ChildProcess | undefined;
afterEach(() => {
  if (demo?.exitCode === null) demo.kill('SIGKILL');
});

describe('npm run demo', () => {
  it('without ffmpeg, says how to install it and runs the service with simulated viewers and encoder, and exits 0 on SIGTERM', async () => {
    const root = fileURLToPath(new URL('..', import.meta.url));
    const child = spawn(
      'npm',
      ['run', 'demo', '--', '--speed', '30', '--batch-seconds', '0.2', '--drop-rate', '0'],
      {
        cwd: root,
        // An ffmpeg that is not there: the fallback.
        env: serviceEnv({ PORT: '0', LOG_LEVEL: 'info', FFMPEG_PATH: '/nonexistent/ffmpeg' }),
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    demo = child;
    const exited = once(child, 'exit');
    let out = '';
    let err = '';
    child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
    });
    child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
      err += chunk;
    });

    await eventually(
      () => {
        if (child.exitCode !== null) throw new Error(`the demo exited: ${out}\n${err}`);
        return /admin token \(paste it into the dashboard\): \S+/.test(out);
      },
      { timeout: 45_000 },
    );
    expect(out).toContain('ffmpeg was not found (FFMPEG_PATH=/nonexistent/ffmpeg)');
    expect(out).toContain('apt-get install -y ffmpeg');
    const dashboard = /open the dashboard: (http:\/\/\S+)/.exec(out)?.[1] as string;
    const token = /admin token \(paste it into the dashboard\): (\S+)/.exec(out)?.[1] as string;
    expect(dashboard).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/dashboard$/);
    const base = dashboard.replace(/\/dashboard$/, '');
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };

    // The dashboard is there, and the admin token it asks for works.
    expect((await fetch(dashboard)).status).toBe(200);
    const listed = await fetch(`${base}/graphql`, {
      method: 'POST',
      headers,
      body: JSON.stringify({ query: '{ streamSessions { id clientPositions { sessionId } } }' }),
    }).then((r) => r.json());
    expect(listed.data.streamSessions.map((s: { id: string }) => s.id)).toEqual([
      'big-buck-bunny',
      'sintel',
      'tears-of-steel',
    ]);

    // Viewers come and the encoder keeps up: batches beyond the first complete.
    await eventually(
      async () => {
        const text = await fetch(`${base}/metrics`, { headers }).then((r) => r.text());
        const metrics = parsePrometheus(text);
        return (
          metrics.sum('hbc_batches_completed_total') >= 4 &&
          metrics.sum('hbc_batches_needed_total', { reason: 'APPROACHING_END' }) >= 1 &&
          (metrics.value('hbc_clients') ?? 0) >= 1
        );
      },
      { timeout: 45_000 },
    );

    // SIGTERM to the demo itself (npm exits 143 when it is the one signalled;
    // it passes the script's own exit code on otherwise).
    const pid = out
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => (JSON.parse(line) as { pid: number }).pid)[0] as number;
    expect(pid).toBeGreaterThan(0);
    process.kill(pid, 'SIGTERM');
    const [code] = await exited;
    expect(code, `${out}\n${err}`).toBe(0);
    expect(out).toContain('demo stopped');
  });
});
