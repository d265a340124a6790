/**
 * Issue 7: `npm run demo` starts, says where the dashboard is and which
 * token to paste, serves simulated viewers and an encoder whose batches
 * complete, and stops cleanly on SIGTERM. Issue 13: that is the fallback
 * without ffmpeg, after saying how to install it (the demo with ffmpeg:
 * test/demo-video.e2e.test.ts).
 */
import type { ChildProcess } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { startDemo } from './demo-process.js';
import { eventually, serviceEnv } from './fixtures.js';
import { parsePrometheus } from './prometheus.js';

let demo: ChildProcess | undefined;
afterEach(() => {
  if (demo?.exitCode === null) demo.kill('SIGKILL');
});

describe('npm run demo', () => {
  it('without ffmpeg, says how to install it and runs the service with simulated viewers and encoder, and exits 0 on SIGTERM', async () => {
    // An ffmpeg that is not there: the fallback.
    const run = startDemo(
      ['--speed', '30', '--batch-seconds', '0.2', '--drop-rate', '0'],
      serviceEnv({ PORT: '0', LOG_LEVEL: 'info', FFMPEG_PATH: '/nonexistent/ffmpeg' }),
    );
    demo = run.child;
    await run.printed(/admin token \(paste it into the dashboard\): \S+/, 45_000);
    const out = run.out();
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

    const code = await run.stop();
    expect(
      code,
      `${run.out()}
${run.err()}`,
    ).toBe(0);
    expect(run.out()).toContain('demo stopped');
  });
});
