/**
 * `npm run demo:screenshot`: docs/demo.png, the demo's page playing beside
 * the dashboard. It runs `npm run demo` (ffmpeg needed), opens its one URL
 * in Debian's Chromium (muted, autoplay allowed), lets the first batch play
 * until it is made, jumps to 2:00 (the service asks for a batch there; the segment server holds
 * the player's request until the encoder has made it), and takes the picture
 * once that plays and the dashboard shows both batches.
 *
 *   npm run demo:screenshot [-- path/to/file.png]
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const target = process.argv[2] ?? `${ROOT}docs/demo.png`;

async function main(): Promise<void> {
  const demo = spawn(process.execPath, ['--import', 'tsx', 'scripts/demo.ts'], {
    cwd: ROOT,
    env: { ...process.env, PORT: process.env.PORT ?? '0', LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  demo.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    out += chunk;
    process.stdout.write(chunk);
  });
  const url = await new Promise<string>((resolve, reject) => {
    const check = setInterval(() => {
      const found = /open the demo[^:]*: (http:\/\/\S+)/.exec(out)?.[1];
      if (found !== undefined) {
        clearInterval(check);
        resolve(found);
      }
    }, 100);
    demo.once('exit', (code) => reject(new Error(`the demo exited (${code})`)));
  });
  const streamSessionId = /stream session (demo-\S+),/.exec(out)?.[1] ?? '';

  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    args: [
      '--no-sandbox',
      '--headless',
      '--disable-gpu',
      '--no-first-run',
      '--autoplay-policy=no-user-gesture-required',
    ],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1600, height: 720 } });
    page.setDefaultTimeout(120_000);
    await page.goto(url);
    const watch = page.frameLocator('#watch-frame');
    const status = watch.locator('#status');
    const time = async () => Number(await status.getAttribute('data-time'));
    const until = async (what: string, test: () => Promise<boolean>) => {
      const deadline = Date.now() + 180_000;
      let said = Date.now();
      while (!(await test())) {
        if (Date.now() > deadline) throw new Error(`gave up waiting: ${what}`);
        if (Date.now() - said > 10_000) {
          said = Date.now();
          console.log(`screenshot: waiting (${what}): ${await status.textContent()}`);
        }
        await page.waitForTimeout(250);
      }
      console.log(`screenshot: ${what}`);
    };
    const batches = page
      .frameLocator('#dashboard-frame')
      .locator(`[data-session="${streamSessionId}"] rect[data-batch]`);
    await until('playing', async () => (await time()) > 8);
    // Jump once the first batch is made, so the encoder is free for the one the jump needs.
    await until(
      'the first batch complete',
      async () => (await batches.first().getAttribute('data-status')) === 'complete',
    );
    await watch.locator('#jump-to').fill('2:00');
    await watch.locator('#jump button').click();
    await until(
      'playing after the jump to 2:00',
      async () => (await time()) > 126 && (await status.getAttribute('data-state')) === 'playing',
    );
    await until(
      'two batches on the dashboard, and playing',
      async () =>
        (await batches.count()) >= 2 &&
        (await status.getAttribute('data-state')) === 'playing' &&
        Number(await status.getAttribute('data-ahead')) >= 1,
    );
    await page.screenshot({ path: target });
    console.log(`screenshot: wrote ${target}`);
  } finally {
    await browser.close();
    demo.kill('SIGTERM');
    await once(demo, 'exit');
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
