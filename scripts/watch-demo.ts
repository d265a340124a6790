/**
 * The parts of `npm run demo` that play real video (issue 13): finding
 * ffmpeg, making the test video once, and the one page a person opens — the
 * watch page (web/watch.html: hls.js and trackPlayback) beside the
 * dashboard — served on one origin by a small front server that passes
 * everything else on to the service and the segment server.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, readFile, rename, stat } from 'node:fs/promises';
import {
  createServer,
  request as httpRequest,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { connect } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildWatchPage } from '../web/build.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const WEB_DIR = path.join(ROOT, 'web');

/** Where the generated video is kept between runs (git ignores it). */
export const DEMO_CACHE_DIR = path.join(ROOT, '.demo');

/** The ffmpeg to use: FFMPEG_PATH, else `ffmpeg` on the PATH; null when it does not run. */
export function findFfmpeg(env: NodeJS.ProcessEnv = process.env): string | null {
  const candidate = env.FFMPEG_PATH || 'ffmpeg';
  const probe = spawnSync(candidate, ['-hide_banner', '-version'], { stdio: 'ignore' });
  return probe.status === 0 ? candidate : null;
}

/** ffprobe beside ffmpeg (FFPROBE_PATH first), else on the PATH. */
export function findFfprobe(ffmpeg: string, env: NodeJS.ProcessEnv = process.env): string {
  if (env.FFPROBE_PATH) return env.FFPROBE_PATH;
  if (ffmpeg.includes('/')) {
    const beside = path.join(path.dirname(ffmpeg), 'ffprobe');
    if (existsSync(beside)) return beside;
  }
  return 'ffprobe';
}

/** A monospace TrueType font for the burned-in clock, or null. */
export function findFont(): string | null {
  const listed = spawnSync('fc-list', [':spacing=mono', 'file'], { encoding: 'utf8' });
  const fromFc = (listed.stdout ?? '')
    .split('\n')
    .map((line) => line.replace(/:\s*$/, '').trim())
    .filter((file) => /\.(ttf|otf)$/i.test(file));
  const preferred = fromFc.find((f) => /DejaVuSansMono\.ttf$/.test(f)) ?? fromFc[0];
  if (preferred !== undefined) return preferred;
  for (const dir of [
    '/usr/share/fonts/truetype/dejavu',
    '/usr/share/fonts/truetype',
    '/usr/share/fonts',
  ]) {
    try {
      const file = readdirSync(dir, { recursive: true, encoding: 'utf8' }).find((f) =>
        /\.ttf$/i.test(f),
      );
      if (file !== undefined) return path.join(dir, file);
    } catch {
      // not there
    }
  }
  return null;
}

function hasFilter(ffmpeg: string, name: string): boolean {
  const listed = spawnSync(ffmpeg, ['-hide_banner', '-filters'], { encoding: 'utf8' });
  return new RegExp(`\\s${name}\\s`).test(listed.stdout ?? '');
}

export interface DemoVideo {
  readonly path: string;
  readonly durationSeconds: number;
  /** False when it was there already. */
  readonly generated: boolean;
}

/**
 * The demo's test video, made once and kept: ffmpeg's testsrc2 pattern at
 * 1280x720, 25 fps, with a burned-in clock (and the segment number, at 6 s a
 * segment) and a 440 Hz tone, H.264/AAC in MP4. Without drawtext or a font,
 * the moving testsrc2 pattern alone (its clock is the picture's own counter).
 */
