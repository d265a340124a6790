/**
 * The dashboard in a real browser: Debian's Chromium driven by
 * playwright-core, against the service started in this process with tokens
 * on. It signs in, sees sessions come and go, a client marker move, batches
 * generate, complete and stall, several at once, each rendition's covered
 * segments and the video's end, and saves a screenshot to
 * test-artifacts/dashboard.png.
 *
 * Time is a ManualClock (a stall is one clock step and a sweep, not a wait).
 * Memory store only: the dashboard does not depend on the store, and
 * stream-session-updated-api.test.ts covers the subscription on Redis.
 */
import { mkdirSync } from 'node:fs';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ManualClock } from '../src/state/clock.js';
import { launchChromium } from './chromium.js';
import { Q, startTestServer, type TestServer } from './fixtures.js';

const ADMIN_TOKEN = 'dashboard-admin-token-0001';
const BATCH_TIMEOUT = 60_000;
const DAY = 86_400_000;
const SCREENSHOT = new URL('../test-artifacts/dashboard.png', import.meta.url);

let server: TestServer;
let clock: ManualClock;
const serverConfig = {
  authEnabled: true,
  adminToken: ADMIN_TOKEN,
  encoderToken: 'dashboard-encoder-token-01',
  clientTokenSecret: 'd'.repeat(40),
  batchTimeout: BATCH_TIMEOUT,
  clientTimeout: DAY,
  idleTimeout: DAY,
};
let browser: Browser;
let page: Page;
/** What the page reported as wrong: script errors, failed requests, CSP violations. */
const problems: string[] = [];

