/**
 * Debian's Chromium for the browser tests, through playwright-core (no
 * browser is downloaded). Headless and sandbox-less (containers), with the
 * background networking, component updates and sync off: this machine's
 * network is closed, and Chromium would otherwise try Google's hosts at
 * every start.
 */
import { type Browser, chromium } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

/** For pages that play video: autoplay of a muted video, and timers and media never slowed. */
export const MEDIA_ARGS = [
  '--autoplay-policy=no-user-gesture-required',
  // A hidden or busy page must not have its timers or media slowed.
  '--disable-background-timer-throttling',
  '--disable-renderer-backgrounding',
  '--disable-backgrounding-occluded-windows',
];

export function launchChromium(extraArgs: readonly string[] = []): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--no-sandbox',
      '--headless',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
      ...extraArgs,
    ],
  });
}
