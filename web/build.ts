/**
 * Builds the player integration for browsers (`npm run build:web`):
 *
 * - web/dist/track-playback.js: an IIFE, global `HlsBatchTracking`
 *   (`HlsBatchTracking.trackPlayback(hls, video, options)`), for a <script> tag
 * - web/dist/track-playback.mjs: an ES module, for bundlers and `import`
 *
 * Both minified; hls.js is not in them (the page brings its own).
 * `buildWatchPage()` bundles the demo's watch page, hls.js included.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { BuildOptions } from 'esbuild';

export const WEB_DIR = fileURLToPath(new URL('./', import.meta.url));
export const DIST_DIR = `${WEB_DIR}dist/`;

const common = {
  entryPoints: [`${WEB_DIR}track-playback.ts`],
  tsconfig: `${WEB_DIR}tsconfig.json`,
  bundle: true,
  write: false,
  platform: 'browser',
  target: 'es2020',
  minify: true,
  legalComments: 'inline',
  logLevel: 'silent',
} satisfies BuildOptions;

async function one(options: BuildOptions): Promise<string> {
  const { build } = await import('esbuild');
  const result = await build({ ...options, write: false });
  const output = result.outputFiles?.[0];
  if (output === undefined) throw new Error('esbuild produced no output');
  return output.text;
}

/** The IIFE: `var HlsBatchTracking = { trackPlayback, qualityOfHeight }`. */
export function buildTrackPlayback(): Promise<string> {
  return one({ ...common, format: 'iife', globalName: 'HlsBatchTracking' });
}

/** The ES module. */
export function buildTrackPlaybackModule(): Promise<string> {
  return one({ ...common, format: 'esm' });
}

/** The demo's watch page script: web/watch.ts with hls.js and the integration, one file. */
export function buildWatchPage(): Promise<string> {
  return one({
    ...common,
    entryPoints: [`${WEB_DIR}watch.ts`],
    format: 'iife',
    target: 'es2022',
  });
}

/** Writes web/dist/; returns the files written. */
export async function buildWeb(): Promise<string[]> {
  await mkdir(DIST_DIR, { recursive: true });
  const [iife, esm] = await Promise.all([buildTrackPlayback(), buildTrackPlaybackModule()]);
  const files = [`${DIST_DIR}track-playback.js`, `${DIST_DIR}track-playback.mjs`];
  await writeFile(files[0] as string, iife);
  await writeFile(files[1] as string, esm);
  return files;
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  buildWeb().then(
    (files) => {
      for (const file of files) console.log(`wrote ${file}`);
    },
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
