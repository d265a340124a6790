/**
 * Issue 13, item 4: `npm run demo` with ffmpeg plays real video. It prints
 * one URL; that page, in Debian's Chromium (muted, autoplay allowed), plays
 * the stream the encoder worker makes as the viewer needs it, the viewer's
 * reports land in the service, and the dashboard beside it is signed in and
 * shows the session. SIGTERM stops it with exit code 0.
 *
 * A short video (48 s, made once and cached in .demo/) and short batches, so
 * that it stays well under a minute on a loaded machine.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Browser } from 'playwright-core';
import { afterAll, describe, expect, it } from 'vitest';
import { findFfmpeg } from '../scripts/watch-demo.js';
import { launchChromium, MEDIA_ARGS } from './chromium.js';
import { startDemo } from './demo-process.js';
import { eventually, serviceEnv } from './fixtures.js';

const SCREENSHOT = new URL('../test-artifacts/demo.png', import.meta.url);

let demo: ChildProcess | undefined;
let browser: Browser | undefined;
afterAll(async () => {
  await browser?.close();
  if (demo?.exitCode === null) demo.kill('SIGKILL');
});

describe('npm run demo with ffmpeg', { timeout: 90_000 }, () => {
  it('prints one URL whose page plays the encoded stream beside the dashboard', async () => {
    // The machines this runs on have ffmpeg (Debian's package); say so plainly when one does not.
    expect(findFfmpeg(), 'ffmpeg is needed: apt-get install -y ffmpeg').not.toBeNull();
    const run = startDemo(
      ['--video-seconds', '48', '--batch-size', '4', '--threshold', '3'],
      serviceEnv({ PORT: '0', LOG_LEVEL: 'info' }),
    );
    demo = run.child;
    await run.printed(/stop with Ctrl-C/, 45_000);
    const out = run.out();
    // What a person reads (the plain lines, not the JSON log): one URL.
    const plain = out.split('\n').filter((line) => !line.startsWith('{'));
    const urls = plain.join('\n').match(/https?:\/\/\S+/g) ?? [];
    expect(urls, plain.join('\n')).toHaveLength(1);
    const url = urls[0] as string;
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const streamSessionId = /stream session (demo-\S+),/.exec(out)?.[1] as string;
    const adminToken = /admin token \(the page signs the dashboard in with it\): (\S+)/.exec(
      out,
    )?.[1] as string;
    expect(streamSessionId).toBeDefined();

    browser = await launchChromium(MEDIA_ARGS);
    const page = await browser.newPage({ viewport: { width: 1600, height: 760 } });
    const problems: string[] = [];
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console: ${message.text()}`);
    });
    await page.goto(url);
    const watch = page.frameLocator('#watch-frame');
    const status = watch.locator('#status');
    // Playing: time moves on, and its position was reported.
    await expect
      .poll(async () => Number(await status.getAttribute('data-time')), { timeout: 40_000 })
      .toBeGreaterThan(3);
    expect(await watch.locator('video').evaluate((v: HTMLVideoElement) => v.muted)).toBe(true);
    expect(Number(await status.getAttribute('data-reports'))).toBeGreaterThanOrEqual(1);

    // The service has this viewer where the page says it is.
    const clients = async () => {
      const response = await fetch(`${url}graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${adminToken}` },
        body: JSON.stringify({
          query: `query($id: ID!) { streamSession(id: $id) { clientPositions { sessionId segmentNumber quality } } }`,
          variables: { id: streamSessionId },
        }),
      }).then((r) => r.json());
      return response.data.streamSession.clientPositions as Array<{
        sessionId: string;
        segmentNumber: number;
        quality: string;
      }>;
    };
    await eventually(async () => {
      const [client] = await clients();
      expect(client?.sessionId).toMatch(/^watcher-/);
      expect(String(client?.segmentNumber)).toBe(await status.getAttribute('data-segment'));
      expect(client?.quality).toBe(await status.getAttribute('data-quality'));
    });

    // The dashboard beside it is signed in and shows the session with a batch.
    const dashboard = page.frameLocator('#dashboard-frame');
    await dashboard
      .locator(`[data-session="${streamSessionId}"] rect[data-batch]`)
      .first()
      .waitFor({ timeout: 15_000 });
    expect(await status.getAttribute('data-state')).not.toBe('failed');
    expect(await watch.locator('#error').isHidden()).toBe(true);
    expect(problems).toEqual([]);
    mkdirSync(new URL('.', SCREENSHOT), { recursive: true });
    await page.screenshot({ path: fileURLToPath(SCREENSHOT) });

    const code = await run.stop();
    expect(
      code,
      `${run.out()}
${run.err()}`,
    ).toBe(0);
    expect(run.out()).toContain('demo stopped');
  });
});