beforeAll(async () => {
  clock = new ManualClock(Date.now());
  server = await startTestServer(serverConfig, clock);
  browser = await launchChromium();
  // Short, so that the full-page screenshot ends with the content.
  page = await browser.newPage({ viewport: { width: 1280, height: 520 } });
  // Well within the test's own timeout, so that a failure names the step.
  page.setDefaultTimeout(5_000);
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console: ${message.text()}`);
  });
  page.on('requestfailed', (request) => problems.push(`request failed: ${request.url()}`));
});

afterAll(async () => {
  await browser?.close();
  await server?.stop();
});

/** A GraphQL call as admin over HTTP, which must succeed. */
async function admin(query: string, variables?: Record<string, unknown>) {
  const response = await server.gql(query, variables, { authorization: `Bearer ${ADMIN_TOKEN}` });
  expect(response.errors, JSON.stringify(response.errors)).toBeUndefined();
  return response.data as Record<string, any>;
}

const create = (id: string, durationSeconds?: number) =>
  admin(Q.create, { input: { id, videoSourcePath: `/media/${id}.mkv`, durationSeconds } });
const move = (streamSessionId: string, sessionId: string, segmentNumber: number, quality: string) =>
  admin(Q.update, { input: { streamSessionId, sessionId, segmentNumber, quality } });
const claim = (streamSessionId: string, batchNumber: number, startSegment: number) =>
  admin(Q.claim, {
    input: {
      streamSessionId,
      batchNumber,
      startSegment,
      endSegment: startSegment + 19,
      videoSourcePath: `/media/${streamSessionId}.mkv`,
      videoStartOffset: startSegment * 6,
    },
  });
const complete = (streamSessionId: string, batchNumber: number) =>
  admin(Q.complete, { streamSessionId, batchNumber });

const row = (id: string) => page.locator(`[data-session="${id}"]`);
const marker = (id: string, client: string) => row(id).locator(`[data-client="${client}"]`);
const batch = (id: string, n: number) => row(id).locator(`rect[data-batch="${n}"]`);
/** A rendition's covered ranges, as "start-end" strings. */
const covered = (id: string, quality: string) =>
  row(id)
    .locator(`rect.range[data-quality="${quality}"]`)
    .evaluateAll((ranges) =>
      ranges.map((r) => `${r.getAttribute('data-start')}-${r.getAttribute('data-end')}`),
    );
const count = (name: string) => page.locator(`#count-${name}`);
const poll = <T>(read: () => Promise<T>) => expect.poll(read, { timeout: 5_000, interval: 25 });

/** Waits until the dashboard shows the batch in that state (so its history has it). */
async function shows(id: string, n: number, status: string) {
  await poll(() => batch(id, n).getAttribute('data-status')).toBe(status);
}

// A browser on a busy machine: room beyond the 20 s default, each step still bounded at 5 s.
describe('the dashboard at /dashboard', { timeout: 60_000 }, () => {
  it('asks for the token, then shows sessions, clients and batches live', async () => {
    await page.goto(`${server.baseUrl}/dashboard`);
    await page.locator('#sign-in').waitFor({ state: 'visible' });
    expect(await page.locator('#status').getAttribute('data-state')).toBe('signed-out');

    // A wrong token is refused, and asked for again.
    await page.fill('#token', 'not-the-admin-token');
    await page.click('#sign-in button[type=submit]');
    await poll(() => page.locator('#sign-in-error').textContent()).toContain('refused');
    expect(await page.locator('#sign-in').isVisible()).toBe(true);
    expect(await page.evaluate(() => Object.keys(sessionStorage))).toEqual([]);

    await page.fill('#token', ADMIN_TOKEN);
    await page.click('#sign-in button[type=submit]');
    await poll(() => page.locator('#status').getAttribute('data-state')).toBe('live');
    expect(await page.locator('#sign-in').isVisible()).toBe(false);
    expect(await page.evaluate(() => Object.values(sessionStorage))).toEqual([ADMIN_TOKEN]);
    await page.locator('#empty').waitFor({ state: 'visible' });

    // A session appears when one is created.
    await create('movie-42');
    await row('movie-42').waitFor({ state: 'visible' });
    // The row is added at once and drawn at the next animation frame.
    await poll(() => row('movie-42').locator('h2').textContent()).toBe('movie-42');
    await poll(() => count('sessions').textContent()).toBe('1');
    expect(await page.locator('#empty').isVisible()).toBe(false);

    // A client's marker appears with its quality, and moves with its position.
    await move('movie-42', 'viewer-1', 4, 'Q1080P');
    await poll(() => marker('movie-42', 'viewer-1').getAttribute('data-segment')).toBe('4');
    expect(await marker('movie-42', 'viewer-1').getAttribute('data-quality')).toBe('1080p');
    const before = Number(await marker('movie-42', 'viewer-1').getAttribute('cx'));
    await move('movie-42', 'viewer-1', 12, 'Q1080P');
    await poll(() => marker('movie-42', 'viewer-1').getAttribute('data-segment')).toBe('12');
    expect(Number(await marker('movie-42', 'viewer-1').getAttribute('cx'))).toBeGreaterThan(before);
    await poll(() => count('clients').textContent()).toBe('1');

    // The batch shows generating, then complete. Batch 0 makes the session's
    // renditions (all three by default): each lane shows 0-19 covered, with
    // the threshold mark at end - threshold.
    await claim('movie-42', 0, 0);
    await shows('movie-42', 0, 'generating');
    await poll(() => count('generating').textContent()).toBe('1');
    expect(await row('movie-42').locator('.badge').first().textContent()).toBe(
      'batch 0 · 0–19 · generating',
    );
    for (const quality of ['1080p', '720p', '480p']) {
      expect(await covered('movie-42', quality)).toEqual(['0-19']);
    }
    expect(
      await row('movie-42')
        .locator('line.threshold[data-quality="1080p"]')
        .getAttribute('data-segment'),
    ).toBe('14');
    await complete('movie-42', 0);
    await shows('movie-42', 0, 'complete');
    await poll(() => count('generating').textContent()).toBe('0');

    // A batch not completed in time shows stalled.
    await create('trailer-7');
    await move('trailer-7', 'viewer-9', 3, 'Q480P');
    await claim('trailer-7', 0, 0);
    await shows('trailer-7', 0, 'generating');
    clock.advance(BATCH_TIMEOUT);
    expect(await server.app.coordinator.sweep()).toMatchObject({ batchesStalled: 1 });
    await shows('trailer-7', 0, 'stalled');
    await poll(() => count('stalled').textContent()).toBe('1');

    // A session that ends disappears.
    await create('short-lived');
    await row('short-lived').waitFor({ state: 'visible' });
    await admin(Q.end, { id: 'short-lived' });
    await row('short-lived').waitFor({ state: 'detached' });
    await poll(() => count('sessions').textContent()).toBe('2');

    expect(problems).toEqual([]);
  });

  it('keeps the token for the tab: a reload shows every session again without asking', async () => {
    await page.reload();
    await poll(() => page.locator('#status').getAttribute('data-state')).toBe('live');
    expect(await page.locator('#sign-in').isVisible()).toBe(false);
    await row('movie-42').waitFor({ state: 'visible' });
    await poll(() => marker('movie-42', 'viewer-1').getAttribute('data-segment')).toBe('12');
    await shows('trailer-7', 0, 'stalled');
    expect(await page.locator('section.session').count()).toBe(2);
    expect(problems).toEqual([]);
  });

  it('draws every batch, the coverage per rendition, the clients by quality, the furthest and slowest segment and the end (screenshot)', async () => {
    // movie-42: batch 0 done, batch 1 complete and its viewers near its end: next batch due.
    await claim('movie-42', 1, 20);
    await shows('movie-42', 1, 'generating');
    await complete('movie-42', 1);
    await shows('movie-42', 1, 'complete');
    await move('movie-42', 'viewer-1', 35, 'Q1080P');
    await move('movie-42', 'viewer-2', 31, 'Q720P');
    await move('movie-42', 'viewer-3', 35, 'Q480P');
    await move('movie-42', 'viewer-4', 27, 'Q720P');
    // lecture-3, a video of 360 s (segments 0-59): two batches behind, the
    // third (the last) generating, viewers spread over it.
    await create('lecture-3', 360);
    for (const [n, start] of [
      [0, 0],
      [1, 20],
    ] as const) {
      await claim('lecture-3', n, start);
      await shows('lecture-3', n, 'generating');
      await complete('lecture-3', n);
      await shows('lecture-3', n, 'complete');
    }
    await claim('lecture-3', 2, 40);
    await shows('lecture-3', 2, 'generating');
    const viewers = [
      ['ana', 41, 'Q1080P'],
      ['ben', 44, 'Q720P'],
      ['cai', 44, 'Q720P'],
      ['dee', 47, 'Q480P'],
      ['eli', 38, 'Q720P'],
    ] as const;
    for (const [name, segment, quality] of viewers) await move('lecture-3', name, segment, quality);

    await poll(() => row('movie-42').locator('.due').isVisible()).toBe(true);
    await poll(() => row('lecture-3').locator('[data-client]').count()).toBe(5);
    await poll(() => marker('movie-42', 'viewer-4').getAttribute('data-segment')).toBe('27');
    // Every batch not released is drawn, the completed ones too.
    expect(await batch('lecture-3', 0).getAttribute('data-status')).toBe('complete');
    expect(await batch('lecture-3', 1).getAttribute('data-status')).toBe('complete');
    expect(await batch('movie-42', 0).getAttribute('data-status')).toBe('complete');
    // Coverage is what is made or being made: not movie-42's need for 40-59
    // in 1080p, announced only.
    expect(await covered('movie-42', '1080p')).toEqual(['0-39']);
    expect(await covered('lecture-3', '480p')).toEqual(['0-59']);
    const furthest = row('lecture-3').locator('line.furthest');
    const dee = marker('lecture-3', 'dee');
    expect(Number(await furthest.getAttribute('x1'))).toBeCloseTo(
      Number(await dee.getAttribute('cx')),
    );
    const slowest = row('lecture-3').locator('line.slowest');
    const eli = marker('lecture-3', 'eli');
    expect(Number(await slowest.getAttribute('x1'))).toBeCloseTo(
      Number(await eli.getAttribute('cx')),
    );
    // lecture-3 knows its end: the line is drawn, and a range that runs to it has no threshold mark.
    expect(await row('lecture-3').locator('.last-label').textContent()).toBe(
      'end · last segment 59',
    );
    expect(await row('lecture-3').locator('line.threshold').count()).toBe(0);
    expect(await row('movie-42').locator('.last-label').count()).toBe(0);

    // movie-42's viewers at 35 in 1080p and in 480p made one need each for
    // 40-59 (batches 2 and 3): both claimed, in flight at once, drawn in two
    // lanes; then a viewer seeks ahead, and its need (720p only) is claimed too.
    await claim('movie-42', 2, 40);
    await claim('movie-42', 3, 40);
    await move('movie-42', 'viewer-4', 100, 'Q720P');
    await claim('movie-42', 4, 100);
    await shows('movie-42', 4, 'generating');
    expect(await batch('movie-42', 2).getAttribute('data-qualities')).toBe('1080p');
    expect(await batch('movie-42', 3).getAttribute('data-qualities')).toBe('480p');
    expect(await batch('movie-42', 4).getAttribute('data-qualities')).toBe('720p');
    expect(await batch('movie-42', 3).getAttribute('y')).not.toBe(
      await batch('movie-42', 2).getAttribute('y'),
    );
    await poll(() => covered('movie-42', '720p')).toEqual(['0-39', '100-119']);
    expect(await covered('movie-42', '1080p')).toEqual(['0-59']);
    expect(await covered('movie-42', '480p')).toEqual(['0-59']);
    // lecture-3's batch 2 and movie-42's batches 2, 3 and 4.
    await poll(() => count('generating').textContent()).toBe('4');
    await poll(() => count('clients').textContent()).toBe('10');
    await poll(() => count('sessions').textContent()).toBe('3');

    mkdirSync(new URL('.', SCREENSHOT), { recursive: true });
    const png = await page.screenshot({ path: SCREENSHOT.pathname, fullPage: true });
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    expect(problems).toEqual([]);
  });

  it('reconnects by itself after a restart, and drops the rows of sessions gone meanwhile', async () => {
    expect(await page.locator('section.session').count()).toBe(3);
    const port = Number(new URL(server.baseUrl).port);
    // A restart without a snapshot: every session is gone, and the page is told of no ending.
    await server.stop();
    await poll(() => page.locator('#status').getAttribute('data-state')).toBe('reconnecting');
    server = await startTestServer(serverConfig, clock, port);
    await create('movie-42');
    await poll(() => page.locator('#status').getAttribute('data-state')).toBe('live');
    await row('trailer-7').waitFor({ state: 'detached' });
    await row('lecture-3').waitFor({ state: 'detached' });
    // movie-42 is a new session now: no clients, no batch.
    await poll(() => row('movie-42').locator('[data-client]').count()).toBe(0);
    expect(await row('movie-42').locator('.badge').first().textContent()).toBe('no batch yet');
    await poll(() => count('sessions').textContent()).toBe('1');
    await poll(() => count('stalled').textContent()).toBe('0');
    // While the server was down the browser could not connect; nothing else went wrong.
    expect(problems.filter((p) => !/WebSocket connection to .* failed/.test(p))).toEqual([]);
    problems.length = 0;
  });

  it('forgets the token on request', async () => {
    await page.click('#sign-out');
    await page.locator('#sign-in').waitFor({ state: 'visible' });
    expect(await page.evaluate(() => Object.keys(sessionStorage))).toEqual([]);
    expect(await page.locator('section.session').count()).toBe(0);
    expect(await page.locator('#status').getAttribute('data-state')).toBe('signed-out');
  });
});

describe('serving the dashboard', () => {
  it('serves the page, its bundle and its style with a strict CSP; anything else under it is 404', async () => {
    const pageResponse = await fetch(`${server.baseUrl}/dashboard`);
    expect(pageResponse.status).toBe(200);
    expect(pageResponse.headers.get('content-type')).toMatch(/^text\/html/);
    expect(pageResponse.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(await pageResponse.text()).toContain('dashboard/app.js');

    const script = await fetch(`${server.baseUrl}/dashboard/app.js`);
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toMatch(/^text\/javascript/);
    const etag = script.headers.get('etag');
    // graphql-ws's client is bundled in: the page needs nothing from elsewhere.
    expect(await script.text()).toContain('graphql-transport-ws');
    const again = await fetch(`${server.baseUrl}/dashboard/app.js`, {
      headers: { 'if-none-match': etag ?? '' },
    });
    expect(again.status).toBe(304);

    const style = await fetch(`${server.baseUrl}/dashboard/style.css`);
    expect(style.headers.get('content-type')).toMatch(/^text\/css/);
    expect((await fetch(`${server.baseUrl}/dashboard/main.ts`)).status).toBe(404);
    expect((await fetch(`${server.baseUrl}/dashboard/constructor`)).status).toBe(404);
    expect((await fetch(`${server.baseUrl}/dashboard/../package.json`)).status).toBe(404);
    expect((await fetch(`${server.baseUrl}/dashboard`, { method: 'POST' })).status).toBe(405);
    const slash = await fetch(`${server.baseUrl}/dashboard/`, { redirect: 'manual' });
    expect(slash.status).toBe(308);
    expect(
      new URL(slash.headers.get('location') ?? '', `${server.baseUrl}/dashboard/`).pathname,
    ).toBe('/dashboard');
  });
});