export async function ensureDemoVideo(options: {
  readonly ffmpeg: string;
  readonly ffprobe: string;
  readonly dir?: string;
  readonly seconds?: number;
  readonly log?: (line: string) => void;
}): Promise<DemoVideo> {
  const seconds = options.seconds ?? 240;
  const dir = options.dir ?? DEMO_CACHE_DIR;
  const file = path.join(dir, `demo-video-${seconds}s.mp4`);
  let generated = false;
  if (!(await stat(file).catch(() => null))?.size) {
    await mkdir(dir, { recursive: true });
    const font = findFont();
    const drawtext = font !== null && hasFilter(options.ffmpeg, 'drawtext');
    // The clock as hh:mm:ss.mmm and the segment it falls in (6 s segments).
    const text = '%{pts\\:hms}   segment %{eif\\:floor(t/6)\\:d}';
    const filters = drawtext
      ? [
          `drawtext=fontfile='${font}':text='${text}':fontsize=56:fontcolor=white:box=1:boxcolor=black@0.65:boxborderw=12:x=(w-tw)/2:y=h-th-48`,
        ]
      : [];
    options.log?.(
      `making the demo video once (${seconds} s, testsrc2 1280x720${drawtext ? ' with a clock' : ', no drawtext or font: without the clock'}): ${file}`,
    );
    const tmp = `${file}.tmp.mp4`;
    const args = [
      '-hide_banner',
      '-loglevel',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      `testsrc2=size=1280x720:rate=25:duration=${seconds}`,
      '-f',
      'lavfi',
      '-i',
      `sine=frequency=440:beep_factor=4:sample_rate=48000:duration=${seconds}`,
      ...(filters.length > 0 ? ['-vf', filters.join(',')] : []),
      '-c:v',
      'libx264',
      '-preset',
      'veryfast',
      '-crf',
      '26',
      '-pix_fmt',
      'yuv420p',
      '-g',
      '50',
      '-c:a',
      'aac',
      '-b:a',
      '96k',
      '-movflags',
      '+faststart',
      '-shortest',
      tmp,
    ];
    await run(options.ffmpeg, args);
    await rename(tmp, file);
    generated = true;
  }
  return { path: file, durationSeconds: await probeDuration(options.ffprobe, file), generated };
}

/** The container's duration in seconds, from ffprobe. */
export async function probeDuration(ffprobe: string, file: string): Promise<number> {
  const out = await run(ffprobe, [
    '-v',
    'error',
    '-show_entries',
    'format=duration',
    '-of',
    'default=noprint_wrappers=1:nokey=1',
    file,
  ]);
  const seconds = Number(out.trim());
  if (!(seconds > 0)) throw new Error(`ffprobe could not tell how long ${file} is: '${out}'`);
  return seconds;
}

function run(command: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      err += chunk;
    });
    child.on('error', reject);
    child.on('exit', (code) => {
      if (code === 0) resolve(out);
      else reject(new Error(`${command} exited ${code}: ${err.trim().slice(-2000)}`));
    });
  });
}

export interface WatchServerOptions {
  /** The service, http://host:port (no path): /graphql, /dashboard, /metrics go there. */
  readonly serviceUrl: string;
  /** The segment server, http://host:port: /sessions/… go there. */
  readonly segmentServerUrl: string;
  readonly streamSessionId: string;
  /** A player token for a new viewer of the session (issueClientToken); undefined with AUTH=off. */
  readonly issueToken: (sessionId: string) => Promise<string | undefined>;
  /**
   * The admin token, put into the dashboard's sessionStorage by the demo page
   * so that the dashboard beside the player is signed in. A local demo only:
   * the page is served on 127.0.0.1.
   */
  readonly dashboardToken?: string;
  readonly port?: number;
  readonly host?: string;
}

export interface WatchServer {
  /** http://host:port/ — the one page: the watch page beside the dashboard. */
  readonly url: string;
  readonly viewers: number;
  close(): Promise<void>;
}

/**
 * The demo's front server, one origin for everything the page loads:
 * - `/`: the watch page beside the dashboard (two frames)
 * - `/watch`, `/watch.js`, `/watch.css`: the watch page (web/watch.*, hls.js bundled in)
 * - `POST /watch/session`: a new viewer: its ids, the playlist and a player token
 * - `/sessions/…`: the segment server; everything else: the service (WebSocket too)
 */
export async function startWatchServer(options: WatchServerOptions): Promise<WatchServer> {
  const service = new URL(options.serviceUrl);
  const segments = new URL(options.segmentServerUrl);
  let script: Promise<string> | undefined;
  let viewers = 0;
  const runId = Date.now().toString(36);

  const page = (body: Buffer | string, type: string, extra: OutgoingHttpHeaders = {}) => ({
    body,
    type,
    extra,
  });
  const CSP = [
    "default-src 'self'",
    "script-src 'self'",
    "style-src 'self'",
    "connect-src 'self'",
    "media-src 'self' blob:",
    "worker-src 'self' blob:",
    "img-src 'self' data:",
    "frame-src 'self'",
    "frame-ancestors 'self'",
    "base-uri 'none'",
  ].join('; ');

  async function local(req: IncomingMessage, pathname: string) {
    switch (pathname) {
      case '/':
        return page(demoPage(options.dashboardToken), 'text/html; charset=utf-8');
      case '/demo.js':
        return page(DEMO_SCRIPT, 'text/javascript; charset=utf-8');
      case '/watch':
        return page(await readFile(path.join(WEB_DIR, 'watch.html')), 'text/html; charset=utf-8');
      case '/watch.css':
        return page(await readFile(path.join(WEB_DIR, 'watch.css')), 'text/css; charset=utf-8');
      case '/watch.js':
        script ??= buildWatchPage();
        return page(await script, 'text/javascript; charset=utf-8');
      case '/watch/session': {
        if (req.method !== 'POST') return null;
        const sessionId = `watcher-${runId}-${++viewers}`;
        const base = `http://${req.headers.host}`;
        const body = {
          playlistUrl: `${base}/sessions/${encodeURIComponent(options.streamSessionId)}/master.m3u8`,
          graphqlUrl: `${base}/graphql`,
          streamSessionId: options.streamSessionId,
          sessionId,
          token: await options.issueToken(sessionId),
        };
        return page(JSON.stringify(body), 'application/json', { 'cache-control': 'no-store' });
      }
      default:
        return null;
    }
  }

  const server = createServer((req, res) => {
    const pathname = (req.url ?? '/').split('?', 1)[0] ?? '/';
    void local(req, pathname).then(
      (asset) => {
        if (asset === null) {
          const target = pathname.startsWith('/sessions/') ? segments : service;
          return proxy(req, res, target, pathname.startsWith('/dashboard'));
        }
        res.writeHead(200, {
          'content-type': asset.type,
          'cache-control': 'no-cache',
          'content-security-policy': CSP,
          'x-content-type-options': 'nosniff',
          'referrer-policy': 'no-referrer',
          ...asset.extra,
        });
        res.end(asset.body);
      },
      (error: Error) => {
        res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
        res.end(`The demo page failed: ${error.message}`);
      },
    );
  });
  const sockets = new Set<Socket>();
  server.on('connection', (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  // The dashboard's graphql-ws connection.
  server.on('upgrade', (req, socket: Socket, head) => {
    const upstream = connect(Number(service.port), service.hostname, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        lines.push(`${req.rawHeaders[i]}: ${req.rawHeaders[i + 1]}`);
      }
      upstream.write(`${lines.join('\r\n')}\r\n\r\n`);
      if (head.length > 0) upstream.write(head);
      socket.pipe(upstream).pipe(socket);
    });
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    const cut = () => {
      socket.destroy();
      upstream.destroy();
    };
    upstream.on('error', cut);
    socket.on('error', cut);
    socket.on('close', cut);
    upstream.on('close', cut);
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as AddressInfo;
  return {
    url: `http://${options.host ?? '127.0.0.1'}:${address.port}/`,
    get viewers() {
      return viewers;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const socket of sockets) socket.destroy();
      }),
  };
}

/** Passes a request on; the dashboard may be framed by this origin's page (its CSP says 'none'). */
function proxy(req: IncomingMessage, res: ServerResponse, target: URL, dashboard: boolean): void {
  const upstream = httpRequest(
    {
      hostname: target.hostname,
      port: target.port,
      method: req.method,
      path: req.url,
      headers: req.headers,
    },
    (answer) => {
      const headers = { ...answer.headers };
      const csp = headers['content-security-policy'];
      if (dashboard && typeof csp === 'string') {
        headers['content-security-policy'] = csp.replace(
          "frame-ancestors 'none'",
          "frame-ancestors 'self'",
        );
      }
      res.writeHead(answer.statusCode ?? 502, headers);
      answer.pipe(res);
    },
  );
  upstream.on('error', (error) => {
    if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain; charset=utf-8' });
    res.end(`upstream: ${error.message}`);
  });
  // A viewer that goes away (a seek cancels a held segment request) releases the upstream one.
  res.on('close', () => upstream.destroy());
  req.pipe(upstream);
}

function escapeAttribute(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/"/g, '&quot;').replace(/</g, '&lt;');
}

function demoPage(dashboardToken: string | undefined): string {
  const token =
    dashboardToken === undefined
      ? ''
      : ` data-dashboard-token="${escapeAttribute(dashboardToken)}"`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>hls-batch-coordinator demo: watch and dashboard</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="watch.css">
</head>
<body class="demo"${token}>
<div class="demo-layout">
<iframe id="watch-frame" title="Watch" src="watch"></iframe>
<iframe id="dashboard-frame" title="Dashboard"></iframe>
</div>
<script src="demo.js"></script>
</body>
</html>
`;
}

/**
 * Signs the dashboard in (its token lives in sessionStorage, which frames of
 * one origin share), then loads it.
 */
const DEMO_SCRIPT = `(() => {
  const token = document.body.dataset.dashboardToken;
  if (token) sessionStorage.setItem('hls-batch-coordinator.token', token);
  document.getElementById('dashboard-frame').src = 'dashboard';
})();
`;
